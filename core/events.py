"""What arrives from a chat, whatever the transport: a photo, a command, a button, other chatter.

Adapters (Telegram, Discord, the console) build these from their own updates and hand them to
:meth:`core.conversation.Conversation.handle`. Ids are the transport's own 64-bit integers;
``Sender.transport`` keeps a Telegram user and a Discord user with the same number apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal


class TooLargeError(Exception):
    """The file is over the download limit."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"file of {size if size is not None else 'unknown'} bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class DownloadError(Exception):
    """The file could not be fetched from the transport."""


@dataclass(frozen=True)
class Sender:
    """Who sent the event; the adapter decides ``is_admin`` (ids or roles from its settings)."""

    transport: str  # "telegram", "discord", "console"
    id: int
    name: str
    is_admin: bool = False


@dataclass(frozen=True)
class Place:
    """Where: the chat, and the message the event came with (the photo, the command, the button's message)."""

    chat_id: int
    message_id: int | None = None
    private: bool = True  # a one-to-one chat (hints and "unknown command" are answered only there)


# fetch(limit) → the file's bytes, at most ``limit`` of them (raises TooLargeError or DownloadError).
Fetch = Callable[[int], Awaitable[bytes]]


@dataclass(frozen=True)
class ImageEvent:
    """A photo or image file; ``size`` is the declared size (checked before ``fetch`` is called)."""

    sender: Sender
    place: Place
    size: int | None
    fetch: Fetch

    @classmethod
    def of_bytes(cls, sender: Sender, place: Place, data: bytes) -> ImageEvent:
        """An image whose bytes the adapter already holds."""

        async def fetch(limit: int) -> bytes:
            if len(data) > limit:
                raise TooLargeError(len(data), limit)
            return data

        return cls(sender, place, len(data), fetch)


@dataclass(frozen=True)
class Target:
    """What a ``/correct`` is about: a message of the exchange (with its button ids), or a prediction id."""

    message_id: int | None = None
    button_ids: tuple[str, ...] = ()
    prediction_id: int | None = None  # an adapter that looked the answer up itself (no reply-to)


@dataclass(frozen=True)
class CommandEvent:
    """``/name args…``; ``target`` is the message it replies to, if any."""

    sender: Sender
    place: Place
    name: str
    args: tuple[str, ...] = ()
    target: Target | None = None


@dataclass(frozen=True)
class ButtonEvent:
    """A press on a button with opaque ``button_id``, under the message at ``place``."""

    sender: Sender
    place: Place
    button_id: str


@dataclass(frozen=True)
class ChatterEvent:
    """Something the bot cannot use: plain text, or a sticker, video, voice note…"""

    sender: Sender
    place: Place
    kind: Literal["text", "unusable"]


Event = ImageEvent | CommandEvent | ButtonEvent | ChatterEvent
