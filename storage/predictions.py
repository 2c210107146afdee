"""Prediction rows: one per answered photo, found again from either message of the exchange."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bearbot.prediction import Prediction
from storage.models import Correction, CorrectionStatus, PredictionRecord


def record_prediction(
    session: Session,
    *,
    image_id: int,
    user_id: int | None,
    chat_id: int,
    message_id: int | None,
    answer: Prediction,
    transport: str = "telegram",
) -> PredictionRecord:
    """Store what the model said about ``image_id`` for the user's message; returns the row."""
    row = PredictionRecord(
        image_id=image_id,
        user_id=user_id,
        transport=transport,
        chat_id=chat_id,
        message_id=message_id,
        model_version_id=answer.model_version,
        label=answer.label,
        confidence=float(answer.confidence),
        probabilities={k: float(v) for k, v in answer.probabilities.items()},
        is_bear=bool(answer.is_bear),
        latency_ms=float(answer.latency_ms),
    )
    session.add(row)
    session.flush()
    return row


def set_reply_message(session: Session, *, prediction_id: int, reply_message_id: int) -> None:
    """Remember the bot's answer message, so a reply to it finds this prediction."""
    row = session.get(PredictionRecord, prediction_id)
    if row is not None:
        row.reply_message_id = reply_message_id


def get_prediction(session: Session, *, prediction_id: int) -> PredictionRecord | None:
    return session.get(PredictionRecord, prediction_id)


def find_for_message(
    session: Session, *, chat_id: int, message_id: int, transport: str = "telegram"
) -> PredictionRecord | None:
    """The prediction answered by (or answering) ``message_id`` in ``chat_id``; the newest wins."""
    return session.scalar(
        select(PredictionRecord)
        .where(
            PredictionRecord.transport == transport,
            PredictionRecord.chat_id == chat_id,
            or_(PredictionRecord.reply_message_id == message_id, PredictionRecord.message_id == message_id),
        )
        .order_by(PredictionRecord.id.desc())
        .limit(1)
    )


def latest_answer(session: Session, *, transport: str, chat_id: int, user_id: int) -> PredictionRecord | None:
    """The newest prediction for ``user_id``'s photo in ``chat_id`` (a /correct that replies to nothing)."""
    return session.scalar(
        select(PredictionRecord)
        .where(PredictionRecord.transport == transport, PredictionRecord.chat_id == chat_id, PredictionRecord.user_id == user_id)
        .order_by(PredictionRecord.id.desc())
        .limit(1)
    )


def count_predictions(session: Session) -> int:
    return int(session.scalar(select(func.count(PredictionRecord.id))) or 0)


@dataclass(frozen=True)
class ClassAgreement:
    """How often users agreed with the model when it said ``label``."""

    label: str
    predicted: int  # predictions with this label
    reviewed: int  # of those, how many got a (non-rejected) user label
    agreed: int  # of those, how many users said the same label

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


def agreement_by_class(session: Session) -> list[ClassAgreement]:
    """Per predicted label: predictions, user-reviewed ones and agreements (confirm = agree)."""
    predicted = dict(session.execute(select(PredictionRecord.label, func.count()).group_by(PredictionRecord.label)).all())
    rows = session.execute(
        select(PredictionRecord.label, Correction.label)
        .join(Correction, Correction.prediction_id == PredictionRecord.id)
        .where(Correction.status != CorrectionStatus.REJECTED)
    ).all()
    reviewed: dict[str, int] = {}
    agreed: dict[str, int] = {}
    for said, truth in rows:
        reviewed[said] = reviewed.get(said, 0) + 1
        agreed[said] = agreed.get(said, 0) + int(said == truth)
    return [
        ClassAgreement(label=label, predicted=int(n), reviewed=reviewed.get(label, 0), agreed=agreed.get(label, 0))
        for label, n in sorted(predicted.items())
    ]
