"""Run the real Discord bot (discord.py, the core, SQLite) against :class:`FakeDiscord` in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import discord.http

from bearbot.settings import Settings, load_settings
from tests.fake_discord.server import FakeDiscord


@contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Send discord.py's REST calls to ``fake``; the gateway URL then comes from the fake's ``/gateway/bot``.

    ``Route.BASE`` is the one class attribute discord.py itself rewrites to change the API base
    (``discord.http._set_api_version``); every REST route, the webhook ones for interactions
    included, is built on it. The alternatives are worse: an HTTP ``proxy=`` sees only a CONNECT
    tunnel for https://discord.com, and a resolver-overriding connector would need a TLS
    certificate for discord.com that the client trusts.
    """
    saved = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api
    try:
        yield
    finally:
        discord.http.Route.BASE = saved


class DiscordBot:
    """The bot process: services, the conversation and the Discord client on their own loop."""

    def __init__(self, fake: FakeDiscord, data_dir: Path, *, loader: Any = None, **overrides: Any) -> None:
        self.fake, self.data_dir, self.loader, self.overrides = fake, data_dir, loader, overrides
        self.settings: Settings | None = None
        self.services: Any = None
        self.conversation: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> Self:
        self.settings = load_settings(data_dir=self.data_dir, discord_bot_token=self.fake.token, **self.overrides)
        self._thread = threading.Thread(target=self._run, name="discord-bot", daemon=True)
        self._thread.start()
        if not self._ready.wait(120):
            raise TimeoutError("the Discord bot did not get ready")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - surfaced in the test thread
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from bot.discord.serve import serve_discord
        from core.conversation import Conversation
        from core.services import make_services

        assert self.settings is not None
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        loader = self.loader.for_settings(self.settings) if self.loader else None
        self.services = make_services(self.settings, loader=loader)
        conversation = self.conversation = Conversation(self.services, learn=False)  # no trainer processes here
        await conversation.start()
        ready = asyncio.Event()
        ready_signal = asyncio.create_task(ready.wait())
        ready_signal.add_done_callback(lambda _t: self._ready.set())
        try:
            await serve_discord(self.settings, conversation, stop=self._stop, ready=ready, guild_ready_timeout=0.05)
        finally:
            ready_signal.cancel()
            await conversation.stop()

    def call(self, fn: Any) -> Any:
        """Run the coroutine function ``fn`` on the bot's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(60)

    def db(self, fn: Any) -> Any:
        """``fn(session)`` on the bot's database."""
        with self.services.storage.session() as session:
            return fn(session)
