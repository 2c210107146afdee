"""The Discord bot: a discord.py client that turns messages and interactions into core events.

Photos arrive three ways: a DM with image attachments, a server message that mentions the bot
(Discord delivers the content and attachments of both without the privileged message-content
intent), and ``/bear image:<attachment>``. Everything else is in :mod:`bot.discord.commands`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from sqlalchemy.orm import Session

from bearbot.settings import Settings
from bot.discord.commands import add_commands
from bot.discord.incoming import TRANSPORT, fetcher, is_image, place_of, sender_of
from bot.discord.replies import DiscordOutbox, InteractionReplier, MessageReplier
from bot.discord.views import CoreButton
from core.events import ButtonEvent, ChatterEvent, Event, ImageEvent, Place, Sender
from core.replies import Replier, Reply
from core.texts import OOPS
from storage.predictions import latest_answer
from storage.users import get_user

if TYPE_CHECKING:
    from core.conversation import Conversation

log = logging.getLogger(__name__)


class BearClient(discord.AutoShardedClient):
    """One Discord connection serving a :class:`core.conversation.Conversation` (started by the caller).

    Auto-sharded: the gateway's URL and the shard count come from ``GET /gateway/bot``, as Discord
    asks of bots, so nothing changes when the bot outgrows one shard (2,500 servers).
    """

    def __init__(self, settings: Settings, conversation: Conversation, **options: Any) -> None:
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False  # no voice: not a missing piece
        # Default intents: servers, server and DM messages. Not message_content (privileged): not needed.
        super().__init__(intents=discord.Intents.default(), allowed_mentions=discord.AllowedMentions.none(), **options)
        self.settings = settings
        self.conversation = conversation
        self.tree: app_commands.CommandTree[BearClient] = app_commands.CommandTree(self)
        self.tree.on_error = self._command_failed  # type: ignore[method-assign]
        self.outbox = DiscordOutbox(
            self, admin_ids=settings.discord_admin_ids, admin_channel_id=settings.discord_admin_channel_id
        )

    async def setup_hook(self) -> None:
        """Match old answers' buttons, register the commands, and sync them (one bulk overwrite)."""
        self.add_dynamic_items(CoreButton)
        add_commands(self.tree, self, self.conversation.services.serving.labels)
        guild = discord.Object(id=self.settings.discord_guild_id) if self.settings.discord_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)  # one server's commands show up at once; global ones take a while
        synced = await self.tree.sync(guild=guild)
        log.info("synced %d Discord commands %s", len(synced), f"to server {guild.id}" if guild else "globally")

    async def on_ready(self) -> None:
        log.info("connected to Discord as %s (%s servers)", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        if message.guild is not None and (self.user is None or self.user not in message.mentions):
            return  # in a server, only messages addressed to the bot
        sender = sender_of(message.author, self.settings)
        place = place_of(message.channel.id, message.id, guild=message.guild)
        replier = MessageReplier(message)
        images = [a for a in message.attachments if is_image(a)]
        for attachment in images:
            await self.handle(ImageEvent(sender, place, attachment.size, fetcher(attachment)), replier)
        if not images:
            kind = "unusable" if message.attachments or message.stickers else "text"
            await self.handle(ChatterEvent(sender, place, kind), replier)

    async def handle(self, event: Event, replier: Replier) -> None:
        """Let the core answer ``event`` (it logs an error and says sorry itself)."""
        await self.conversation.handle(event, replier)

    async def _command_failed(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError) -> None:
        """An error outside :meth:`handle` (a bad option, a REST failure): logged, and a short apology."""
        log.error("Discord command failed", exc_info=error)
        try:
            await InteractionReplier(interaction, ephemeral=True).send(Reply(OOPS))
        except discord.HTTPException:
            pass

    def button_event(self, interaction: discord.Interaction[Any], button_id: str) -> tuple[ButtonEvent, InteractionReplier]:
        """A press under a message: the event (bound to that channel and message) and its replier."""
        message_id = interaction.message.id if interaction.message is not None else None
        place = place_of(interaction.channel_id or 0, message_id, guild=interaction.guild)
        return ButtonEvent(sender_of(interaction.user, self.settings), place, button_id), InteractionReplier(interaction)

    async def command_place(self, interaction: discord.Interaction[Any], *, retrain: bool = False) -> Place:
        """Where a command happened; for /retrain, where its outcome goes: the admin channel, else the
        DMs of the admin who asked (a server channel would show the run's photos to everyone)."""
        if retrain and self.settings.discord_admin_channel_id is not None:
            return Place(self.settings.discord_admin_channel_id, None, private=False)
        if retrain and interaction.guild is not None:
            dm = await interaction.user.create_dm()
            return Place(dm.id, None, private=True)
        return place_of(interaction.channel_id or 0, None, guild=interaction.guild)

    async def latest_answer(self, chat_id: int, sender: Sender) -> int | None:
        """The prediction id of the bot's last answer to ``sender`` in ``chat_id`` (/correct without a link)."""
        return await self.conversation.services.db(_latest_answer, chat_id=chat_id, sender_id=sender.id)


def _latest_answer(session: Session, *, chat_id: int, sender_id: int) -> int | None:
    user = get_user(session, transport=TRANSPORT, external_id=sender_id)
    answer = latest_answer(session, transport=TRANSPORT, chat_id=chat_id, user_id=user.id) if user else None
    return answer.id if answer else None
