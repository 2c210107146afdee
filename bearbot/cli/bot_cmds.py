"""``bearbot run`` (the Telegram bot) and ``bearbot chat`` (the same bot in a terminal, offline)."""

from __future__ import annotations

import importlib.util
import logging
import re
import warnings
from enum import Enum

import typer
from dotenv import dotenv_values

from bearbot.cli.common import cli_options, fail, settings_or_exit
from bearbot.settings import Settings, find_env_file

NO_TOKEN = (
    "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in .env or the environment, "
    "or try the bot offline with `bearbot chat`."
)


# What @BotFather hands out: the bot's numeric id, a colon, then letters, digits, '-' and '_'.
TOKEN_SHAPE = re.compile(r"\d+:[A-Za-z0-9_-]+")
BAD_TOKEN_SHAPE = (
    "TELEGRAM_BOT_TOKEN does not look like a bot token (digits, a colon, then letters, e.g. 123456789:AAF…): "
    "copy it again from @BotFather, without quotes, spaces or a 'bot' prefix."
)


class Transport(str, Enum):
    """Which chat network(s) ``bearbot run`` serves."""

    telegram = "telegram"
    discord = "discord"
    both = "both"


# Not a setting (the transport picks which settings matter), but read like one: from the environment
# (typer's envvar), else from the env file, so compose's and systemd's env files can choose it.
TRANSPORT_VAR = "BEARBOT_TRANSPORT"


def chosen_transport(given: Transport | None) -> Transport:
    """``--transport`` or ``$BEARBOT_TRANSPORT`` (``given``), else BEARBOT_TRANSPORT in the env file, else telegram."""
    if given is not None:
        return given
    env_file = find_env_file(cli_options().env_file)
    value = (dotenv_values(env_file).get(TRANSPORT_VAR) if env_file else None) or Transport.telegram.value
    try:
        return Transport(value.strip().lower())
    except ValueError:
        raise fail(f"{TRANSPORT_VAR}={value!r} in {env_file}: expected telegram, discord or both", 2) from None


def run_cmd(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and full tracebacks on errors."),
    given: Transport | None = typer.Option(
        None, "--transport", "-t", envvar=TRANSPORT_VAR, show_default="telegram",
        help="telegram, discord (DISCORD_BOT_TOKEN), or both in one process sharing the database and the model "
        "(else BEARBOT_TRANSPORT from the environment or the env file).",
    ),
) -> None:
    """Start the bot (Telegram: long polling, or webhook mode when BEARBOT_WEBHOOK_URL is set; Discord: the gateway)."""
    verbose = verbose or cli_options().verbose
    settings = settings_or_exit()
    transport = chosen_transport(given)
    # An empty DISCORD_BOT_TOKEN= (as .env.example has it) is no token either.
    if transport != Transport.telegram and not (settings.discord_bot_token and settings.discord_bot_token.get_secret_value()):
        from bot.discord.serve import NO_TOKEN as NO_DISCORD_TOKEN

        typer.echo(NO_DISCORD_TOKEN, err=True)
        raise typer.Exit(2)
    if transport == Transport.discord:
        _serve_discord(settings, verbose, with_telegram=False)
        return
    if not settings.token:
        typer.echo(NO_TOKEN, err=True)
        raise typer.Exit(2)
    if not TOKEN_SHAPE.fullmatch(settings.token):  # before any network call: a typo is not a network error
        raise fail(BAD_TOKEN_SHAPE, 2)
    if settings.webhook_url and importlib.util.find_spec("tornado") is None:
        raise fail(
            "webhook mode (BEARBOT_WEBHOOK_URL) needs python-telegram-bot's webhooks extra: "
            "pip install 'python-telegram-bot[webhooks]'"
        )
    if transport == Transport.both:
        _serve_discord(settings, verbose, with_telegram=True)
        return
    from bot.telegram.app import run_bot

    if not verbose:
        one_line_library_errors()
    try:
        run_bot(settings)
    except Exception as exc:
        if verbose:
            raise
        raise fail(run_error(exc, settings)) from None


def _serve_discord(settings: Settings, verbose: bool, *, with_telegram: bool) -> None:
    """Discord alone, or Discord and Telegram in one process on one conversation core."""
    from bot.discord.serve import run_discord

    if not verbose:
        one_line_library_errors()
    try:
        run_discord(settings, with_telegram=with_telegram)
    except Exception as exc:
        if verbose:
            raise
        raise fail(discord_error(exc, settings)) from None


def discord_error(exc: Exception, settings: Settings) -> str:
    """One line for a Discord bot that could not start (else :func:`run_error`'s, for Telegram)."""
    import aiohttp
    import discord

    if isinstance(exc, discord.LoginFailure):
        return "Discord rejected DISCORD_BOT_TOKEN: copy it again (developer portal → your app → Bot → Reset Token)"
    if isinstance(exc, aiohttp.ClientError | discord.GatewayNotFound):
        return f"could not reach Discord ({type(exc).__name__}: {exc}); check the network"
    return run_error(exc, settings)


def run_error(exc: Exception, settings: Settings) -> str:
    """One line saying what went wrong when the bot could not start, and what to do."""
    from telegram.error import Conflict, InvalidToken, NetworkError

    api = settings.telegram_api_url
    if isinstance(exc, InvalidToken):
        return f"the Bot API at {api} rejected TELEGRAM_BOT_TOKEN; check it with @BotFather"
    if isinstance(exc, Conflict):
        return (
            "another process is already receiving this bot's updates (a second `bearbot run`, or a webhook); "
            "stop it, or use one bot token per running bot"
        )
    if isinstance(exc, NetworkError):
        return f"could not reach the Bot API at {api} ({exc}); check TELEGRAM_API_URL and the network"
    if isinstance(exc, OSError) and settings.webhook_url:
        return (
            f"could not listen on {settings.webhook_listen}:{settings.webhook_port} for the webhook ({exc}); "
            "pick a free port with BEARBOT_WEBHOOK_PORT (below 1024 needs root: put a reverse proxy in front)"
        )
    return f"{type(exc).__name__}: {exc} (run `bearbot run --verbose` for the traceback)"


class _OneLine(logging.Filter):
    """Library errors as one log line each; start-up failures are left to :func:`run_error`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("telegram", "discord")):
            return True
        if "Bootstrap" in record.getMessage():  # the start-up retry loop giving up: run_error says it once
            return False
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def one_line_library_errors() -> None:
    """Install :class:`_OneLine` on the root handlers (``--verbose`` keeps the tracebacks)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_OneLine())


def chat_cmd() -> None:
    """Talk to the bot offline in this terminal: image paths, /correct, /stats, /retrain… (reads stdin to EOF)."""
    settings = settings_or_exit()
    # The transcript is the point here: keep library chatter out of it unless asked for.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger().setLevel(logging.WARNING)
        # Library deprecation notes (torch.jit, fastai's pickle notice on a model swap) are not for chat users.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
    from bot.console.chat import chat

    chat(settings)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("run")(run_cmd)
    app.command("chat")(chat_cmd)
