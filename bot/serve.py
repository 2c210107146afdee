"""Run the bot for real: long polling by default, a webhook server when ``BEARBOT_WEBHOOK_URL`` is set."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from telegram import Update

from bearbot.settings import Settings
from bot.app import build_application

log = logging.getLogger(__name__)


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
    """Build the application (upgrading the database) and serve until interrupted."""
    # APScheduler logs every run of every job at INFO (the learning dispatch runs every few seconds).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    application = build_application(settings)
    if settings.webhook_url:
        options = webhook_options(settings)
        log.info("webhook mode: listening on %s:%s/%s", options["listen"], options["port"], options["url_path"])
        application.run_webhook(**options, allowed_updates=Update.ALL_TYPES)
    else:
        log.info("long polling %s", settings.telegram_api_url)
        application.run_polling(allowed_updates=Update.ALL_TYPES)
