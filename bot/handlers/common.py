"""Helpers shared by handlers: the admin gate and user rows."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram import User as TgUser
from telegram.ext import ContextTypes

from bot.replies import NOT_ADMIN
from bot.services import BotServices, get_services
from storage.users import upsert_user

log = logging.getLogger(__name__)

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[Any]]


def admin_only(handler: Handler) -> Handler:
    """Run ``handler`` only for ``settings.admin_ids``; anyone else gets a polite refusal."""

    @functools.wraps(handler)
    async def gated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Any:
        user = update.effective_user
        if get_services(context).is_admin(user.id if user else None):
            return await handler(update, context)
        log.info("refused %s for non-admin %s", handler.__name__, user.id if user else None)
        if update.callback_query is not None:
            await update.callback_query.answer(NOT_ADMIN, show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(NOT_ADMIN)
        return None

    return gated


def display_name(user: TgUser) -> str:
    return f"@{user.username}" if user.username else user.full_name


def upsert(session: Session, *, user: TgUser, is_admin: bool) -> int:
    """``users.id`` for a Telegram user (created or refreshed with its role)."""
    return upsert_user(session, telegram_id=user.id, display_name=display_name(user), is_admin=is_admin).id


async def user_id(services: BotServices, user: TgUser) -> int:
    """Upsert ``user`` on a worker thread; returns its ``users.id``."""
    return await services.db(upsert, user=user, is_admin=services.is_admin(user.id))
