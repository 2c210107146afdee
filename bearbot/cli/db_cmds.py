"""``bearbot db``: upgrade and inspect the schema."""

from __future__ import annotations

import typer

from bearbot.cli.common import settings_or_exit

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from storage.db import upgrade

    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url, revision)
    typer.echo(f"database at {revision}: {settings.db_url}")


@app.command("current")
def current_cmd() -> None:
    """Print the database's revision and the newest one available."""
    from storage.db import revisions

    cur, head = revisions(settings_or_exit().db_url)
    state = "up to date" if cur == head else "needs `bearbot db upgrade`"
    typer.echo(f"current: {cur or '(empty)'}  head: {head}  ({state})")
