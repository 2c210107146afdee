"""The application commands: /bear, /correct, the "Correct bear…" message menu, /help, /labels,
/notify, and the admin commands, /mute and /unmute among them (answered ephemerally: only the admin sees them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from bearbot.labels import NOT_BEAR
from bot.discord.incoming import button_ids, fetcher, message_ref, place_of, sender_of
from bot.discord.replies import InteractionReplier
from core.events import CommandEvent, ImageEvent, Place, Target
from core.replies import Reply

if TYPE_CHECKING:
    from bot.discord.client import BearClient

PUBLIC = {"help": "What I can do", "labels": "The labels I know"}
ADMIN = {
    "retrain": "Admin: queue a training run now",
    "stats": "Admin: usage and accuracy",
    "model": "Admin: the serving model",
    "rollback": "Admin: go back to the previous model",
    "pending": "Admin: review pending corrections",
}
MUTE = {
    "mute": "Admin: this user's corrections stop counting",
    "unmute": "Admin: this user's corrections count again",
}
NOT_A_LINK = "That is not a message link or id: use “Copy Message Link” on my answer, or leave it out."
NO_ANSWER_HERE = (
    "I have not answered a photo of yours in this channel yet. Send one, or name my answer: "
    "/correct label:<label> message:<link>, or right-click it → Apps → Correct bear…"
)


def _simple(client: BearClient, name: str) -> Any:
    """A command without arguments for the core; answered ephemerally (admin output is for the admin only),
    deferred first (/stats draws plots, /retrain checks the dataset: longer than Discord's 3 s)."""

    async def callback(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = await client.command_place(interaction, retrain=name == "retrain")
        event = CommandEvent(sender_of(interaction.user, client.settings), place, name)
        await client.handle(event, InteractionReplier(interaction, ephemeral=True))

    return callback


def _muting(client: BearClient, name: str) -> Any:
    """/mute or /unmute with a user option; the core checks the admin and answers ephemerally."""

    @app_commands.describe(user="Whose corrections (a @mention; the user picker)")
    async def callback(interaction: discord.Interaction, user: discord.User) -> None:
        place = place_of(interaction.channel_id or 0, None, guild=interaction.guild)
        event = CommandEvent(sender_of(interaction.user, client.settings), place, name, (str(user.id),))
        await client.handle(event, InteractionReplier(interaction, ephemeral=True))

    return callback


class LabelPicker(discord.ui.View):
    """The "Correct bear…" menu's answer: a list of labels; the choice is a /correct of that message."""

    def __init__(self, client: BearClient, target: discord.Message, labels: Sequence[str]) -> None:
        super().__init__(timeout=600)
        self.client, self.target = client, target
        select: discord.ui.Select[LabelPicker] = discord.ui.Select(
            placeholder="Which is it?", options=[discord.SelectOption(label=label) for label in (*labels, NOT_BEAR)]
        )
        select.callback = self._picked  # type: ignore[method-assign]
        self.add_item(select)
        self.select = select

    async def _picked(self, interaction: discord.Interaction) -> None:
        target = Target(message_id=self.target.id, button_ids=button_ids(self.target))
        place = place_of(self.target.channel.id, self.target.id, guild=self.target.guild)
        event = CommandEvent(sender_of(interaction.user, self.client.settings), place, "correct", (self.select.values[0],), target)
        await self.client.handle(event, InteractionReplier(interaction, ephemeral=True))


def add_commands(tree: app_commands.CommandTree[Any], client: BearClient, labels: Sequence[str]) -> None:
    """Register every command on ``tree``; ``labels`` (the serving model's) become /correct's choices."""

    @tree.command(name="bear", description="Which bear is this? Attach a photo.")
    @app_commands.describe(image="A photo: JPEG, PNG, WebP or GIF")
    async def bear(interaction: discord.Interaction, image: discord.Attachment) -> None:
        await interaction.response.defer(thinking=True)  # classifying can take longer than Discord's 3 s
        place = place_of(interaction.channel_id or 0, None, guild=interaction.guild)
        event = ImageEvent(sender_of(interaction.user, client.settings), place, image.size, fetcher(image))
        await client.handle(event, InteractionReplier(interaction))

    @tree.command(name="correct", description="Correct my answer: say which bear it really is")
    @app_commands.describe(
        label="The right label (none: there is no bear)",
        message="A link to my answer (Copy Message Link) or its id; default: my last answer to you here",
    )
    @app_commands.choices(label=[app_commands.Choice(name=label, value=label) for label in (*labels, NOT_BEAR)])
    async def correct(interaction: discord.Interaction, label: app_commands.Choice[str], message: str | None = None) -> None:
        replier = InteractionReplier(interaction, ephemeral=True)
        sender = sender_of(interaction.user, client.settings)
        chat_id = interaction.channel_id or 0
        if message:
            ref = message_ref(message)
            if ref is None:
                await replier.send(Reply(NOT_A_LINK))
                return
            chat_id = ref[0] or chat_id
            target = Target(message_id=ref[1])
        else:
            answer = await client.latest_answer(chat_id, sender)
            if answer is None:  # the core's usage text tells Telegram users to reply, which Discord's slash commands can't
                await replier.send(Reply(NO_ANSWER_HERE))
                return
            target = Target(prediction_id=answer)
        place = Place(chat_id=chat_id, message_id=None, private=interaction.guild is None)
        await client.handle(CommandEvent(sender, place, "correct", (label.value,), target), replier)

    @tree.context_menu(name="Correct bear…")
    async def correct_menu(interaction: discord.Interaction, message: discord.Message) -> None:
        view = LabelPicker(client, message, labels)
        await interaction.response.send_message("Which bear is it really?", view=view, ephemeral=True)

    @tree.command(name="notify", description="Tell me when a new model learned my corrections")
    async def notify(interaction: discord.Interaction, state: Literal["on", "off"]) -> None:
        place = place_of(interaction.channel_id or 0, None, guild=interaction.guild)
        event = CommandEvent(sender_of(interaction.user, client.settings), place, "notify", (state,))
        await client.handle(event, InteractionReplier(interaction, ephemeral=True))

    for name, description in MUTE.items():
        tree.add_command(app_commands.Command(name=name, description=description, callback=_muting(client, name)))

    for name, description in {**PUBLIC, **ADMIN}.items():
        tree.add_command(
            app_commands.Command(name=name, description=description, callback=_simple(client, name))
        )
