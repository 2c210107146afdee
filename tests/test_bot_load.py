"""Behaviour under load: concurrent photos with /help in between, and Telegram's flood control."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.models import PredictionRecord
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.bot_harness import ALICE, CachingLoader, RunningBot, bear, eventually

USERS = [{"id": 3000 + i, "is_bot": False, "first_name": f"user{i}"} for i in range(20)]


@pytest.mark.slow
def test_help_is_answered_while_20_photos_are_classified(tmp_path: Path, loader: CachingLoader) -> None:
    images = [bear(label, n) for label in ("grizzly", "black", "teddy") for n in (1, 2, 3, 4)]
    with RunningBot(tmp_path / "var", loader=loader) as bot:
        bot.reply(bot.send(ALICE, photo=images[0]))  # warm: first-request costs are not the point here
        start = time.monotonic()
        photos = [bot.send(user, photo=images[i % len(images)]) for i, user in enumerate(USERS)]
        help_msg = bot.send(ALICE, text="/help")
        help_at = bot.reply(help_msg).at - start
        answers = [bot.reply(p, timeout=60) for p in photos]
        last_photo_at = max(a.at for a in answers) - start
        first_photo_at = min(a.at for a in answers) - start
        print(f"\n/help answered after {help_at * 1000:.0f} ms; photos answered from "
              f"{first_photo_at * 1000:.0f} to {last_photo_at * 1000:.0f} ms")
        assert all(a.text.startswith("🐻") for a in answers)
        assert help_at < last_photo_at
        assert help_at < 1.0
        assert eventually(lambda: bot.db(lambda s: s.scalar(select(func.count(PredictionRecord.id)))) == 21)


def test_flood_control_retry_after_is_honoured(bot: RunningBot) -> None:
    bot.api.fail_next("sendMessage", retry_after=1)
    start = time.monotonic()
    answer = bot.reply(bot.send(ALICE, text="/help"))
    assert answer.text.startswith("Send me a photo")
    assert answer.at - start >= 0.9
    assert [m for m, _ in bot.api.calls].count("sendMessage") == 2
