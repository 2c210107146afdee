"""Telegram ⇄ core: python-telegram-bot updates become core events; core replies become Bot API calls."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram import User as TgUser
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.telegram.files import download, image_ref
from core.conversation import COMMANDS, Conversation
from core.events import (
    ButtonEvent,
    ChatterEvent,
    CommandEvent,
    Event,
    ImageEvent,
    Place,
    Sender,
    Target,
)
from core.replies import Buttons, DeliveryError, Reply

log = logging.getLogger(__name__)

TRANSPORT = "telegram"
CONVERSATION_KEY = "conversation"
# Admin output asked for in a group goes to the admin's private chat; the group only hears this.
SENT_PRIVATELY = "I've sent you the answer in our private chat."
OPEN_PRIVATE_CHAT = (
    "Admin answers go to a private chat, and you haven't opened one with me yet: "
    "open my profile, press Start, then send the command again."
)


def keyboard(buttons: Buttons) -> InlineKeyboardMarkup | None:
    """Core buttons as an inline keyboard (a button's id is its callback data)."""
    rows = [[InlineKeyboardButton(b.label, callback_data=b.id) for b in row] for row in buttons]
    return InlineKeyboardMarkup(rows) if rows else None


def button_ids(markup: InlineKeyboardMarkup | None) -> tuple[str, ...]:
    return tuple(str(b.callback_data) for row in (markup.inline_keyboard if markup else ()) for b in row if b.callback_data)


def sender_of(user: TgUser, admin_ids: Collection[int]) -> Sender:
    return Sender(TRANSPORT, user.id, f"@{user.username}" if user.username else user.full_name, user.id in admin_ids)


def place_of(message: Message) -> Place:
    return Place(message.chat_id, message.message_id, private=message.chat.type == "private")


async def send_to(bot: Bot, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> Message:
    """Send ``reply`` to a chat: a photo with its caption, or a text; its buttons as an inline keyboard."""
    markup = keyboard(reply.buttons)
    if reply.picture is not None:
        return await bot.send_photo(chat_id=chat_id, photo=reply.picture, caption=reply.text,
                                    reply_to_message_id=reply_to, reply_markup=markup)
    return await bot.send_message(chat_id=chat_id, text=reply.text, reply_to_message_id=reply_to, reply_markup=markup)


class TelegramReplier:
    """Answers one update: replies quote its message; edits and toasts act on its button press.
    A private reply (admin output) asked for in a group goes to the asker's private chat instead."""

    def __init__(self, update: Update) -> None:
        self.update = update
        self._group_told = False  # the group hears once per update where its admin's answers went

    async def send(self, reply: Reply) -> int | None:
        message = self.update.effective_message
        if message is None:  # a button under an inline-mode message: nothing to answer in
            return None
        user = self.update.effective_user
        if reply.private and message.chat.type != ChatType.PRIVATE and user is not None:
            return await self._send_privately(message, user.id, reply)
        markup = keyboard(reply.buttons)
        if reply.picture is not None:
            sent = await message.reply_photo(photo=reply.picture, caption=reply.text, reply_markup=markup)
        else:
            sent = await message.reply_text(reply.text, reply_markup=markup)
        return sent.message_id

    async def _send_privately(self, message: Message, user_id: int, reply: Reply) -> int | None:
        """Send ``reply`` to the user's private chat; the group gets one short note, never the content."""
        try:
            sent = await send_to(message.get_bot(), user_id, reply)
        except Forbidden as exc:  # the user never pressed Start in a private chat with the bot
            log.info("admin %s asked in chat %s but has no private chat with the bot: %s", user_id, message.chat_id, exc)
            await self._tell_group(message, OPEN_PRIVATE_CHAT)
            return None
        await self._tell_group(message, SENT_PRIVATELY)
        return sent.message_id

    async def _tell_group(self, message: Message, text: str) -> None:
        if not self._group_told:
            self._group_told = True
            await message.reply_text(text)

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        query = self.update.callback_query
        assert query is not None, "edits answer button presses"
        markup = getattr(query.message, "reply_markup", None) if keep_buttons else None
        try:
            if query.message is not None and getattr(query.message, "photo", None):
                await query.edit_message_caption(caption=text, reply_markup=markup)
            else:
                await query.edit_message_text(text, reply_markup=markup)
        except BadRequest as exc:  # "message is not modified" when the same button is tapped twice
            log.debug("edit after a button: %s", exc)

    async def toast(self, text: str, *, alert: bool = False) -> None:
        assert self.update.callback_query is not None, "toasts answer button presses"
        await self.update.callback_query.answer(text, show_alert=alert)


class TelegramOutbox:
    """Unasked messages: to a chat by id, or to each admin's private chat (their user id)."""

    transport = TRANSPORT

    def __init__(self, bot: Bot, admin_ids: Collection[int]) -> None:
        self.bot = bot
        self.admin_ids = admin_ids

    async def to_chat(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        try:
            await send_to(self.bot, chat_id, reply, reply_to=reply_to)
        except TelegramError as exc:
            raise DeliveryError(str(exc)) from exc

    async def to_admins(self, reply: Reply) -> None:
        for chat_id in self.admin_ids:
            try:
                await self.to_chat(chat_id, reply)
            except DeliveryError as exc:  # one admin who never started the bot does not silence the others
                log.warning("could not tell admin %s: %s", chat_id, exc)


def event_of(update: Update, context: ContextTypes.DEFAULT_TYPE, admin_ids: Collection[int]) -> Event | None:
    """The core event an update means (None: nothing for the core)."""
    user, message, query = update.effective_user, update.effective_message, update.callback_query
    if user is None:
        return None
    sender = sender_of(user, admin_ids)
    if query is not None:
        where = place_of(query.message) if isinstance(query.message, Message) else Place(user.id, None)
        return ButtonEvent(sender, where, query.data or "")
    if message is None:
        return None
    where = place_of(message)
    if message.text and message.text.startswith("/"):
        name = message.text.split()[0][1:].split("@")[0].lower()
        if name == "retrain" and not where.private:
            # Its outcome names and shows users' photos: it goes to the asker's private chat, as on Discord.
            where = Place(user.id, None, private=True)
        target = message.reply_to_message
        return CommandEvent(
            sender, where, name, tuple(context.args or message.text.split()[1:]),
            Target(target.message_id, button_ids(target.reply_markup)) if target is not None else None,
        )
    ref = image_ref(message)
    if ref is not None:
        services = context.bot_data[CONVERSATION_KEY].services
        bot = context.bot

        async def fetch(limit: int) -> bytes:
            return await download(bot, services.http, ref, limit=limit)

        return ImageEvent(sender, where, ref.file_size, fetch)
    return ChatterEvent(sender, where, "text" if message.text else "unusable")


async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every handler's callback: map the update and let the core answer it."""
    conversation: Conversation = context.bot_data[CONVERSATION_KEY]
    event = event_of(update, context, conversation.services.settings.admin_ids)
    if event is not None:
        await conversation.handle(event, TelegramReplier(update))


def handlers() -> list[BaseHandler[Any, Any, Any]]:
    """Which updates reach the core (first match wins); the core decides what each means."""
    fresh = filters.UpdateType.MESSAGE  # edited messages are not re-classified
    not_images = (
        filters.Sticker.ALL | filters.VIDEO | filters.VIDEO_NOTE | filters.ANIMATION | filters.VOICE
        | filters.AUDIO | filters.Document.ALL | filters.LOCATION | filters.CONTACT | filters.POLL
    )
    private = fresh & filters.ChatType.PRIVATE
    return [
        CommandHandler(sorted(COMMANDS), on_update),  # only commands for this bot (``/help@otherbot`` is not)
        CallbackQueryHandler(on_update),
        MessageHandler(fresh & (filters.PHOTO | filters.Document.IMAGE), on_update),
        MessageHandler(fresh & not_images, on_update),
        MessageHandler(private & ((filters.TEXT & ~filters.COMMAND) | filters.COMMAND), on_update),
    ]
