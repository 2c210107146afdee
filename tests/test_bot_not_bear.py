"""Not a bear (issue 17) and bound buttons (issue 14) through python-telegram-bot and the fake Bot API."""

from __future__ import annotations

from sqlalchemy import func, select

from bearbot.labels import NOT_BEAR
from core.texts import FOREIGN_BUTTON
from storage.models import Correction, CorrectionStatus, PredictionRecord
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ADMIN, ALICE, BOB, FIXTURES, GROUP, RunningBot, bear, eventually, not_bear


def _data(sent: object, label: str) -> str:
    return next(data for _, data in sent.buttons if data.endswith(f":{label}"))  # type: ignore[attr-defined]


def _rows(bot: RunningBot) -> list[tuple[str, CorrectionStatus]]:
    return bot.db(lambda s: [(c.label, c.status) for c in s.scalars(select(Correction).order_by(Correction.id))])


def test_a_pet_is_refused_kindly_and_confirming_stores_none(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, photo=not_bear("dog_brown")))
    assert answer.text.startswith("🤔 I don't see a bear here — if there is one, reply /correct ")
    texts = [text for text, _ in answer.buttons]
    assert texts[0] == "✅ right, no bear" and {"it's grizzly", "it's black", "it's teddy"} <= set(texts)
    bot.api.press_button(ALICE, answer, _data(answer, NOT_BEAR))
    bot.api.wait_for(lambda s: s.message_id == answer.message_id and "Recorded: not a bear" in (s.text or ""))
    assert _rows(bot) == [(NOT_BEAR, CorrectionStatus.PENDING)]
    assert bot.db(lambda s: s.scalar(select(PredictionRecord.is_bear))) is False


def test_not_a_bear_button_under_a_bear_answer(bot: RunningBot) -> None:
    # The one cat in 160 the threshold still calls a bear: users can say so with one tap.
    answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=(FIXTURES / "pet_called_bear" / "cat.jpg").read_bytes()))
    assert answer.text.startswith("🐻 ")
    assert ("🚫 not a bear", _data(answer, NOT_BEAR)) in answer.buttons
    for user in (ALICE, BOB):
        bot.api.press_button(user, answer, _data(answer, NOT_BEAR))
    bot.api.wait_for(lambda s: s.message_id == answer.message_id and "next training run" in (s.text or ""))
    assert _rows(bot) == [(NOT_BEAR, CorrectionStatus.ACCEPTED)] * 2


def test_correct_none_and_its_aliases(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=bear("black", 2)))
    reply = bot.reply(bot.send(ALICE, chat=GROUP, text="/correct none", reply_to=answer.message_id))
    assert reply.text.startswith("Recorded: not a bear — I said black")
    reply = bot.reply(bot.send(BOB, chat=GROUP, text="/correct not a bear", reply_to=answer.message_id))
    assert reply.text.startswith("Recorded: not a bear") and "next training run" in reply.text
    reply = bot.reply(bot.send(ALICE, chat=GROUP, text="/correct NotBear", reply_to=answer.message_id))
    assert reply.text.startswith("Recorded: not a bear") or reply.text.startswith("Updated: not a bear")
    assert _rows(bot) == [(NOT_BEAR, CorrectionStatus.ACCEPTED)] * 2
    usage = bot.reply(bot.send(ALICE, text="/correct")).text
    assert "/correct none" in usage and "notbear" in usage
    help_text = bot.reply(bot.send(ALICE, text="/help")).text
    assert "/correct none" in help_text and "notbear" in help_text and "not a bear" in help_text


def test_a_refused_photo_becomes_a_bear_only_with_an_admin(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, chat=GROUP, photo=not_bear("cat_black")))
    assert answer.text.startswith("🤔")
    for user in (ALICE, BOB):  # two users agreeing would accept any other label
        reply = bot.reply(bot.send(user, chat=GROUP, text="/correct black", reply_to=answer.message_id))
        assert "an admin has to approve it" in reply.text
    bot.api.press_button(BOB, answer, _data(answer, "teddy"))  # the buttons follow the same rule
    bot.api.wait_for(lambda s: s.message_id == answer.message_id and "an admin has to approve" in (s.text or ""))
    assert [status for _, status in _rows(bot)] == [CorrectionStatus.PENDING] * 2
    reply = bot.reply(bot.send(ADMIN, chat=GROUP, text="/correct black", reply_to=answer.message_id))
    assert "next training run" in reply.text
    assert (("black", CorrectionStatus.ACCEPTED)) in _rows(bot)
    assert bot.reply(bot.send(ADMIN, text="/pending")).text.startswith("Pending corrections: 2")


def test_forged_and_foreign_buttons_are_refused(bot: RunningBot) -> None:
    alices = bot.reply(bot.send(ALICE, photo=bear("grizzly")))
    alice_pred = int(_data(alices, "grizzly").split(":")[1])
    bobs = bot.reply(bot.send(BOB, photo=bear("teddy")))
    # Bob writes Alice's prediction id into a button of his own answer (sequential ids are easy to guess).
    bot.api.press_button(BOB, bobs, f"fb:{alice_pred}:black")
    eventually(lambda: bot.api.callback_answers)
    assert bot.api.callback_answers[-1]["text"] == FOREIGN_BUTTON and bot.api.callback_answers[-1]["show_alert"]
    # …and Alice's own message in Alice's chat with a label that is no label at all.
    bot.api.press_button(BOB, alices, f"fb:{alice_pred}:panda")
    eventually(lambda: len(bot.api.callback_answers) == 2)
    assert "out of date" in bot.api.callback_answers[-1]["text"]
    assert bot.db(lambda s: s.scalar(select(func.count(Correction.id)))) == 0
    # The real button under Bob's own answer still works.
    bot.api.press_button(BOB, bobs, _data(bobs, "black"))
    bot.api.wait_for(lambda s: s.message_id == bobs.message_id and "Recorded: black" in (s.text or ""))
    assert _rows(bot) == [("black", CorrectionStatus.PENDING)]


def test_a_long_correct_is_echoed_short(bot: RunningBot) -> None:
    answer = bot.reply(bot.send(ALICE, photo=bear("grizzly")))
    reply = bot.reply(bot.send(ALICE, text="/correct " + "a" * 4000, reply_to=answer.message_id))
    assert reply.text.startswith("I don't know the label “aaa") and "…”" in reply.text
    assert len(reply.text) < 200
    assert bot.db(lambda s: s.scalar(select(func.count(Correction.id)))) == 0
