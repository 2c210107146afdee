"""``bearbot settings``: the effective settings, where each came from, secrets masked."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from dotenv import dotenv_values

from bearbot.cli.common import cli_options, settings_or_exit
from bearbot.settings import Settings, env_name, find_env_file, settings_to_env

SECRETS = frozenset(env_name(f) for f, info in Settings.model_fields.items() if "SecretStr" in str(info.annotation))


def mask(name: str, value: str) -> str:
    """Hide what would let someone act as the bot: token, webhook secret, a database password."""
    if name == "TELEGRAM_BOT_TOKEN":
        bot_id, _, rest = value.partition(":")
        # The part before ':' is the bot's public user id: it tells you *which* bot, not how to be it.
        return f"{bot_id}:*** ({len(rest)} characters hidden)" if rest else "*** (not in the form 123456:ABC…)"
    if name in SECRETS:
        return "*** (set)"
    if name == "BEARBOT_DATABASE_URL":
        from sqlalchemy.engine import make_url

        try:
            return make_url(value).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is shown without its credentials part
            return "***@" + value.rpartition("@")[2] if "@" in value else value
    return value


def effective_settings(settings: Settings, env_file: Path | None) -> list[tuple[str, str, str]]:
    """``(NAME, shown value, source)`` for every setting; source is environment, env file or default."""
    in_file = {k.upper() for k in dotenv_values(env_file)} if env_file else set()
    in_env = {k.upper() for k in os.environ}
    values = settings_to_env(settings)
    rows = []
    for field in Settings.model_fields:
        name = env_name(field)
        source = "environment" if name in in_env else "env file" if name in in_file else "default"
        value = values.get(name)
        rows.append((name, "(not set)" if value in (None, "") else mask(name, value), source))
    return rows


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
