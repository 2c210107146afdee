"""Model versions: at most one active; activation and rollback are compare-and-swaps in one transaction."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import ModelVersion, utcnow

if TYPE_CHECKING:
    from bearbot.settings import Settings


def get_active(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def get_version(session: Session, *, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


class ActivationConflict(RuntimeError):
    """The serving version changed under us (another promotion, activation or rollback won)."""


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET  # "don't check which version is active" (None means: expect none)


def create_version(
    session: Session,
    *,
    artifact_path: str | None,
    sha256: str,
    arch: str,
    labels: list[str],
    metrics: dict[str, Any],
    activate: bool,
    expected_active_id: int | None | _Unset = UNSET,
) -> ModelVersion:
    """Record a model version (optionally making it the active one, see :func:`activate_version`)."""
    version = ModelVersion(
        artifact_path=artifact_path, sha256=sha256, arch=arch, labels=list(labels), metrics=dict(metrics)
    )
    session.add(version)
    session.flush()
    if activate:
        activate_version(session, version_id=version.id, expected_active_id=expected_active_id)
    return version


def _swap_active(session: Session, *, current: ModelVersion | None, target: ModelVersion) -> None:
    """Compare-and-swap the active flag from ``current`` (as read) to ``target``.

    The conditional UPDATE matches only while ``current`` is still the active one; a concurrent
    activation makes it match nothing (or trips the one-active index), and nothing changes.
    """
    if current is not None:
        result = session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == current.id, ModelVersion.is_active.is_(True))
            .values(is_active=False)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ActivationConflict(f"v{current.id} stopped being the active model meanwhile")
        session.refresh(current)
    target.is_active = True
    target.activated_at = utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ActivationConflict("another model version was activated meanwhile") from None


def activate_version(
    session: Session, *, version_id: int, expected_active_id: int | None | _Unset = UNSET
) -> ModelVersion:
    """Make ``version_id`` the only active version; remember which one it replaced.

    With ``expected_active_id`` this is a compare-and-swap: it raises :class:`ActivationConflict`
    unless that version (None: no version) is the active one when the swap happens — a promotion
    passes the version its candidate beat, so it never replaces a model it was not compared with.
    """
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError(f"no model version {version_id}")
    current = get_active(session)
    current_id = current.id if current is not None else None
    if expected_active_id is not UNSET and current_id != expected_active_id:
        raise ActivationConflict(
            f"the serving model is v{current_id}, not v{expected_active_id} as expected; v{version_id} is not activated"
        )
    if current is not None and current.id == version_id:
        return version
    if current is not None:
        version.previous_id = current.id
    _swap_active(session, current=current, target=version)
    return version


def rollback(session: Session) -> ModelVersion | None:
    """Re-activate the version the active one replaced; None when there is nothing to go back to."""
    current = get_active(session)
    if current is None or current.previous_id is None:
        return None
    target = session.get(ModelVersion, current.previous_id)
    if target is None:
        return None
    _swap_active(session, current=current, target=target)
    return target


def fall_back(session: Session, *, broken_id: int, reason: str, target_id: int) -> ModelVersion:
    """The active ``broken_id`` cannot be loaded: record why, and make ``target_id`` active instead
    (compare-and-swap; the target keeps its own rollback link, so a rollback never leads back
    to the broken version)."""
    broken = session.get(ModelVersion, broken_id)
    target = session.get(ModelVersion, target_id)
    if broken is None or target is None:
        raise LookupError(f"no model version {broken_id if broken is None else target_id}")
    broken.load_error = reason[:2000]
    _swap_active(session, current=broken, target=target)
    return target


def record_load(session: Session, *, version_id: int, error: str | None) -> None:
    """Remember whether a serving process could load ``version_id`` (shown by ``bearbot models list``)."""
    session.execute(
        update(ModelVersion).where(ModelVersion.id == version_id).values(load_error=error[:2000] if error else None)
    )


def fallback_chain(session: Session, *, start_id: int) -> list[ModelVersion]:
    """Versions to serve instead of ``start_id``, best first: its rollback chain, then built-in v0s."""
    chain: list[ModelVersion] = []
    seen = {start_id}
    version = session.get(ModelVersion, start_id)
    while version is not None and version.previous_id is not None and version.previous_id not in seen:
        seen.add(version.previous_id)
        version = session.get(ModelVersion, version.previous_id)
        if version is not None:
            chain.append(version)
    builtins = session.scalars(select(ModelVersion).where(ModelVersion.artifact_path.is_(None)).order_by(ModelVersion.id))
    chain.extend(v for v in builtins if v.id not in seen and v not in chain)
    return chain


def ensure_builtin_version(session: Session, *, sha256: str, arch: str, labels: list[str]) -> ModelVersion | None:
    """Create and activate the built-in zero-shot v0 (no artifact file) when no version exists at all.

    Returns the new row, or None when some version already exists (nothing is changed then).
    """
    if session.scalar(select(ModelVersion.id).limit(1)) is not None:
        return None
    return create_version(
        session,
        artifact_path=None,
        sha256=sha256,
        arch=arch,
        labels=list(labels),
        metrics={"builtin": "zero-shot ImageNet rows"},
        activate=True,
    )


def ensure_serving(session: Session, settings: Settings) -> ModelVersion | None:
    """:func:`ensure_active` for the settings' arch and labels: what the bot, the trainer and the CLI serve."""
    from bearbot.backbone import builtin_sha256

    return ensure_active(
        session, arch=settings.arch, labels=list(settings.labels), builtin_sha256=lambda: builtin_sha256(settings.arch)
    )


def serving_version(session: Session, settings: Settings) -> ModelVersion:
    """:func:`ensure_serving`, or LookupError when versions exist but none is active (deactivated by hand)."""
    active = ensure_serving(session, settings)
    if active is None:
        raise LookupError("no model version is active; activate one with `bearbot models activate ID`")
    return active


def version_with_sha256(session: Session, sha256: str) -> ModelVersion | None:
    """The oldest recorded version whose artifact file has these bytes (None: no such file was published)."""
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.sha256 == sha256, ModelVersion.artifact_path.is_not(None))
        .order_by(ModelVersion.id)
        .limit(1)
    )


def ensure_active(
    session: Session, *, arch: str, labels: list[str], builtin_sha256: Callable[[], str]
) -> ModelVersion | None:
    """The active version; on a fresh install the built-in v0 is recorded and activated first.

    None when versions exist but none is active (deactivated by hand). ``builtin_sha256`` is
    called only when v0 has to be recorded (for downloaded archs it loads the backbone).
    """
    active = get_active(session)
    if active is None and ensure_builtin_version(session, sha256=builtin_sha256(), arch=arch, labels=labels):
        active = get_active(session)
    return active
