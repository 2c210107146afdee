"""Discord objects → the core's events: who sent it (and whether they are an admin), where, which files."""

from __future__ import annotations

import re
from pathlib import PurePath

import aiohttp
import discord

from bearbot.settings import Settings
from core.events import DownloadError, Fetch, Place, Sender, TooLargeError

TRANSPORT = "discord"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}
# https://discord.com/channels/<guild id or @me>/<channel id>/<message id>, as "Copy Message Link" gives it
MESSAGE_LINK = re.compile(r"https://(?:\w+\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/(?P<channel>\d+)/(?P<message>\d+)")


def is_admin(user: discord.User | discord.Member, settings: Settings) -> bool:
    """An admin by user id, or by role name in a server (a DM carries no roles: there only ids count)."""
    if user.id in settings.discord_admin_ids:
        return True
    role = settings.discord_admin_role
    return bool(role) and isinstance(user, discord.Member) and any(r.name == role for r in user.roles)


def sender_of(user: discord.User | discord.Member, settings: Settings) -> Sender:
    return Sender(TRANSPORT, user.id, user.display_name, is_admin(user, settings))


def place_of(channel_id: int, message_id: int | None, *, guild: discord.Guild | None) -> Place:
    return Place(chat_id=channel_id, message_id=message_id, private=guild is None)


def is_image(attachment: discord.Attachment) -> bool:
    """By the type Discord detected, else by the file name (Discord leaves content_type out for some files)."""
    if attachment.content_type:
        return attachment.content_type.startswith("image/")
    return PurePath(attachment.filename).suffix.lower() in IMAGE_SUFFIXES


def fetcher(attachment: discord.Attachment) -> Fetch:
    """Download an attachment from Discord's CDN, refusing more than ``limit`` bytes."""

    async def fetch(limit: int) -> bytes:
        if attachment.size > limit:  # the size Discord declares: refused without downloading anything
            raise TooLargeError(attachment.size, limit)
        try:
            data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
        if len(data) > limit:
            raise TooLargeError(len(data), limit)
        return data

    return fetch


def message_ref(text: str) -> tuple[int | None, int] | None:
    """A message link → (channel id, message id); a bare message id → (None, id); else None."""
    text = text.strip()
    if text.isdigit():
        return None, int(text)
    match = MESSAGE_LINK.search(text)
    return (int(match["channel"]), int(match["message"])) if match else None


def button_ids(message: discord.Message) -> tuple[str, ...]:
    """The custom ids of the buttons under a message (the core reads the prediction id from them)."""
    return tuple(
        child.custom_id
        for row in message.components if isinstance(row, discord.ActionRow)
        for child in row.children if isinstance(child, discord.Button) and child.custom_id
    )
