"""Fault suite, poisoning: new accounts agreeing accept nothing and queue no run (issue 14).

Before: two accounts agreeing accepted any label, and every accepted correction counted toward
the retrain trigger, so 50 fresh accounts could both teach a wrong label and start a run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bearbot.prediction import Prediction
from bearbot.settings import load_settings
from core import learning
from storage import corrections, predictions, runs, trust
from storage.models import (
    Correction,
    CorrectionStatus,
    Origin,
    TrainingRun,
    Trigger,
    User,
    UserTrust,
    utcnow,
)
from storage.store import Storage, open_storage
from storage.trust import TrustRule
from storage.users import upsert_user
from tests.bot_harness import (
    ADMIN,
    FIXTURES,
    CachingLoader,
    RunningBot,
    eventually,
    loader,  # noqa: F401 - pytest fixture
)
from tests.helpers import image_bytes
from trainer.dataset_import import import_folder

RULE = TrustRule(min_days=7, min_right=3, max_wrong_share=0.2)


def _photo(session: Session, storage: Storage, n: int) -> int:
    """An uploaded photo the bot called black; returns its image id."""
    image, _ = storage.images.put(session, data=image_bytes((3 * n % 250, 80, 40)), origin=Origin.UPLOAD)
    answer = Prediction(label="black", confidence=0.6, probabilities={"black": 0.6, "grizzly": 0.3, "teddy": 0.1},
                        is_bear=True, model_version=None)
    predictions.record_prediction(session, image_id=image.id, user_id=None, chat_id=1, message_id=n, answer=answer)
    return image.id


def _user(session: Session, telegram_id: int, *, admin: bool = False, age_days: float = 0.0) -> int:
    user = upsert_user(session, telegram_id=telegram_id, display_name=str(telegram_id), is_admin=admin)
    user.created_at = utcnow() - timedelta(days=age_days)
    session.flush()
    return user.id


def _label(session: Session, image_id: int, user_id: int, label: str, *, admin: bool = False) -> corrections.CorrectionOutcome:
    return corrections.record_correction(session, image_id=image_id, user_id=user_id, label=label, prediction_id=None,
                                         is_admin=admin, required=2, trust_rule=RULE)


def test_fifty_new_accounts_agreeing_accept_nothing_and_count_for_no_retrain(storage: Storage) -> None:
    with storage.session() as s:
        image = _photo(s, storage, 1)
        flood = [_user(s, 5000 + i, age_days=30) for i in range(50)]  # old accounts, but no record of being right
        for uid in flood:
            outcome = _label(s, image, uid, "teddy")
        assert outcome.status is CorrectionStatus.PENDING
        assert outcome.agreeing_users == 50 and outcome.trusted_agreeing == 0
        assert corrections.count_by_status(s)[CorrectionStatus.ACCEPTED] == 0
        assert trust.trusted_waiting(s, RULE) == 0
        # The same flood under the old policy (everyone counts) would have accepted it: the rule is what stops it.
        assert corrections.trusted_agreeing(s, image_id=image, label="teddy", rule=None) == 50


def test_trust_is_earned_from_decided_labels_and_then_counts(storage: Storage) -> None:
    with storage.session() as s:
        admin = _user(s, 1, admin=True)
        carol, dave, eve = (_user(s, 100 + i, age_days=10) for i in range(3))
        photos = [_photo(s, storage, n) for n in range(6)]
        for image in photos[:3]:  # Carol and Dave label three photos; an admin labels the same
            _label(s, image, carol, "grizzly")
            _label(s, image, dave, "grizzly")
            assert _label(s, image, admin, "grizzly", admin=True).status is CorrectionStatus.ACCEPTED
        _label(s, photos[3], eve, "teddy")
        _label(s, photos[3], admin, "grizzly", admin=True)  # Eve was wrong once
        record = trust.get_trust(s, user_id=carol)
        assert record is not None and (record.made, record.right, record.wrong) == (3, 3, 0)
        wrong = trust.get_trust(s, user_id=eve)
        assert wrong is not None and (wrong.made, wrong.right, wrong.wrong) == (1, 0, 1)
        assert trust.trusted_users(s, {carol, dave, eve, admin}, RULE) == {carol, dave, admin}

        # Two established users agreeing accept a label, and it counts toward the trigger; a new account does not help.
        newbie = _user(s, 999)
        assert _label(s, photos[4], carol, "teddy").status is CorrectionStatus.PENDING
        assert _label(s, photos[4], newbie, "teddy").status is CorrectionStatus.PENDING  # 1 trusted of 2 needed
        accepted = _label(s, photos[4], dave, "teddy")
        assert accepted.status is CorrectionStatus.ACCEPTED and accepted.trusted_agreeing == 2
        assert trust.get_trust(s, user_id=newbie).right == 1  # it agreed with the decided label: earned
        waiting_before = trust.trusted_waiting(s, RULE)

        # Muted by an admin: Carol no longer counts, for agreement or the trigger.
        trust.mute(s, user_id=carol, by=admin)
        assert carol not in trust.trusted_users(s, {carol}, RULE)
        assert trust.trusted_waiting(s, RULE) == waiting_before  # Dave's row still vouches for photos[4]
        _label(s, photos[5], carol, "black")
        assert _label(s, photos[5], dave, "black").status is CorrectionStatus.PENDING


def test_trust_needs_time_and_a_clean_record(storage: Storage) -> None:
    with storage.session() as s:
        admin = _user(s, 1, admin=True)
        fresh, sloppy = _user(s, 200, age_days=1), _user(s, 201, age_days=30)
        photos = [_photo(s, storage, n) for n in range(8)]
        for image in photos[:4]:
            _label(s, image, fresh, "grizzly")
            _label(s, image, sloppy, "grizzly")
            _label(s, image, admin, "grizzly", admin=True)
        for image in photos[4:6]:
            _label(s, image, sloppy, "teddy")
            _label(s, image, admin, "black", admin=True)
        assert trust.trusted_users(s, {fresh, sloppy}, RULE) == set()  # one too new, one wrong 2 of 6 times
        s.execute(update(User).where(User.id == fresh).values(created_at=utcnow() - timedelta(days=8)))
        s.execute(update(UserTrust).where(UserTrust.user_id == fresh).values(first_seen=utcnow() - timedelta(days=8)))
        assert trust.trusted_users(s, {fresh}, RULE) == {fresh}
        # An admin's review counts too: rejecting one of the newly-trusted user's corrections.
        pending = _label(s, photos[6], fresh, "teddy").correction
        corrections.review(s, correction_id=pending.id, admin_id=admin, approve=False)
        assert trust.get_trust(s, user_id=fresh).wrong == 1
        assert trust.trusted_users(s, {fresh}, RULE) == {fresh}  # 1 wrong of 5 decided is within 0.2


def test_a_bot_under_a_new_account_flood_accepts_nothing_and_queues_no_run(tmp_path: Path, loader: CachingLoader) -> None:  # noqa: F811
    """50 new accounts send one photo and tap "it's teddy"; the corrections trigger (1 wanted) stays quiet."""
    data_dir = tmp_path / "var"
    with open_storage(load_settings(data_dir=data_dir)) as store:  # a dataset, so a retrain could start
        import_folder(store, FIXTURES / "bears", progress=False)
    photo = (FIXTURES / "hard" / "black_b4ba30.jpg").read_bytes()  # a cinnamon black bear the model calls grizzly
    socks = [{"id": 7000 + i, "is_bot": False, "first_name": f"sock{i}"} for i in range(50)]
    with RunningBot(data_dir, loader=loader, retrain_min_corrections=1, trainer_mode="external") as bot:
        answers = [bot.reply(bot.send(sock, photo=photo), timeout=60) for sock in socks]
        for sock, answer in zip(socks, answers, strict=True):
            bot.api.press_button(sock, answer, next(data for text, data in answer.buttons if text == "it's teddy"))
        assert eventually(lambda: len(bot.api.callback_answers) == 50, timeout=60)
        votes = select(func.count(func.distinct(Correction.image_id)), func.count()).where(Correction.label == "teddy")
        assert tuple(bot.db(lambda s: s.execute(votes).one())) == (1, 50)  # one photo, 50 agreeing accounts
        bot.call(lambda: learning.corrections_check(bot.services))  # what the repeating job runs
        assert bot.db(lambda s: s.scalar(select(func.count()).select_from(TrainingRun))) == 0
        assert bot.db(lambda s: corrections.count_by_status(s)[CorrectionStatus.ACCEPTED]) == 0
        # The control: an admin's label carries trust, so the same check now queues a run.
        mine = bot.reply(bot.send(ADMIN, photo=photo))
        reply = bot.reply(bot.send(ADMIN, text="/correct black", reply_to=mine.message_id))
        assert "next training run" in reply.text
        bot.call(lambda: learning.corrections_check(bot.services))
        run = bot.db(runs.active_run)
        assert run is not None and run.trigger is Trigger.CORRECTIONS
