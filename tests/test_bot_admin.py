"""Admin commands end to end: /retrain, /stats, /model, /rollback, /pending, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.models import Correction, CorrectionStatus, DatasetItem, Origin, Split, TrainingRun
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ADMIN, ALICE, BOB, GROUP, bear, eventually, new_version, RunningBot


@pytest.mark.parametrize("command", ["/retrain", "/stats", "/model", "/rollback", "/pending"])
def test_non_admin_is_refused_and_nothing_runs(bot: RunningBot, command: str) -> None:
    assert bot.reply(bot.send(ALICE, text=command)).text == "Sorry, that command is for the bot's admins."
    assert bot.db(lambda s: s.scalar(select(func.count(TrainingRun.id)))) == 0
    assert bot.services.serving.version.id == 1


def test_admin_retrain_without_dataset_explains_how_to_build_one(bot: RunningBot) -> None:
    text = bot.reply(bot.send(ADMIN, text="/retrain")).text
    assert "bearbot dataset build" in text
    assert bot.db(lambda s: s.scalar(select(func.count(TrainingRun.id)))) == 0


def add_dataset(bot: RunningBot) -> None:
    """Three imported grizzlies (one golden): enough for /retrain to queue a run."""

    def add(session: object) -> None:
        for n, split in ((1, Split.GOLDEN), (2, Split.TRAIN), (3, Split.TRAIN)):
            image, _ = bot.services.storage.images.put(session, data=bear("grizzly", n), origin=Origin.IMPORT)
            session.add(DatasetItem(image_id=image.id, label="grizzly", source="import", split=split))  # type: ignore[attr-defined]

    bot.db(add)


def test_admin_retrain_queues_then_joins(bot: RunningBot) -> None:
    add_dataset(bot)
    assert bot.reply(bot.send(ADMIN, text="/retrain")).text.startswith("Queued training run #1")
    assert "already queued" in bot.reply(bot.send(ADMIN, text="/retrain")).text
    run = bot.db(lambda s: s.scalar(select(TrainingRun)))
    assert run.trigger == "admin" and run.requested_chat_id == ADMIN["id"] and run.requested_by is not None


def test_retrain_asked_in_a_group_reports_to_the_admin_privately(bot: RunningBot) -> None:
    """The run's outcome names and shows users' photos: it is addressed to the admin, not the group."""
    from bot.telegram.adapter import SENT_PRIVATELY

    add_dataset(bot)
    assert bot.reply(bot.send(ADMIN, chat=GROUP, text="/retrain")).text == SENT_PRIVATELY
    bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Queued training run #1"))
    run = bot.db(lambda s: s.scalar(select(TrainingRun)))
    assert run.requested_chat_id == ADMIN["id"]


def test_stats_and_model(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=bear("grizzly")))
    bot.reply(bot.send(ALICE, chat=GROUP, text="/correct grizzly", reply_to=answer.message_id))
    bot.reply(bot.send(BOB, chat=GROUP, text="/correct grizzly", reply_to=answer.message_id))
    stats = bot.reply(bot.send(ADMIN, text="/stats")).text
    assert "I have answered 1 photo; in 0 of them I saw no bear." in stats
    assert "Users sent 2 corrections: 2 accepted, 0 waiting for review, 0 rejected." in stats
    assert "2 of them were ✅ confirmations of my answer." in stats
    assert "grizzly: 2 of 2 reviewed right (100%); 1 answer in all" in stats
    assert "Serving model v1, the built-in zero-shot model" in stats and "Training runs: none yet." in stats
    model = bot.reply(bot.send(ADMIN, text="/model")).text
    assert model.startswith("Serving model v1, the built-in zero-shot model (efficientnet_lite0)")
    assert "No training: EfficientNet-Lite0 reading ImageNet's own bear classes." in model


def test_admin_output_asked_in_a_group_goes_to_the_private_chat(bot: RunningBot) -> None:
    """/stats in a group: the numbers (and plots) reach the admin's private chat, the group only a note."""
    from bot.telegram.adapter import SENT_PRIVATELY

    asked = bot.send(ADMIN, chat=GROUP, text="/stats")
    assert bot.reply(asked).text == SENT_PRIVATELY
    private = bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and "I have answered" in (s.text or ""))[0]
    assert private.reply_to is None
    in_group = [s for s in bot.api.sent if s.chat_id == GROUP["id"]]
    assert [s.text for s in in_group] == [SENT_PRIVATELY]  # once, however many messages went privately


def test_admin_without_a_private_chat_is_told_to_open_one(bot: RunningBot) -> None:
    """Telegram refuses a bot's first private message (403): the group hears how to fix it, not the answer."""
    from bot.telegram.adapter import OPEN_PRIVATE_CHAT, SENT_PRIVATELY

    bot.api.unreachable.add(ADMIN["id"])
    assert bot.reply(bot.send(ADMIN, chat=GROUP, text="/model")).text == OPEN_PRIVATE_CHAT
    assert not [s for s in bot.api.sent if "Serving model" in (s.text or "")]
    bot.api.unreachable.clear()  # the admin presses Start; asking again works
    assert bot.reply(bot.send(ADMIN, chat=GROUP, text="/model")).text == SENT_PRIVATELY
    bot.api.wait_for(lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Serving model v1"))


def test_pending_lists_with_buttons_and_admin_approves(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, photo=bear("black", 2)))
    bot.reply(bot.send(ALICE, text="/correct teddy", reply_to=answer.message_id))
    pending = bot.send(ADMIN, text="/pending")
    assert bot.reply(pending).text.startswith("Pending corrections: 1")
    card = bot.api.wait_for(lambda s: s.method == "sendPhoto")[0]
    assert card.photo == bear("black", 2) and "@alice says teddy" in (card.text or "")
    approve = next(data for text, data in card.buttons if "approve" in text)
    bot.api.press_button(BOB, card, approve)  # not an admin: refused
    eventually(lambda: bot.api.callback_answers)
    assert bot.api.callback_answers[-1]["text"] == "Sorry, that command is for the bot's admins."
    assert bot.db(lambda s: s.scalar(select(Correction.status))) == CorrectionStatus.PENDING
    bot.api.press_button(ADMIN, card, approve)
    bot.api.wait_for(lambda s: s.message_id == card.message_id and "approved" in (s.text or ""))
    assert bot.db(lambda s: s.scalar(select(Correction.status))) == CorrectionStatus.ACCEPTED
    assert bot.reply(bot.send(ADMIN, text="/pending")).text == "No pending corrections. 🎉"


def test_rollback_swaps_back_and_next_photo_uses_it(bot: RunningBot) -> None:
    assert "Nothing to roll back to" in bot.reply(bot.send(ADMIN, text="/rollback")).text
    new_version(bot)
    eventually(lambda: bot.services.serving.version.id == 2)
    assert bot.reply(bot.send(ADMIN, text="/rollback")).text == "Rolled back: now serving v1 (was v2)."
    assert bot.services.serving.version.id == 1
    bot.reply(bot.send(ALICE, photo=bear("teddy")))
    assert _last_prediction_version(bot) == 1


def _last_prediction_version(bot: RunningBot) -> int:
    from storage.models import PredictionRecord

    return eventually(lambda: bot.db(lambda s: s.scalar(select(PredictionRecord.model_version_id).order_by(PredictionRecord.id.desc()))))
