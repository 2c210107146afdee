"""Fault suite, floods: Telegram's 429 in one chat, and users who send chatter the bot would answer."""

from __future__ import annotations

import time

from tests.bot_harness import ALICE, BOB, RunningBot, eventually
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures


def test_a_429_in_one_chat_does_not_delay_another(bot: RunningBot) -> None:
    bot.api.fail_next("sendMessage", retry_after=3)
    start = time.monotonic()
    alice = bot.send(ALICE, text="/help")
    eventually(lambda: any(m == "sendMessage" for m, _ in bot.api.calls), timeout=10)  # Alice's answer got the 429
    bob_answer = bot.reply(bot.send(BOB, text="/help"))
    assert bob_answer.at - start < 2.0, f"Bob waited {bob_answer.at - start:.1f} s for Alice's flood control"
    alice_answer = bot.reply(alice)
    assert alice_answer.at - start >= 2.9  # Alice's own answer honours the retry_after
    assert alice_answer.text.startswith("Send me a photo")


def test_stickers_text_and_unknown_commands_are_throttled_per_user(bot: RunningBot) -> None:
    limit = bot.settings.chatter_per_minute
    kinds = [{"sticker": True}, {"text": "hello bear"}, {"text": "/nonsense"}]
    messages = [bot.send(ALICE, **kinds[i % 3]) for i in range(limit + 8)]
    answered = eventually(lambda: len([m for m in messages if bot.api.replies_to(m["message_id"])]) >= limit)
    assert answered
    bob = bot.reply(bot.send(BOB, sticker=True))  # someone else is answered meanwhile
    assert bob.text
    time.sleep(1.0)  # every update of Alice's has been handled by now
    assert len([m for m in messages if bot.api.replies_to(m["message_id"])]) == limit
    assert bot.reply(bot.send(ALICE, text="/help")).text.startswith("Send me a photo")  # real commands still work
