"""The Telegram bot: a python-telegram-bot ``Application`` around the conversation core.

``build_application`` wires the Bot API URLs, concurrency, flood control and the handlers of
:mod:`bot.telegram.adapter`; the core (services, model, jobs) is built here too unless the
caller shares one (``bearbot run --transport both``), and then the caller starts and stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlparse

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, CallbackContext, Defaults

from bearbot.settings import Settings
from bot.log_redact import redact_in_logs
from bot.model_holder import Bootstrap, ClassifierLoader
from bot.telegram.adapter import CONVERSATION_KEY, TelegramOutbox, handlers
from bot.telegram.flood import PerChatRateLimiter
from core.conversation import Conversation
from core.services import Services, make_services
from storage.store import Storage

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]
OWNS_CORE_KEY = "owns-conversation"
WAIT_KEY = "wait-for-model"

PUBLIC_COMMANDS = [
    BotCommand("help", "what I can do"),
    BotCommand("labels", "the labels I know"),
    BotCommand("correct", "reply to my answer: /correct <label>"),
    BotCommand("notify", "on or off: tell me when a new model learned my corrections"),
]
ADMIN_COMMANDS = PUBLIC_COMMANDS + [
    BotCommand("retrain", "queue a training run now"),
    BotCommand("stats", "usage and accuracy"),
    BotCommand("model", "the serving model"),
    BotCommand("rollback", "go back to the previous model"),
    BotCommand("pending", "review pending corrections"),
    BotCommand("mute", "reply to their photo, or /mute <user id>: their corrections stop counting"),
    BotCommand("unmute", "/unmute <user id>: their corrections count again"),
]


def get_services(app: CallbackContext[Any, Any, Any, Any] | App) -> Services:
    """The core's services of a built application (tests and benches read the model and storage)."""
    conversation = app.bot_data.get(CONVERSATION_KEY)
    if not isinstance(conversation, Conversation):
        raise RuntimeError("no conversation core; build the bot with bot.telegram.app.build_application")  # noqa: TRY004
    return conversation.services


async def _post_init(application: App) -> None:
    """Start the core (when this application owns it), then publish the command menus."""
    if application.bot_data[OWNS_CORE_KEY]:
        await application.bot_data[CONVERSATION_KEY].start(wait_for_model=application.bot_data[WAIT_KEY])
    settings = get_services(application).settings
    try:
        await application.bot.set_my_commands(PUBLIC_COMMANDS)
        for admin_id in settings.admin_ids:
            await application.bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id))
    except TelegramError as exc:  # menus are a nicety; an admin who never started the bot fails here
        log.warning("could not set the command menu: %s", exc)


async def _post_shutdown(application: App) -> None:
    if application.bot_data[OWNS_CORE_KEY]:
        await application.bot_data[CONVERSATION_KEY].stop()


def build_application(
    settings: Settings,
    *,
    conversation: Conversation | None = None,
    storage: Storage | None = None,
    loader: ClassifierLoader | None = None,
    bootstrap: Bootstrap | None = None,
    learning: bool = True,
    token: str | None = None,
    wait_for_model: bool = True,
) -> App:
    """Wire the Telegram bot: Bot API URLs from settings, concurrency, flood control, the core, handlers.

    ``wait_for_model=False`` (``bearbot run``): polling starts while the first model still loads.
    """
    api = settings.telegram_api_url
    token = token or settings.token
    if not token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    redact_in_logs(token, secret)  # Bot API URLs carry the token; httpx logs each one
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(settings.concurrent_updates)
        .rate_limiter(PerChatRateLimiter())
        # The core runs its own scheduler (model polls, the learning loop): no second one from PTB.
        .job_queue(None)
        # Answers quote the message they answer, in private chats too (albums, /correct targets),
        # and are still sent when the user deleted that message meanwhile.
        .defaults(Defaults(do_quote=True, allow_sending_without_reply=True))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    owns = conversation is None
    if conversation is None:
        services = make_services(settings, storage=storage, loader=loader, bootstrap=bootstrap)
        conversation = Conversation(services, learn=learning)
    conversation.add_outbox(TelegramOutbox(application.bot, settings.admin_ids))
    application.bot_data[CONVERSATION_KEY] = conversation
    application.bot_data[OWNS_CORE_KEY] = owns
    application.bot_data[WAIT_KEY] = wait_for_model
    application.add_handlers(handlers())
    return application


@asynccontextmanager
async def running(application: App, *, poll: bool = True, poll_timeout: int = 10) -> AsyncIterator[App]:
    """Start the bot inside an existing event loop (tests, ``--transport both``); ``run_polling`` does the same."""
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    await application.start()
    if poll:
        assert application.updater is not None
        await application.updater.start_polling(timeout=poll_timeout, poll_interval=0.0, drop_pending_updates=False)
    try:
        yield application
    finally:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)


def webhook_options(settings: Settings) -> dict[str, Any]:
    """How the webhook server listens; Telegram must send the secret, or the update is refused (403).

    Settings refuse webhook mode without ``BEARBOT_WEBHOOK_SECRET``; this checks again, so no
    other way of building settings can start an open webhook.
    """
    if not settings.webhook_url or settings.webhook_secret is None:
        raise ValueError("webhook mode needs BEARBOT_WEBHOOK_URL and BEARBOT_WEBHOOK_SECRET")
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        "url_path": urlparse(settings.webhook_url).path.lstrip("/"),
        "webhook_url": settings.webhook_url,
        "secret_token": settings.webhook_secret.get_secret_value(),
    }


def run_bot(settings: Settings) -> None:
    """``bearbot run`` with Telegram alone: build the application (upgrading the database) and serve."""
    # APScheduler logs every run of every job at INFO (the learning dispatch runs every few seconds).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    application = build_application(settings, wait_for_model=False)
    if settings.webhook_url:
        options = webhook_options(settings)
        log.info("webhook mode: listening on %s:%s/%s", options["listen"], options["port"], options["url_path"])
        application.run_webhook(**options, allowed_updates=Update.ALL_TYPES)
    else:
        log.info("long polling %s", settings.telegram_api_url)
        application.run_polling(allowed_updates=Update.ALL_TYPES)


async def serve_telegram(settings: Settings, conversation: Conversation, *, stop: asyncio.Event) -> None:
    """Telegram inside a running loop, on a core the caller starts and stops, until ``stop`` is set."""
    application = build_application(settings, conversation=conversation)
    async with running(application, poll=not settings.webhook_url):
        if settings.webhook_url:
            assert application.updater is not None
            options = webhook_options(settings)
            await application.updater.start_webhook(**options, allowed_updates=Update.ALL_TYPES)
        await stop.wait()
