"""Run the Discord bot: on a conversation the caller started (beside Telegram in one process), or alone."""

from __future__ import annotations

import asyncio
from typing import Any

from bearbot.settings import Settings
from bot.discord.client import BearClient
from core.conversation import Conversation
from core.services import Services, make_services


def run_discord(settings: Settings, *, with_telegram: bool = False) -> None:
    """``bearbot run --transport discord`` (or ``both``, ``with_telegram``) until interrupted."""
    asyncio.run(serve(settings, with_telegram=with_telegram))


async def serve(
    settings: Settings, *, with_telegram: bool, services: Services | None = None, stop: asyncio.Event | None = None
) -> None:
    """One conversation core — its model, database and learning loop — shared by the transports, until
    ``stop`` is set or one transport ends for good (which ends the other)."""
    conversation = Conversation(services or make_services(settings))
    await conversation.start(wait_for_model=False)  # commands answered at once; photos wait for the model
    stop = stop or asyncio.Event()
    transports = [serve_discord(settings, conversation, stop=stop)]
    if with_telegram:
        from bot.telegram.app import serve_telegram

        transports.append(serve_telegram(settings, conversation, stop=stop))
    tasks = [asyncio.create_task(t) for t in transports]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await conversation.stop()
    for result in results:
        if isinstance(result, Exception):
            raise result


NO_TOKEN = "DISCORD_BOT_TOKEN is not set: put the bot token from the Discord developer portal in .env (README, Discord)."


async def serve_discord(
    settings: Settings, conversation: Conversation, *, stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None, **client_options: Any,
) -> None:
    """Log in, sync the commands, serve until ``stop`` is set (or the connection ends for good).

    ``ready`` is set once the gateway session is up. Raises ``ValueError`` without a token and
    ``discord.LoginFailure`` when Discord rejects it.
    """
    if settings.discord_bot_token is None:
        raise ValueError(NO_TOKEN)
    client = BearClient(settings, conversation, **client_options)
    conversation.add_outbox(client.outbox)
    async with client:
        runner = asyncio.create_task(client.start(settings.discord_bot_token.get_secret_value()))
        stopper = asyncio.create_task((stop or asyncio.Event()).wait())
        signal = asyncio.create_task(_when_ready(client, ready))
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            signal.cancel()
            await client.close()
        await runner  # a login failure or a fatal gateway close is the caller's to report


async def _when_ready(client: BearClient, ready: asyncio.Event | None) -> None:
    await client.wait_until_ready()
    if ready is not None:
        ready.set()
