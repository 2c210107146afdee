"""Model versions: at most one active; activation and rollback are single transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import ModelVersion, utcnow


def get_active(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))


def get_version(session: Session, *, version_id: int) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def list_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def create_version(
    session: Session,
    *,
    artifact_path: str | None,
    sha256: str,
    arch: str,
    labels: list[str],
    metrics: dict[str, Any],
    activate: bool,
) -> ModelVersion:
    """Record a model version (optionally making it the active one)."""
    version = ModelVersion(
        artifact_path=artifact_path, sha256=sha256, arch=arch, labels=list(labels), metrics=dict(metrics)
    )
    session.add(version)
    session.flush()
    if activate:
        activate_version(session, version_id=version.id)
    return version


def activate_version(session: Session, *, version_id: int) -> ModelVersion:
    """Make ``version_id`` the only active version; remember which one it replaced."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError(f"no model version {version_id}")
    current = get_active(session)
    if current is not None and current.id == version_id:
        return version
    session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False))
    session.flush()
    if current is not None:
        version.previous_id = current.id
    version.is_active = True
    version.activated_at = utcnow()
    session.flush()
    return version


def rollback(session: Session) -> ModelVersion | None:
    """Re-activate the version the active one replaced; None when there is nothing to go back to."""
    current = get_active(session)
    if current is None or current.previous_id is None:
        return None
    target = session.get(ModelVersion, current.previous_id)
    if target is None:
        return None
    session.execute(update(ModelVersion).where(ModelVersion.is_active.is_(True)).values(is_active=False))
    session.flush()
    target.is_active = True
    target.activated_at = utcnow()
    session.flush()
    return target


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
