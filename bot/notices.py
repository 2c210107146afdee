"""Tell users when a serving model learned their correction, once; ``/notify off`` (or ``/quiet``) stops it."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session
from telegram import Bot, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.handlers.common import upsert
from bot.services import get_services
from storage.notices import LearnedNotice, claim_learned_notices, set_notify_learned
from storage.store import Storage

log = logging.getLogger(__name__)

OPT_OUT_HINT = "(/notify off stops these messages.)"


def notice_text(notice: LearnedNotice) -> str:
    """The message, in the words of the person who corrected."""
    said = f"; I had said {notice.said}" if notice.said and notice.said != notice.label else ""
    return (
        f"Thank you! Your correction of this photo (from {notice.photo_sent_at:%d %b %Y}) — it is {notice.label}"
        f"{said} — is now part of model v{notice.version_id}, which answers everyone. {OPT_OUT_HINT}"
    )


async def announce_learned(bot: Bot, storage: Storage) -> int:
    """Send every unclaimed "your correction is learned" notice; returns how many went out."""

    def claim() -> list[LearnedNotice]:
        with storage.session() as session:
            return claim_learned_notices(session)

    sent = 0
    for notice in await asyncio.to_thread(claim):
        try:
            await bot.send_message(chat_id=notice.chat_id, text=notice_text(notice), reply_to_message_id=notice.reply_to)
            sent += 1
        except TelegramError as exc:  # the user blocked the bot, the chat is gone…: told once means tried once
            log.info("could not tell chat %s that correction #%s was learned: %s", notice.chat_id, notice.correction_id, exc)
    return sent


async def notify_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/notify on|off`` (``/quiet`` = off): the "your correction is now part of vN" messages."""
    services = get_services(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    words = (message.text or "").split()
    command = words[0].lstrip("/").split("@")[0].lower() if words else "notify"
    arg = "off" if command == "quiet" else (words[1].lower() if len(words) > 1 else "")
    if arg not in ("on", "off"):
        await message.reply_text(
            "/notify off — stop telling me when a new model learned my corrections\n/notify on — tell me again"
        )
        return

    def apply(session: Session) -> None:
        uid = upsert(session, user=user, is_admin=services.is_admin(user.id))
        set_notify_learned(session, user_id=uid, on=arg == "on")

    await services.db(apply)
    await message.reply_text(
        "OK: I will tell you when a new model has learned one of your corrections."
        if arg == "on"
        else "OK: no more messages about your corrections being learned. /notify on turns them back on."
    )
