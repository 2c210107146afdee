"""Helpers every sub-command uses: settings with one-line errors, logging, storage."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import typer

try:  # typer 0.2x vendors its own click, whose context stack is the one that runs our commands
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older typer on the real click
    from click import get_current_context

from bearbot.settings import Settings, SettingsError, find_env_file, load_settings

log = logging.getLogger("bearbot.cli")


@dataclass(frozen=True)
class CliOptions:
    """The options given before the sub-command (``bearbot --env-file F --verbose run``)."""

    env_file: Path | None = None
    verbose: bool = False


def cli_options() -> CliOptions:
    """The root command's options for the command now running (defaults outside a CLI call)."""
    ctx = get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, CliOptions) else CliOptions()


def quiet_expected_warnings() -> None:
    """Hide the library notices every model load prints and nothing a user did causes.

    torch deprecates TorchScript (``torch.jit.*``) with a FutureWarning on each use, and fastai's
    ``load_learner`` warns that it unpickles; the bot unpickles only artifacts it wrote and
    verified by sha256. Other warnings still show.
    """
    warnings.filterwarnings("ignore", message=r".*`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*TorchScript .*deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"load_learner` uses Python's insecure pickle", category=UserWarning)


def settings_or_exit() -> Settings:
    """Load settings; a bad value prints one line naming the setting and exits 2.

    The env file is ``--env-file``, else ``$BEARBOT_ENV_FILE``, else ``./.env``; the data
    directory is resolved to an absolute path once and logged.
    """
    options = cli_options()
    try:
        env_file = find_env_file(options.env_file)
        settings = load_settings(env_file=env_file)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    level = logging.DEBUG if options.verbose else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO (and the URL holds the bot token): keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces its context on every start; storage.db.upgrade logs real migrations itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    fresh = "" if settings.data_dir.exists() else " (new: it does not exist yet)"
    log.info("data directory %s%s; settings from %s", settings.data_dir, fresh, env_file or "the environment only")
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to stderr and return an Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
