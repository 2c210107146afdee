"""The ``bearbot`` command: the one place that wires settings, storage, bot and trainer together.

Each sub-command module imports the heavy parts (torch, telegram) only when it runs, so
``bearbot --help`` is instant and a broken optional part cannot break the others.
"""

from __future__ import annotations

import typer

from bearbot.cli import bot_cmds, dataset_cmds, db_cmds, model_cmds, train_cmds, worker_cmds

app = typer.Typer(
    name="bearbot",
    help="Telegram bot that tells grizzly, black and teddy bears apart, and learns from corrections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_cmds.app, name="db", help="Database migrations.")
app.add_typer(dataset_cmds.app, name="dataset", help="Build, import and inspect the training dataset.")
app.add_typer(model_cmds.app, name="models", help="List, activate and roll back model versions.")
train_cmds.register(app)
bot_cmds.register(app)
worker_cmds.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
