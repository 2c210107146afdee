"""Run the real Discord bot (discord.py, the core, SQLite) against :class:`FakeDiscord` in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import discord.http

from bearbot.settings import Settings, load_settings
from tests.fake_discord.server import FakeDiscord
from tests.loop_thread import LoopThread


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


class DiscordBot(LoopThread):
    """The bot process: services, the conversation and the Discord client on their own loop."""

    thread_name = "discord-bot"

    def __init__(self, fake: FakeDiscord, data_dir: Path, *, loader: Any = None, **overrides: Any) -> None:
        super().__init__()
        self.fake, self.data_dir, self.loader, self.overrides = fake, data_dir, loader, overrides
        self.settings: Settings | None = None
        self.conversation: Any = None

    def __enter__(self) -> Self:
        self.settings = load_settings(data_dir=self.data_dir, discord_bot_token=self.fake.token, **self.overrides)
        self.start_loop()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_loop()
        self.raise_error()

    async def serve(self, ready: Callable[[], None], stop: asyncio.Event) -> None:
        from bot.discord.serve import serve_discord
        from core.conversation import Conversation
        from core.services import make_services

        assert self.settings is not None
        loader = self.loader.for_settings(self.settings) if self.loader else None
        self.services = make_services(self.settings, loader=loader)
        conversation = self.conversation = Conversation(self.services, learn=False)  # no trainer processes here
        await conversation.start()
        discord_ready = asyncio.Event()
        ready_signal = asyncio.create_task(discord_ready.wait())
        ready_signal.add_done_callback(lambda _t: ready())
        try:
            await serve_discord(self.settings, conversation, stop=stop, ready=discord_ready, guild_ready_timeout=0.05)
        finally:
            ready_signal.cancel()
            await conversation.stop()
