"""The bot's factory: settings in, a python-telegram-bot ``Application`` out (storage, model holder,
handlers, jobs). The CLI (``bearbot run``/``chat``) and the tests call it; nothing else builds a bot."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.orm import Session
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from bearbot.settings import Settings
from bot.flood import PerChatRateLimiter, throttled
from bot.log_redact import redact_in_logs
from bot.handlers import admin, basic, corrections, photos
from bot.limits import UserLimits
from bot import notices
from bot.model_holder import Bootstrap, ClassifierLoader, ModelHolder
from bot.replies import FEEDBACK_PREFIX, REVIEW_PREFIX
from bot.services import SERVICES_KEY, BotServices, get_services
from storage import model_versions
from storage.models import ModelVersion
from storage.store import Storage, open_storage

log = logging.getLogger(__name__)

App = Application[Any, Any, Any, Any, Any, Any]

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
]


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    """Every handler, in the order they are tried (first match wins)."""
    fresh = filters.UpdateType.MESSAGE  # edited messages are not re-classified
    not_images = (
        filters.Sticker.ALL | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION | filters.VOICE
        | filters.AUDIO | filters.Document.ALL | filters.LOCATION | filters.CONTACT | filters.POLL
    )
    return [
        CommandHandler("start", basic.start),
        CommandHandler("help", basic.help_command),
        CommandHandler("labels", basic.labels_command),
        CommandHandler("correct", corrections.correct_command),
        CommandHandler(("notify", "quiet"), notices.notify_command),
        CommandHandler("retrain", admin.retrain),
        CommandHandler("stats", admin.stats),
        CommandHandler("model", admin.model),
        CommandHandler("rollback", admin.rollback),
        CommandHandler("pending", admin.pending),
        CallbackQueryHandler(corrections.feedback_button, pattern=f"^{FEEDBACK_PREFIX}:"),
        CallbackQueryHandler(admin.review_button, pattern=f"^{REVIEW_PREFIX}:"),
        MessageHandler(fresh & (filters.PHOTO | filters.Document.IMAGE), photos.on_image),
        MessageHandler(fresh & not_images, throttled(basic.not_an_image)),
        MessageHandler(fresh & filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND, throttled(basic.text_hint)),
        MessageHandler(fresh & filters.ChatType.PRIVATE & filters.COMMAND, throttled(basic.unknown_command)),
    ]


def default_loader(settings: Settings) -> ClassifierLoader:
    """Load a version row with :mod:`bearbot.inference` (verifies the artifact's sha256 first)."""

    def load(version: ModelVersion) -> Any:
        from bearbot.inference import load_for_settings

        return load_for_settings(version, settings)

    return load


def default_bootstrap(settings: Settings) -> Bootstrap:
    """On a fresh install, record and activate the built-in zero-shot model v0."""

    def ensure(session: Session) -> None:
        model_versions.ensure_serving(session, settings)

    return ensure


def make_services(
    settings: Settings,
    *,
    storage: Storage | None = None,
    loader: ClassifierLoader | None = None,
    bootstrap: Bootstrap | None = None,
) -> BotServices:
    """Open storage (upgrading the schema) and build the services; the model loads at start."""
    owns = storage is None
    storage = storage or open_storage(settings)
    # A few inference threads: torch already parallelises inside one prediction.
    inference = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="predict")
    holder = ModelHolder(
        storage,
        loader or default_loader(settings),
        bootstrap=bootstrap if bootstrap is not None else default_bootstrap(settings),
        retry_seconds=10 * settings.model_poll_seconds,  # a failed hot swap is tried again after 10 polls, then 20…
    )
    return BotServices(
        settings=settings,
        storage=storage,
        serving=holder,
        limits=UserLimits.for_settings(storage, settings),
        http=httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True),
        inference=inference,
        owns_storage=owns,
    )


async def _tell_admins(application: App, text: str) -> None:
    for chat_id in get_services(application).settings.admin_ids:
        try:
            await application.bot.send_message(chat_id=chat_id, text=text)
        except TelegramError as exc:
            log.warning("could not tell admin %s: %s", chat_id, exc)


async def _post_init(application: App) -> None:
    """Load the serving model and publish the command menus."""
    services = get_services(application)
    services.serving.report = lambda text: _tell_admins(application, f"⚠️ {text}")
    await services.serving.start()
    try:
        await application.bot.set_my_commands(PUBLIC_COMMANDS)
        for admin_id in services.settings.admin_ids:
            await application.bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id))
    except TelegramError as exc:  # menus are a nicety; an admin who never started the bot fails here
        log.warning("could not set the command menu: %s", exc)


async def _post_shutdown(application: App) -> None:
    from bot.learning import stop_trainer

    stop_trainer(application)
    await get_services(application).aclose()


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log any handler error and tell the user something short; the bot keeps running."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text("Sorry, something went wrong on my side. Please try again.")
        except TelegramError:
            pass


def build_application(
    settings: Settings,
    *,
    storage: Storage | None = None,
    loader: ClassifierLoader | None = None,
    bootstrap: Bootstrap | None = None,
    learning: bool = True,
    token: str | None = None,
) -> App:
    """Wire the bot: Bot API URLs from settings, concurrency, flood control, services, handlers, jobs."""
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
        # Answers quote the message they answer, in private chats too (albums, /correct targets),
        # and are still sent when the user deleted that message meanwhile.
        .defaults(Defaults(do_quote=True, allow_sending_without_reply=True))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    services = make_services(settings, storage=storage, loader=loader, bootstrap=bootstrap)
    application.bot_data[SERVICES_KEY] = services
    application.add_handlers(handlers())
    application.add_error_handler(_on_error)
    assert application.job_queue is not None, "python-telegram-bot needs the job-queue extra"
    application.job_queue.run_repeating(
        services.serving.poll, interval=settings.model_poll_seconds, first=settings.model_poll_seconds, name="model-poll"
    )
    if learning:
        from bot.learning import install_learning

        install_learning(application)
    return application


@asynccontextmanager
async def running(application: App, *, poll: bool = True, poll_timeout: int = 10) -> AsyncIterator[App]:
    """Start the bot inside an existing event loop (tests, the console); ``run_polling`` does the same."""
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
        if poll and application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
