"""What goes out: replies with buttons and pictures, and the two ports adapters implement.

A :class:`Replier` answers one incoming event (in its chat, quoting its message); an
:class:`Outbox` sends what no event asked for just now (a run's outcome, its plots, "your
correction is learned", a model that failed to load).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DeliveryError(Exception):
    """A message could not be delivered (the user blocked the bot, the chat is gone…)."""


@dataclass(frozen=True)
class Button:
    """A button's label and its opaque id (what comes back in a :class:`core.events.ButtonEvent`)."""

    label: str
    id: str


Buttons = tuple[tuple[Button, ...], ...]  # rows of buttons


@dataclass(frozen=True)
class Reply:
    """A message: text (the caption when there is a picture), buttons, a PNG/JPEG picture."""

    text: str
    buttons: Buttons = ()
    picture: bytes | None = None
    private: bool = False  # admin output: only the asker should see it (Discord: ephemeral)


class Replier(Protocol):
    """Answers one incoming event; each adapter implements it over its transport."""

    async def send(self, reply: Reply) -> int | None:
        """Send ``reply`` in the event's chat, quoting its message; returns the sent message's id."""
        ...

    async def edit(self, text: str, *, keep_buttons: bool) -> None:
        """Replace the text (or caption) of the message a pressed button is under."""
        ...

    async def toast(self, text: str, *, alert: bool = False) -> None:
        """A short note to whoever pressed a button (Telegram: the callback answer)."""
        ...


class Outbox(Protocol):
    """Messages no event is waiting for, on one transport; raise :class:`DeliveryError` on failure."""

    transport: str

    async def to_chat(self, chat_id: int, reply: Reply, *, reply_to: int | None = None) -> None:
        """Send ``reply`` to a chat of this transport (optionally quoting a message)."""
        ...

    async def to_admins(self, reply: Reply) -> None:
        """Send ``reply`` to this transport's admins (each admin, or an admin channel)."""
        ...
