"""Commands for everyone: /start, /help, /labels, and hints for what the bot can't use."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ContextTypes

from bot.replies import NOT_AN_IMAGE, TEXT_HINT, help_text
from bot.services import get_services

log = logging.getLogger(__name__)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet and explain (same as /help)."""
    await help_command(update, context)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain what the bot does; admins also see their commands. Never touches threads or the DB."""
    services = get_services(context)
    user = update.effective_user
    assert update.effective_message is not None
    await update.effective_message.reply_text(
        help_text(services.serving.labels, is_admin=services.is_admin(user.id if user else None))
    )


async def labels_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the labels the serving model knows."""
    labels = get_services(context).serving.labels
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"I know these labels: {', '.join(labels)}.")


async def not_an_image(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, videos, PDFs…: say what works instead."""
    message = update.effective_message
    assert message is not None
    log.info("non-image message %s in chat %s", message.message_id, message.chat_id)
    await message.reply_text(NOT_AN_IMAGE)


async def text_hint(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text in a private chat: point to photos and /help."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(TEXT_HINT)


async def unknown_command(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not have."""
    assert update.effective_message is not None
    await update.effective_message.reply_text("I don't know that command. /help lists what I can do.")
