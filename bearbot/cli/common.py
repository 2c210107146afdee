"""Helpers every sub-command uses: settings with one-line errors, logging, storage."""

from __future__ import annotations

import logging

import typer

from bearbot.settings import Settings, SettingsError, load_settings


def settings_or_exit() -> Settings:
    """Load settings; a bad value prints one line naming the setting and exits 2."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO (and the URL holds the bot token): keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces its context on every start; storage.db.upgrade logs real migrations itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
