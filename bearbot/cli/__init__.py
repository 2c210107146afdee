"""The ``bearbot`` command, where every process starts: it reads the settings once and hands them to
the factory the sub-command runs (``bot.telegram.app.build_application``, the trainer's worker, storage).

Each sub-command module imports the heavy parts (torch, telegram) only when it runs, so
``bearbot --help`` is instant and a broken optional part cannot break the others.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bearbot.cli import bot_cmds, dataset_cmds, db_cmds, model_cmds, settings_cmds, train_cmds, worker_cmds
from bearbot.cli.common import CliOptions, quiet_expected_warnings
from bearbot.cli.help_format import PlainHelpGroup

app = typer.Typer(
    name="bearbot",
    cls=PlainHelpGroup,
    help="Telegram bot that tells grizzly, black and teddy bears apart, and learns from corrections.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    env_file: Path | None = typer.Option(
        None,
        "--env-file",
        metavar="FILE",
        help="Settings file to read (default: $BEARBOT_ENV_FILE, else ./.env when present).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and full tracebacks on errors."),
) -> None:
    """Telegram bot that tells grizzly, black and teddy bears apart, and learns from corrections."""
    ctx.obj = CliOptions(env_file=env_file, verbose=verbose)
    if not verbose:
        quiet_expected_warnings()


app.add_typer(db_cmds.app, name="db", help="Database migrations.")
app.add_typer(dataset_cmds.app, name="dataset", help="Build, import and inspect the training dataset.")
app.add_typer(model_cmds.app, name="models", help="List, activate and roll back model versions.")
train_cmds.register(app)
bot_cmds.register(app)
worker_cmds.register(app)
settings_cmds.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
