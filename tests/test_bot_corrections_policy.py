"""The correction acceptance policy in ``storage.corrections`` (no Telegram involved)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bearbot.prediction import Prediction
from storage import corrections, predictions, snapshot
from storage.models import Correction, CorrectionStatus, Origin
from storage.store import Storage
from storage.users import upsert_user
from tests.helpers import image_bytes


def _setup(session: Session, storage: Storage, n_images: int = 1) -> tuple[list[int], list[int], int]:
    users = [upsert_user(session, telegram_id=100 + i, display_name=f"u{i}", is_admin=False).id for i in range(3)]
    admin = upsert_user(session, telegram_id=1, display_name="admin", is_admin=True).id
    preds = []
    for i in range(n_images):
        image, _ = storage.images.put(session, data=image_bytes((10 * i, 80, 40)), origin=Origin.UPLOAD)
        answer = Prediction(label="black", confidence=0.6, probabilities={"black": 0.6, "grizzly": 0.3, "teddy": 0.1},
                        is_bear=True, model_version=None)
        preds.append(predictions.record_prediction(session, image_id=image.id, user_id=users[0], chat_id=1,
                                                   message_id=i, answer=answer).id)
    return users, preds, admin


def _record(session: Session, pred_id: int, user: int, label: str, *, admin: bool = False) -> corrections.CorrectionOutcome:
    pred = predictions.get_prediction(session, prediction_id=pred_id)
    assert pred is not None
    return corrections.record_correction(session, image_id=pred.image_id, user_id=user, label=label,
                                         prediction_id=pred_id, is_admin=admin, required=2)


def test_one_user_flooding_cannot_move_the_training_data(storage: Storage) -> None:
    with storage.session() as session:
        users, preds, _ = _setup(session, storage, n_images=5)
        for _ in range(3):
            for pred in preds:
                for label in ("grizzly", "teddy", "grizzly"):
                    outcome = _record(session, pred, users[0], label)
        assert outcome.status == CorrectionStatus.PENDING and outcome.agreeing_users == 1
        assert corrections.count_by_status(session)[CorrectionStatus.PENDING] == 5  # one row per image, updated
        assert snapshot.corrections_waiting(session) == []


def test_two_users_agreeing_accept_and_a_changed_mind_starts_over(storage: Storage) -> None:
    with storage.session() as session:
        users, (pred,), _ = _setup(session, storage)
        assert _record(session, pred, users[0], "grizzly").status == CorrectionStatus.PENDING
        assert _record(session, pred, users[1], "teddy").status == CorrectionStatus.PENDING
        second = _record(session, pred, users[2], "grizzly")
        assert second.status == CorrectionStatus.ACCEPTED and second.agreeing_users == 2
        statuses = {c.user_id: c.status for c in session.scalars(select(Correction).where(Correction.prediction_id == pred))}
        assert statuses == {users[0]: CorrectionStatus.ACCEPTED, users[1]: CorrectionStatus.PENDING,
                            users[2]: CorrectionStatus.ACCEPTED}
        assert len(snapshot.corrections_waiting(session)) == 2


def test_admin_label_is_accepted_at_once_and_admin_reviews(storage: Storage) -> None:
    with storage.session() as session:
        users, (pred,), admin = _setup(session, storage)
        outcome = _record(session, pred, admin, "teddy", admin=True)
        assert outcome.status == CorrectionStatus.ACCEPTED and outcome.correction.reviewed_by == admin
        pending = _record(session, pred, users[0], "grizzly").correction
        assert [c.id for c in corrections.list_pending(session)] == [pending.id]
        rejected = corrections.review(session, correction_id=pending.id, admin_id=admin, approve=False)
        assert rejected is not None and rejected.status == CorrectionStatus.REJECTED
        assert corrections.list_pending(session) == []
        approved = corrections.review(session, correction_id=pending.id, admin_id=admin, approve=True)
        assert approved is not None and approved.status == CorrectionStatus.ACCEPTED
        assert corrections.review(session, correction_id=999, admin_id=admin, approve=True) is None
