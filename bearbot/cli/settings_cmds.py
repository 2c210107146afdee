"""``bearbot settings``: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import typer

from bearbot.cli.common import cli_options, settings_or_exit
from bearbot.settings import effective_settings, find_env_file


def settings_cmd() -> None:
    """Print the effective settings (secrets masked) and where each came from."""
    settings = settings_or_exit()
    env_file = find_env_file(cli_options().env_file)
    typer.echo(f"# env file: {env_file or '(none: ./.env not found and no --env-file / BEARBOT_ENV_FILE)'}")
    typer.echo(f"# data directory: {settings.data_dir}")
    rows = effective_settings(settings, env_file)
    width = max(len(name) + len(value) for name, value, _ in rows) + 2
    for name, value, source in rows:
        typer.echo(f"{f'{name}={value}':<{width}} # {source}")


def register(app: typer.Typer) -> None:
    """Add ``settings`` to the top-level app."""
    app.command("settings")(settings_cmd)
