"""``bearbot run`` (the Telegram bot) and ``bearbot chat`` (the same bot in a terminal, offline)."""

from __future__ import annotations

import importlib.util
import logging
import warnings

import typer

from bearbot.cli.common import fail, settings_or_exit

NO_TOKEN = (
    "TELEGRAM_BOT_TOKEN is not set: put the token from @BotFather in .env or the environment, "
    "or try the bot offline with `bearbot chat`."
)


def run_cmd() -> None:
    """Start the Telegram bot (long polling; webhook mode when BEARBOT_WEBHOOK_URL is set)."""
    settings = settings_or_exit()
    if not settings.token:
        typer.echo(NO_TOKEN, err=True)
        raise typer.Exit(2)
    if settings.webhook_url and importlib.util.find_spec("tornado") is None:
        raise fail(
            "webhook mode (BEARBOT_WEBHOOK_URL) needs python-telegram-bot's webhooks extra: "
            "pip install 'python-telegram-bot[webhooks]'"
        )
    from telegram.error import InvalidToken, NetworkError

    from bot.runner import run_bot

    try:
        run_bot(settings)
    except InvalidToken:
        raise fail(f"the Bot API at {settings.telegram_api_url} rejected TELEGRAM_BOT_TOKEN; check it with @BotFather") from None
    except NetworkError as exc:
        raise fail(f"could not reach the Bot API at {settings.telegram_api_url} ({exc}); check TELEGRAM_API_URL and the network") from None


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
