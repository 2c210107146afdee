"""The core's buttons as Discord components that keep working after a restart.

Each button's ``custom_id`` is the core's opaque id (``fb:<prediction>:<label>``, ``rv:a:<correction>``),
so everything a press needs is in the id itself. :class:`CoreButton` is a ``discord.ui.DynamicItem``:
registered once at start-up with ``client.add_dynamic_items``, it matches those ids on any message,
old or new — unlike a ``client.add_view`` persistent view, which only matches custom ids known in
advance and so could not carry a prediction id.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import discord

from core.events import ButtonEvent, Event
from core.replies import Buttons, Replier
from core.texts import FEEDBACK_ID_RE, REVIEW_ID_RE

if TYPE_CHECKING:
    from bot.discord.replies import InteractionReplier

MAX_ROWS, MAX_PER_ROW = 5, 5  # Discord's limits for one message
CORE_ID = re.compile(f"(?:{FEEDBACK_ID_RE.pattern})|(?:{REVIEW_ID_RE.pattern})")


class Handles(Protocol):
    """What the buttons need from the client (:class:`bot.discord.client.BearClient`)."""

    async def handle(self, event: Event, replier: Replier) -> None: ...

    def button_event(self, interaction: discord.Interaction[Any], button_id: str) -> tuple[ButtonEvent, InteractionReplier]: ...


def _style(label: str) -> discord.ButtonStyle:
    if label.startswith("✅"):
        return discord.ButtonStyle.success
    if label.startswith(("🚫", "❌")):
        return discord.ButtonStyle.danger
    return discord.ButtonStyle.secondary


class CoreButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CORE_ID):
    """A button carrying a core button id; a press becomes a :class:`core.events.ButtonEvent`."""

    def __init__(self, button_id: str, label: str = "", row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label[:80] or "?", custom_id=button_id, style=_style(label), row=row))
        self.button_id = button_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction[Any], item: discord.ui.Button[Any], match: re.Match[str], /
    ) -> CoreButton:
        return cls(match.group(0), item.label or "")

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: Handles = interaction.client  # type: ignore[assignment]
        event, replier = client.button_event(interaction, self.button_id)
        await client.handle(event, replier)
        await replier.finish()


def view_for(buttons: Buttons) -> discord.ui.View | None:
    """Rows of core buttons as a view (no timeout: the ids, not this object, carry the state)."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for row, line in enumerate(buttons[:MAX_ROWS]):
        for button in line[:MAX_PER_ROW]:
            view.add_item(CoreButton(button.id, button.label, row=row))
    return view
