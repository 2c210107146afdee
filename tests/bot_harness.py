"""Run the real bot (python-telegram-bot and all) against the fake Bot API in a background thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bearbot.settings import Settings, load_settings
from bot.telegram.app import build_application, get_services, running
from core.services import Services
from storage import model_versions
from tests.core_harness import FIXTURES, CachingLoader, bear, loader, not_bear  # noqa: F401 - re-exported for the bot tests
from tests.fake_bot_api import FakeBotApi, Sent
from tests.loop_thread import LoopThread

ADMIN = {"id": 1001, "is_bot": False, "first_name": "Ada", "username": "ada"}
ALICE = {"id": 2001, "is_bot": False, "first_name": "Alice", "username": "alice"}
BOB = {"id": 2002, "is_bot": False, "first_name": "Bob", "username": "bob"}
GROUP = {"id": -100, "type": "group", "title": "bear spotters"}


class RunningBot(LoopThread):
    """The bot, its fake Bot API server and its settings; use as a context manager."""

    def __init__(
        self,
        data_dir: Path,
        *,
        loader: CachingLoader | None = None,  # noqa: F811 - not the fixture
        learning: bool = False,
        poll_timeout: int = 1,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.api = FakeBotApi()
        self.data_dir = data_dir
        self.loader = loader
        self.learning = learning
        self.poll_timeout = poll_timeout
        self.overrides = {"admin_ids": frozenset({ADMIN["id"]}), **overrides}
        self.settings: Settings | None = None
        self.services: Services | None = None

    def __enter__(self) -> RunningBot:
        url = self.api.start()
        self.settings = load_settings(
            data_dir=self.data_dir, telegram_api_url=url, telegram_bot_token=self.api.token, **self.overrides
        )
        self.start_loop()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_loop()
        self.api.stop()
        self.raise_error()

    async def serve(self, ready: Callable[[], None], stop: asyncio.Event) -> None:
        assert self.settings is not None
        loader = self.loader.for_settings(self.settings) if self.loader else None  # noqa: F811 - not the fixture
        app = build_application(self.settings, loader=loader, learning=self.learning)
        self.services = get_services(app)
        async with running(app, poll_timeout=self.poll_timeout):
            ready()
            await stop.wait()

    # --- helpers for tests ------------------------------------------------------------------
    def send(self, user: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.api.send_user_message(user, **kwargs)

    def reply(self, message: dict[str, Any], *, timeout: float = 30.0) -> Sent:
        """Wait for the bot's reply to ``message``."""
        mid = message["message_id"]
        chat = message["chat"]["id"]
        return self.api.wait_for(lambda s: s.reply_to == mid and s.chat_id == chat, timeout=timeout)[0]


def eventually(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """Retry ``check`` until it returns something truthy (the bot writes some rows after replying)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def new_version(bot: RunningBot, **fields: Any) -> int:
    """Create and activate a copy of v1 (the built-in model) with ``fields`` changed; returns its id."""

    def create(session: Session) -> int:
        v1 = model_versions.get_version(session, version_id=1)
        assert v1 is not None
        values = {"artifact_path": None, "sha256": v1.sha256, "arch": v1.arch, "labels": v1.labels, "metrics": {}, **fields}
        return model_versions.create_version(session, activate=True, **values).id

    return bot.db(create)


# Fixtures for the bot test modules (import them there: ``from tests.bot_harness import bot, loader``).
@pytest.fixture
def bot(tmp_path: Path, loader: CachingLoader) -> Iterator[RunningBot]:  # noqa: F811 - the fixture
    """A running bot on a fresh data dir, polling the model version every 0.2 s.

    Every user's corrections count here (trust 0 days, 0 right: the policy before issue 14), so the
    conversation tests can agree with two accounts; tests/test_faults_trust.py runs the default policy.
    """
    with RunningBot(tmp_path / "var", loader=loader, model_poll_seconds=0.2, trust_min_days=0, trust_min_right=0) as running:
        yield running
