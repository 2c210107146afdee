"""'Your correction is now part of vN': told once, in the chat of the photo, opt-out with /notify off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import Correction, User
from storage.notices import claim_learned_notices
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ADMIN, ALICE, BOB, CachingLoader, RunningBot, bear, eventually, new_version


@pytest.fixture
def learning_bot(tmp_path: Path, loader: CachingLoader) -> Iterator[RunningBot]:  # noqa: F811 - fixture
    with RunningBot(tmp_path / "var", loader=loader, learning=True, trainer_mode="external", model_poll_seconds=0.2) as bot:
        yield bot


def _corrected(bot: RunningBot, user: dict[str, object], photo: bytes, label: str) -> tuple[dict[str, object], int]:
    """``user`` sends ``photo`` and corrects the answer to ``label``; returns the photo message and the correction id."""
    message = bot.send(user, photo=photo)
    answer = bot.reply(message)
    bot.reply(bot.send(user, text=f"/correct {label}", reply_to=answer.message_id))
    cid = eventually(lambda: bot.db(lambda s: s.scalar(
        select(Correction.id).join(User, User.id == Correction.user_id).where(User.telegram_id == user["id"])
        .order_by(Correction.id.desc())
    )))
    return message, cid


def _learn(bot: RunningBot, version_id: int, *ids: int) -> None:
    def mark(session: Session) -> None:
        # What the trainer does for the corrections a promoted model was trained on.
        session.execute(update(Correction).where(Correction.id.in_(ids)).values(status="accepted", learned_version_id=version_id))

    bot.db(mark)


def test_the_user_hears_once_in_reply_to_their_photo_and_can_opt_out(learning_bot: RunningBot) -> None:
    bot = learning_bot
    alice_photo, alice_cid = _corrected(bot, ALICE, bear("grizzly"), "black")
    bob_photo, bob_cid = _corrected(bot, BOB, bear("teddy"), "grizzly")
    assert bot.reply(bot.send(BOB, text="/notify off")).text.startswith("OK: no more messages")
    v2 = new_version(bot)
    _learn(bot, v2, alice_cid, bob_cid)

    notice = bot.api.wait_for(lambda s: s.reply_to == alice_photo["message_id"] and "part of model" in (s.text or ""))[0]
    assert notice.chat_id == ALICE["id"]
    assert f"is now part of model v{v2}" in notice.text and "it is black; I had said grizzly" in notice.text
    assert "/notify off" in notice.text
    # Later dispatches (every few seconds) send nothing more, and Bob, who opted out, hears nothing.
    assert not eventually(lambda: len([s for s in bot.api.sent if "part of model" in (s.text or "")]) > 1, timeout=4.0)
    assert not [s for s in bot.api.sent if s.reply_to == bob_photo["message_id"] and "part of model" in (s.text or "")]
    assert bot.db(lambda s: s.scalar(select(Correction.learned_notice_at).where(Correction.id == bob_cid))) is not None


def test_notify_on_and_quiet_change_the_users_choice(learning_bot: RunningBot) -> None:
    bot = learning_bot

    def choice() -> bool | None:
        return bot.db(lambda s: s.scalar(select(User.notify_learned).where(User.telegram_id == ALICE["id"])))

    assert bot.reply(bot.send(ALICE, text="/quiet")).text.startswith("OK: no more messages")
    assert choice() is False
    assert bot.reply(bot.send(ALICE, text="/notify on")).text.startswith("OK: I will tell you")
    assert choice() is True
    usage = bot.reply(bot.send(ALICE, text="/notify maybe")).text
    assert "/notify off" in usage and choice() is True
    assert "/notify off" in bot.reply(bot.send(ALICE, text="/help")).text


def test_a_second_replica_claims_nothing_already_claimed(bot: RunningBot) -> None:  # noqa: F811 - no learning jobs
    photo, cid = _corrected(bot, ADMIN, bear("black"), "teddy")  # an admin's correction is accepted at once
    _learn(bot, new_version(bot), cid)
    first = bot.db(claim_learned_notices)
    second = bot.db(claim_learned_notices)  # another replica, a moment later
    assert [n.correction_id for n in first] == [cid] and first[0].reply_to == photo["message_id"]
    assert first[0].label == "teddy" and second == []
