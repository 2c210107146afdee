"""Run the bot for real: long polling by default, a webhook server when ``BEARBOT_WEBHOOK_URL`` is set."""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from telegram import Update

from bearbot.settings import Settings
from bot.app import build_application

log = logging.getLogger(__name__)


def run_bot(settings: Settings) -> None:
    """Build the application (upgrading the database) and serve until interrupted."""
    # APScheduler logs every run of every job at INFO (the learning dispatch runs every few seconds).
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    application = build_application(settings)
    if settings.webhook_url:
        path = urlparse(settings.webhook_url).path.lstrip("/")
        log.info("webhook mode: listening on %s:%s/%s", settings.webhook_listen, settings.webhook_port, path)
        application.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=path,
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            allowed_updates=Update.ALL_TYPES,
        )
    else:
        log.info("long polling %s", settings.telegram_api_url)
        application.run_polling(allowed_updates=Update.ALL_TYPES)
