"""The core's replies over Discord: answers to a message, answers to an interaction, and the outbox."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import Any

import discord

from bot.discord.views import view_for
from core.replies import DeliveryError, Reply

log = logging.getLogger(__name__)

MAX_TEXT = 2000  # Discord refuses longer message content


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def message_kwargs(reply: Reply) -> dict[str, Any]:
    """``reply`` as keyword arguments for discord.py's send calls (only what is set: a None view or
    file would clear one)."""
    kwargs: dict[str, Any] = {"content": _clip(reply.text)}
    view = view_for(reply.buttons)
    if view is not None:
        kwargs["view"] = view
    if reply.picture is not None:
        name = "plot.png" if reply.picture.startswith(b"\x89PNG") else "photo.jpg"
        kwargs["file"] = discord.File(io.BytesIO(reply.picture), filename=name)
    return kwargs


class MessageReplier:
    """Answers a user's message (a DM, or a channel message that mentions the bot) by replying to it."""

    def __init__(self, message: discord.Message) -> None:
        self.message = message

    async def send(self, reply: Reply) -> int | None:
        sent = await self.message.reply(**message_kwargs(reply), mention_author=False)
        return sent.id

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        log.warning("edit asked for a message event; sending it instead: %r", text[:60])
        await self.send(Reply(text))

    async def toast(self, text: str, *, alert: bool = False) -> None:
        await self.send(Reply(text))


class InteractionReplier:
    """Answers a slash command, a menu choice or a button press.

    Discord takes exactly one response per interaction, within 3 s, and then follow-ups. So toasts
    wait for :meth:`finish` (a button's ✅ note and the edit of its message can come in either
    order from the core), and slow commands are deferred first by the caller.
    """

    def __init__(self, interaction: discord.Interaction[Any], *, ephemeral: bool = False) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        self._toasts: list[str] = []

    async def send(self, reply: Reply) -> int | None:
        kwargs = message_kwargs(reply)
        ephemeral = reply.private or self.ephemeral
        response = self.interaction.response
        if not response.is_done():
            result = await response.send_message(**kwargs, ephemeral=ephemeral)
            return result.message_id if result is not None else None
        sent = await self.interaction.followup.send(**kwargs, ephemeral=ephemeral, wait=True)
        return sent.id

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        """Edit the message the pressed button is under (its content; on Discord a picture's caption is that too)."""
        changes: dict[str, Any] = {"content": _clip(text)}
        if not keep_buttons:
            changes["view"] = None
        if not self.interaction.response.is_done():
            await self.interaction.response.edit_message(**changes)
        elif self.interaction.message is not None:
            await self.interaction.message.edit(**changes)

    async def toast(self, text: str, *, alert: bool = False) -> None:
        self._toasts.append(text)

    async def finish(self) -> None:
        """Send the toasts (ephemeral), and acknowledge an interaction nothing answered yet."""
        for text in self._toasts:
            if self.interaction.response.is_done():
                await self.interaction.followup.send(_clip(text), ephemeral=True)
            else:
                await self.interaction.response.send_message(_clip(text), ephemeral=True)
        self._toasts.clear()
        if not self.interaction.response.is_done():
            await self.interaction.response.defer()


class DiscordOutbox:
    """Messages no event waits for: run outcomes and plots, "learned" notices, model warnings."""

    transport = "discord"

    def __init__(self, client: discord.Client, *, admin_ids: Iterable[int], admin_channel_id: int | None) -> None:
        self.client = client
        self.admin_ids = tuple(admin_ids)
        self.admin_channel_id = admin_channel_id

    async def to_chat(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        channel = self.client.get_partial_messageable(chat_id)  # a DM or a server channel, no lookup needed
        kwargs = message_kwargs(reply)
        if reply_to is not None:
            kwargs["reference"] = discord.MessageReference(message_id=reply_to, channel_id=chat_id, fail_if_not_exists=False)
        try:
            await channel.send(**kwargs)
        except discord.HTTPException as exc:
            raise DeliveryError(f"Discord channel {chat_id}: {exc}") from exc

    async def to_admins(self, reply: Reply) -> None:
        """The admin channel when one is set, else a DM to each admin listed by id."""
        if self.admin_channel_id is not None:
            await self.to_chat(self.admin_channel_id, reply)
            return
        failed = []
        for admin_id in self.admin_ids:
            try:
                dm = await self.client.create_dm(discord.Object(id=admin_id))
                await self.to_chat(dm.id, reply)
            except (discord.HTTPException, DeliveryError) as exc:
                failed.append(f"{admin_id}: {exc}")
        if failed:
            raise DeliveryError("could not reach Discord admins " + "; ".join(failed))
