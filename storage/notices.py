""""Your correction is now part of v3": which users to tell, claimed once across bot replicas."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import Correction, CorrectionStatus, PredictionRecord, User, utcnow


@dataclass(frozen=True)
class LearnedNotice:
    """One message to send: where, in answer to which photo, and what was learned."""

    correction_id: int
    chat_id: int
    reply_to: int | None  # the user's photo message, when the correction came from a chat
    label: str
    said: str | None  # what the model had answered
    version_id: int
    photo_sent_at: datetime
    transport: str  # where chat_id is: the answer's transport, else the user's


def claim_learned_notices(
    session: Session, *, limit: int = 50, transports: Collection[str] | None = None
) -> list[LearnedNotice]:
    """Corrections a promoted model learned whose user has not been told yet; each claimed atomically.

    The conditional UPDATE (``learned_notice_at IS NULL``) lets only one replica win each row.
    Users who opted out are claimed too but get no notice, so turning notices back on later
    does not replay old ones. ``transports``: claim only notices this process can deliver (those
    whose answer, else whose user, is on one of them), leaving the rest to a process that serves it.
    """
    unsent = [
        Correction.learned_version_id.is_not(None),
        Correction.learned_notice_at.is_(None),
        Correction.status == CorrectionStatus.ACCEPTED,
    ]
    if transports is not None:
        unsent.append(func.coalesce(PredictionRecord.transport, User.transport).in_(list(transports)))
    rows = session.execute(
        select(Correction, User, PredictionRecord)
        .join(User, User.id == Correction.user_id)
        .outerjoin(PredictionRecord, PredictionRecord.id == Correction.prediction_id)
        .where(*unsent)
        .order_by(Correction.id)
        .limit(limit)
    ).all()
    notices: list[LearnedNotice] = []
    for correction, user, prediction in rows:
        won = session.execute(
            update(Correction)
            .where(Correction.id == correction.id, Correction.learned_notice_at.is_(None))
            .values(learned_notice_at=utcnow())
        )
        if won.rowcount != 1 or not user.notify_learned:  # type: ignore[attr-defined]
            continue
        assert correction.learned_version_id is not None
        notices.append(
            LearnedNotice(
                correction_id=correction.id,
                # In the chat where the photo was answered (a private chat's id is the user's id).
                chat_id=prediction.chat_id if prediction is not None else user.telegram_id,
                reply_to=prediction.message_id if prediction is not None else None,
                label=correction.label,
                said=prediction.label if prediction is not None else None,
                version_id=correction.learned_version_id,
                photo_sent_at=prediction.created_at if prediction is not None else correction.created_at,
                transport=prediction.transport if prediction is not None else user.transport,
            )
        )
    session.flush()
    return notices


def set_notify_learned(session: Session, *, user_id: int, on: bool) -> None:
    """Turn a user's "your correction was learned" notices on or off."""
    session.execute(update(User).where(User.id == user_id).values(notify_learned=on))
