"""Placeholder: ``bearbot run`` and ``chat`` are filled in by the bot issue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
