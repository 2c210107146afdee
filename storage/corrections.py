"""User corrections and the policy that decides which of them may teach the model.

Policy (issue 5): an admin's label is accepted at once; a non-admin's stays pending until
``required`` distinct users agree on the image's label, or an admin approves it. A user
correcting the same image again updates their one row (unique image+user), so one user
alone can never push a label into the training data. Accepted corrections waiting to be merged
into the dataset are listed by :func:`storage.snapshot.corrections_waiting`.

Issue 17: a photo the bot answered "I don't see a bear" becomes a bear example only with an admin.
A non-admin's bear label for it (``admin_only``) stays pending however many users agree, until an
admin approves it (or an admin labels it). Labelling any photo ``none`` (not a bear) follows the
ordinary policy: such rows are negatives for the bear/not-bear decision, never a bear class.

Issue 14: with a :class:`storage.trust.TrustRule` (the bot always passes one) only admins and
users whose trust is established count toward ``required``, so new accounts agreeing accept
nothing: their rows wait for trusted users or an admin. Every change recounts the trust records
of the photo's correctors.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import trust
from storage.models import Correction, CorrectionStatus, PredictionRecord, utcnow
from storage.trust import TrustRule


@dataclass(frozen=True)
class CorrectionOutcome:
    """What recording a correction did."""

    correction: Correction
    created: bool  # False: the user's earlier correction of this image was updated
    status: CorrectionStatus
    agreeing_users: int  # distinct users (this one included) currently claiming this label
    trusted_agreeing: int  # those of them whose agreement counts toward ``required``


def _agreeing(session: Session, *, image_id: int, label: str) -> set[int]:
    """Users (ids) currently claiming ``label`` for ``image_id``."""
    return set(
        session.scalars(
            select(Correction.user_id).where(
                Correction.image_id == image_id,
                Correction.label == label,
                Correction.status != CorrectionStatus.REJECTED,
            )
        )
    )


def agreeing_users(session: Session, *, image_id: int, label: str) -> int:
    return len(_agreeing(session, image_id=image_id, label=label))


def trusted_agreeing(session: Session, *, image_id: int, label: str, rule: TrustRule | None) -> int:
    """Agreeing users whose agreement counts (all of them when ``rule`` is None)."""
    return len(trust.trusted_users(session, _agreeing(session, image_id=image_id, label=label), rule))


def _accept_agreed(session: Session, *, image_id: int, label: str, required: int, rule: TrustRule | None) -> None:
    """Accept every pending correction of ``image_id`` to ``label`` once ``required`` trusted users agree."""
    if trusted_agreeing(session, image_id=image_id, label=label, rule=rule) < required:
        return
    pending = session.scalars(
        select(Correction).where(
            Correction.image_id == image_id,
            Correction.label == label,
            Correction.status == CorrectionStatus.PENDING,
        )
    )
    for row in pending:
        row.status = CorrectionStatus.ACCEPTED


def record_correction(
    session: Session,
    *,
    image_id: int,
    user_id: int,
    label: str,
    prediction_id: int | None,
    is_admin: bool,
    required: int,
    admin_only: bool = False,
    trust_rule: TrustRule | None = None,
) -> CorrectionOutcome:
    """Create or update ``user_id``'s label for ``image_id`` and apply the acceptance policy.

    ``label`` must already be validated against the serving label set (or be ``NOT_BEAR``).
    ``admin_only``: users agreeing do not accept it, only an admin does (see the module docstring).
    ``trust_rule``: whose agreement counts; None counts everyone (tools that stand in for users).
    """
    row = session.scalar(select(Correction).where(Correction.image_id == image_id, Correction.user_id == user_id))
    created = row is None
    if row is None:
        row = Correction(image_id=image_id, user_id=user_id, label=label, prediction_id=prediction_id)
        session.add(row)
    elif row.label != label or row.status == CorrectionStatus.REJECTED or is_admin:
        # A changed mind starts over: the old label's agreement no longer includes this user.
        row.label = label
        row.prediction_id = prediction_id or row.prediction_id
        row.status = CorrectionStatus.PENDING
        row.reviewed_by = None
        row.updated_at = utcnow()
        row.merged_at = None  # the new label has not been learned yet
        row.merge_outcome = None
    if is_admin:
        row.status = CorrectionStatus.ACCEPTED
        row.reviewed_by = user_id
    session.flush()
    trust.refresh(session, [user_id])  # a first correction creates the record the rule reads
    if not admin_only:
        _accept_agreed(session, image_id=image_id, label=label, required=required, rule=trust_rule)
    trust.refresh(session, trust.users_on(session, image_id=image_id))
    return CorrectionOutcome(
        correction=row,
        created=created,
        status=row.status,
        agreeing_users=agreeing_users(session, image_id=image_id, label=label),
        trusted_agreeing=trusted_agreeing(session, image_id=image_id, label=label, rule=trust_rule),
    )


def review(session: Session, *, correction_id: int, admin_id: int, approve: bool) -> Correction | None:
    """An admin approves (accepts) or rejects a correction; None when it does not exist."""
    row = session.get(Correction, correction_id)
    if row is None:
        return None
    row.status = CorrectionStatus.ACCEPTED if approve else CorrectionStatus.REJECTED
    row.reviewed_by = admin_id
    row.updated_at = utcnow()
    trust.refresh(session, trust.users_on(session, image_id=row.image_id))
    return row


def list_pending(session: Session, *, limit: int = 10) -> list[Correction]:
    """Oldest pending corrections first (what ``/pending`` shows)."""
    return list(
        session.scalars(
            select(Correction)
            .where(Correction.status == CorrectionStatus.PENDING)
            .order_by(Correction.id)
            .limit(limit)
        )
    )


def count_by_status(session: Session) -> dict[CorrectionStatus, int]:
    counts = dict(session.execute(select(Correction.status, func.count()).group_by(Correction.status)).all())
    return {status: int(counts.get(status, 0)) for status in CorrectionStatus}


def predicted_label(session: Session, *, correction: Correction) -> str | None:
    """What the model had said for the corrected prediction, if known."""
    if correction.prediction_id is None:
        return None
    pred = session.get(PredictionRecord, correction.prediction_id)
    return pred.label if pred else None
