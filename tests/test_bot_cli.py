"""``bearbot run`` without a token, and ``bearbot chat`` driven through piped input."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sqlalchemy import select
from typer.testing import CliRunner

from bearbot.cli import app
from bearbot.settings import load_settings
from bot.console.chat import chat
from tests.fake_bot_api import FakeBotApi
from storage.models import Correction, PredictionRecord
from storage.store import open_storage
from tests.bot_harness import ADMIN, ALICE, FIXTURES, eventually


def test_run_without_token_says_what_to_set_in_one_sentence() -> None:
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "TELEGRAM_BOT_TOKEN" in lines[0] and ".env" in lines[0] and "bearbot chat" in lines[0]


def test_chat_runs_the_bot_from_piped_lines(tmp_path: Path) -> None:
    grizzly = FIXTURES / "bears" / "grizzly" / "grizzly1.jpg"
    script = f"{grizzly}\n/correct Teddy\n1\n{FIXTURES / 'bears' / 'black'}\n/stats\n/labels\nmissing.jpg\n"
    settings = load_settings(data_dir=tmp_path / "var")
    out = io.StringIO()
    chat(settings, lines=io.StringIO(script), out=out)  # the real loader, as `bearbot chat` runs it
    text = out.getvalue()
    assert "bearbot › 🐻 grizzly" in text
    assert "[1] ✅ yes, grizzly  [2] it's black  [3] it's teddy" in text
    assert "Recorded: teddy — I said grizzly" in text
    assert "Updated: grizzly" in text  # tapping [1] confirms instead
    assert text.count("bearbot › 🐻 black") >= 3  # the folder went as an album, every photo answered
    assert "I have answered 5 photos" in text and "I know these labels: grizzly, black, teddy." in text
    assert "no such file: missing.jpg" in text
    storage = open_storage(settings)
    with storage.session() as session:
        assert len(session.scalars(select(PredictionRecord)).all()) == 5
        assert session.scalar(select(Correction.label)) == "grizzly"
    storage.close()


def test_webhook_mode_without_tornado_fails_clearly(monkeypatch: object) -> None:
    import importlib.util

    if importlib.util.find_spec("tornado") is not None:
        return  # the webhooks extra is installed: nothing to check
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "BEARBOT_WEBHOOK_URL": "https://bot.example/hook"}
    result = CliRunner().invoke(app, ["run"], env=env)
    assert result.exit_code == 1 and "python-telegram-bot[webhooks]" in result.output


@pytest.mark.slow
def test_bearbot_run_serves_a_bot_api_server_and_stops_cleanly(tmp_path: Path) -> None:
    with FakeBotApi() as api:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BEARBOT_", "TELEGRAM_"))},
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.url,
            "BEARBOT_DATA_DIR": str(tmp_path / "var"),
            "BEARBOT_ADMIN_IDS": str(ADMIN["id"]),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bearbot", "run"], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            photo = api.send_user_message(ALICE, photo=(FIXTURES / "bears" / "teddy" / "teddy1.jpg").read_bytes())
            answer = api.wait_for(lambda s: s.reply_to == photo["message_id"], timeout=120)[0]
            assert answer.text is not None and answer.text.startswith("🐻 teddy")
            assert any(method == "setMyCommands" for method, _ in api.calls)
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert (tmp_path / "var" / "bearbot.db").exists()
        assert api.token not in output  # the token (it is in every URL) never reaches the log


def test_run_with_a_rejected_token_fails_in_one_line(tmp_path: Path) -> None:
    with FakeBotApi() as api:
        env = {"TELEGRAM_BOT_TOKEN": "999:WRONG", "TELEGRAM_API_URL": api.url, "BEARBOT_DATA_DIR": str(tmp_path / "var")}
        result = CliRunner().invoke(app, ["run"], env=env)
    assert result.exit_code == 1
    assert "rejected TELEGRAM_BOT_TOKEN" in result.output and "999:WRONG" not in result.output


@pytest.mark.slow
def test_bearbot_run_in_webhook_mode(tmp_path: Path) -> None:
    import json
    import socket
    import urllib.request

    pytest.importorskip("tornado")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with FakeBotApi() as api:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BEARBOT_", "TELEGRAM_"))},
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.url,
            "BEARBOT_DATA_DIR": str(tmp_path / "var"),
            "BEARBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
            "BEARBOT_WEBHOOK_LISTEN": "127.0.0.1",
            "BEARBOT_WEBHOOK_PORT": str(port),
            "BEARBOT_WEBHOOK_SECRET": "s3cret",
        }
        proc = subprocess.Popen([sys.executable, "-m", "bearbot", "run"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            set_webhook = eventually(lambda: next((p for m, p in api.calls if m == "setWebhook"), None), timeout=120)
            assert set_webhook and set_webhook["url"] == f"http://127.0.0.1:{port}/hook" and set_webhook["secret_token"] == "s3cret"
            message = api.user_message(ALICE, text="/help")
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/hook", data=json.dumps({"update_id": 1, "message": message}).encode(),
                headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s3cret"},
            )

            def post() -> int | None:  # PTB sets the webhook first, then opens its server
                try:
                    return urllib.request.urlopen(request, timeout=30).status
                except OSError:
                    return None

            assert eventually(post, timeout=60) == 200
            answer = api.wait_for(lambda s: s.reply_to == message["message_id"], timeout=60)[0]
            assert answer.text is not None and answer.text.startswith("Send me a photo")
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output

