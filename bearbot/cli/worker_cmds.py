"""``bearbot worker``: execute queued training runs from the database (e.g. on a GPU box)."""

from __future__ import annotations

import typer

from bearbot.cli.common import settings_or_exit


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the top-level app."""
    app.command("worker")(worker_cmd)


def worker_cmd(
    once: bool = typer.Option(False, "--once", help="Execute what is queued now, then exit."),
    poll: float = typer.Option(5.0, help="Seconds between checks for queued runs."),
) -> None:
    """Run queued training runs one at a time, sharing the database and data directory with the bot."""
    from storage.store import open_storage
    from trainer.runner import run_pending

    with open_storage(settings_or_exit()) as store:
        done = run_pending(store, once=once, poll_seconds=poll)
    typer.echo(f"worker: executed {done} run(s)")
