"""Fault suite, secrets: an open webhook, the token in logs, the token in the trainer's environment."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bearbot.settings import SettingsError, load_settings
from bot.telegram.app import build_application, webhook_options
from core.learning import LearningState, start_trainer, trainer_env
from tests.fake_bot_api import FakeBotApi
from tests.bot_harness import (
    ALICE,
    CachingLoader,
    RunningBot,
    loader,  # noqa: F401 - pytest fixture
)

SECRET = "s3cret-Header_value"


def test_webhook_mode_refuses_to_start_without_a_secret() -> None:
    with pytest.raises(SettingsError, match="BEARBOT_WEBHOOK_SECRET.*required in webhook mode"):
        load_settings(webhook_url="https://bot.example.com/tg")
    with pytest.raises(SettingsError, match="BEARBOT_WEBHOOK_SECRET") as refused:
        load_settings(webhook_url="https://bot.example.com/tg", webhook_secret="has spaces and ; quotes")
    assert "spaces" not in str(refused.value)  # the bad secret is not echoed
    assert load_settings(webhook_url="https://bot.example.com/tg", webhook_secret=SECRET).webhook_secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, update: dict[str, object], secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(update).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_update_without_the_secret_is_refused(tmp_path: Path, loader: CachingLoader) -> None:
    port = _free_port()
    hook = f"http://127.0.0.1:{port}/tg"
    with FakeBotApi() as api:
        settings = load_settings(
            data_dir=tmp_path / "var", telegram_api_url=api.url, telegram_bot_token=api.token,
            webhook_url=hook, webhook_listen="127.0.0.1", webhook_port=port, webhook_secret=SECRET,
        )
        app = build_application(settings, loader=loader.for_settings(settings), learning=False)
        ready, stop = threading.Event(), threading.Event()

        async def serve() -> None:
            await app.initialize()
            await app.post_init(app)  # type: ignore[misc]
            await app.start()
            assert app.updater is not None
            await app.updater.start_webhook(**webhook_options(settings))
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await app.post_shutdown(app)  # type: ignore[misc]

        thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        thread.start()
        try:
            assert ready.wait(120)
            forged = {"update_id": 1, "message": api.user_message(ALICE, text="/help")}
            assert _post(hook, forged, secret=None) == 403
            assert _post(hook, forged, secret="guessed") == 403
            time.sleep(0.5)
            assert not api.replies_to(forged["message"]["message_id"])
            real = {"update_id": 2, "message": api.user_message(ALICE, text="/help")}
            assert _post(hook, real, secret=SECRET) == 200
            api.wait_for(lambda s: s.reply_to == real["message"]["message_id"], timeout=30)
        finally:
            stop.set()
            thread.join(60)


def test_the_token_never_reaches_the_logs(tmp_path: Path, loader: CachingLoader, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RunningBot(tmp_path / "var", loader=loader) as bot:
        bot.reply(bot.send(ALICE, text="/help"))
        token = bot.api.token
    assert "getUpdates" in caplog.text  # the Bot API URLs were logged…
    assert token not in caplog.text  # …without the token in them
    assert token.split(":")[1] not in caplog.text


def test_the_trainer_child_gets_no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The token comes from an env file in the working directory, where the child would read it too.
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN=123456:ABCDEFGH\nBEARBOT_WEBHOOK_SECRET={SECRET}\n")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:ABCDEFGH")
    settings = load_settings(data_dir=tmp_path / "var")
    assert settings.token == "123456:ABCDEFGH"
    child = subprocess.run(
        [sys.executable, "-c", "from bearbot.settings import load_settings; s = load_settings(); "
         "print(s.token, s.webhook_secret, s.data_dir)"],
        env=trainer_env(settings), capture_output=True, text=True, timeout=120, check=True,
    )
    assert child.stdout.split()[:2] == ["None", "None"], child.stdout
    state = LearningState()  # the real start: read the environment the child was given
    start_trainer(settings, state)
    assert state.process is not None
    try:
        environ = Path(f"/proc/{state.process.pid}/environ").read_bytes().split(b"\0")
    finally:
        state.process.kill()
        state.process.wait(30)
        for fh in state.log_files:
            fh.close()
    assert not any(b"ABCDEFGH" in entry or SECRET.encode() in entry for entry in environ)
    assert os.environ.get("TELEGRAM_BOT_TOKEN") == "123456:ABCDEFGH"  # the bot's own is untouched
