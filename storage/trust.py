"""What a user's corrections have earned, and whose corrections may teach the model (issue 14).

A user's record (:class:`storage.models.UserTrust`) counts their corrections and how they
turned out: *right* when the photo's decided label (its newest accepted correction: an admin's,
one an admin approved, or one trusted users agreed on) is theirs, *wrong* when an admin rejected
theirs or another label was decided. It is recounted from the corrections table whenever a
photo they corrected changes, so it never drifts. An admin may mute a user.

A user's trust is *established* (:class:`TrustRule`) once they were first seen at least
``trust_min_days`` ago, at least ``trust_min_right`` of their corrections turned out right, at
most ``trust_max_wrong_share`` of the decided ones turned out wrong, and they are not muted.
Admins are always trusted. Only trusted users count toward agreement, and only corrections that
carry trust count toward the retrain trigger (:func:`trusted_waiting`): a flood of new accounts
can neither accept a label nor queue a run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from bearbot.settings import Settings
from storage import snapshot
from storage.db import add_unique
from storage.models import Correction, CorrectionStatus, Role, User, UserTrust, utcnow


@dataclass(frozen=True)
class TrustRule:
    """When a user's corrections count (see the module docstring)."""

    min_days: float = 7.0
    min_right: int = 3
    max_wrong_share: float = 0.2

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustRule:
        return cls(
            min_days=settings.trust_min_days, min_right=settings.trust_min_right,
            max_wrong_share=settings.trust_max_wrong_share,
        )

    def established(self) -> ColumnElement[bool]:
        """The SQL condition on :class:`UserTrust` rows of established users."""
        return and_(
            UserTrust.muted.is_(False),
            UserTrust.right >= self.min_right,
            UserTrust.first_seen <= utcnow() - timedelta(days=self.min_days),
            UserTrust.wrong <= self.max_wrong_share * (UserTrust.right + UserTrust.wrong),
        )


def trusted_users(session: Session, user_ids: Collection[int], rule: TrustRule | None) -> set[int]:
    """Those of ``user_ids`` whose corrections count: admins and established users (everyone
    when ``rule`` is None, as offline tools that stand in for users want)."""
    ids = set(user_ids)
    if rule is None or not ids:
        return ids
    admins = select(User.id).where(User.id.in_(ids), User.role == Role.ADMIN)
    established = select(UserTrust.user_id).where(UserTrust.user_id.in_(ids), rule.established())
    return set(session.scalars(admins.union(established)))


def users_on(session: Session, *, image_id: int) -> set[int]:
    """Every user who corrected ``image_id``."""
    return set(session.scalars(select(Correction.user_id).where(Correction.image_id == image_id)))


def refresh(session: Session, user_ids: Collection[int]) -> None:
    """Recount ``user_ids``' records from their corrections (creating missing records)."""
    if not user_ids:
        return
    session.flush()
    other = aliased(Correction)
    decided = (
        select(other.label)
        .where(other.image_id == Correction.image_id, other.status == CorrectionStatus.ACCEPTED)
        .order_by(other.updated_at.desc(), other.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rejected = Correction.status == CorrectionStatus.REJECTED
    counts = session.execute(
        select(
            Correction.user_id,
            func.count(),
            func.sum(case((and_(~rejected, Correction.label == decided), 1), else_=0)),
            func.sum(case((rejected | (Correction.label != decided), 1), else_=0)),
        )
        .where(Correction.user_id.in_(set(user_ids)))
        .group_by(Correction.user_id)
    ).all()
    for user_id, made, right, wrong in counts:
        record = _record(session, user_id)
        record.made, record.right, record.wrong = int(made), int(right or 0), int(wrong or 0)
    session.flush()


def _record(session: Session, user_id: int) -> UserTrust:
    """``user_id``'s record, created on first need (two replicas creating it at once get one)."""
    record = session.get(UserTrust, user_id)
    if record is None:
        user = session.get_one(User, user_id)
        new = UserTrust(user_id=user_id, first_seen=user.created_at, made=0, right=0, wrong=0, muted=False)
        record, _ = add_unique(session, new, existing=lambda: session.get(UserTrust, user_id))
    return record


def get_trust(session: Session, *, user_id: int) -> UserTrust | None:
    return session.get(UserTrust, user_id)


def mute(session: Session, *, user_id: int, by: int | None, muted: bool = True) -> UserTrust:
    """An admin (users.id ``by``) mutes or unmutes a user: a muted user's corrections never count."""
    record = _record(session, user_id)
    record.muted = muted
    record.muted_by = by if muted else None
    session.flush()
    return record


def trusted_waiting(session: Session, rule: TrustRule | None) -> int:
    """Photos with an accepted correction no run has seen that carries trust — from an admin,
    approved by one, or by an established user: what the corrections trigger counts."""
    waiting = snapshot.corrections_waiting(session)
    vouched = trusted_users(session, {c.user_id for c in waiting if c.reviewed_by is None}, rule)
    return len({c.image_id for c in waiting if c.reviewed_by is not None or c.user_id in vouched})
