"""Settings: defaults, .env, environment, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bearbot.settings import SettingsError, load_settings


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.telegram_api_url == "https://api.telegram.org"
    assert s.data_dir == tmp_path / "var"  # resolved once against the working directory
    assert s.db_url == f"sqlite:///{tmp_path}/var/bearbot.db"
    assert s.admin_ids == frozenset()
    assert s.labels == ("grizzly", "black", "teddy")
    assert s.token is None


def test_dotenv_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "TELEGRAM_BOT_TOKEN=123:abc\nBEARBOT_ADMIN_IDS=1, 22 ,333\nBEARBOT_DATA_DIR=/srv/bear\n"
        "TELEGRAM_API_URL=http://127.0.0.1:8081/\nBEARBOT_LABELS=Cat,dog\n"
    )
    monkeypatch.setenv("BEARBOT_DATA_DIR", "/override")  # the environment wins over .env
    s = load_settings()
    assert s.token == "123:abc"
    assert s.admin_ids == frozenset({1, 22, 333})
    assert s.data_dir == Path("/override")
    assert s.db_url == "sqlite:////override/bearbot.db"
    assert s.telegram_api_url == "http://127.0.0.1:8081"
    assert s.labels == ("cat", "dog")
    assert "123:abc" not in repr(s)  # the token is a secret


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BEARBOT_ADMIN_IDS", "12,bob"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
        ("BEARBOT_WEBHOOK_PORT", "70000"),
        ("BEARBOT_LABELS", "only-one"),
        ("BEARBOT_DEVICE", "tpu"),
    ],
)
def test_bad_value_is_one_line_naming_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert name in message and "\n" not in message


def test_cli_bad_setting_exits_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEARBOT_ADMIN_IDS", "not-a-number")
    proc = subprocess.run(
        [sys.executable, "-m", "bearbot", "db", "current"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "BEARBOT_ADMIN_IDS" in lines[0] and "Traceback" not in proc.stderr


def test_blank_tokens_are_no_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "")  # as .env.example ships it
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    settings = load_settings(data_dir=tmp_path)
    assert settings.discord_bot_token is None and settings.telegram_bot_token is None
