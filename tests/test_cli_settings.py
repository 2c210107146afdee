"""Where settings come from: --env-file, BEARBOT_ENV_FILE, ./.env; one data directory; `bearbot settings`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bearbot.cli import app
from bearbot.settings import SettingsError, load_settings, settings_to_env

TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789"


def _conf(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bot.env"
    path.write_text(text)
    return path


def test_env_file_option_wins_over_the_variable_and_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = _conf(tmp_path / "srv", "BEARBOT_DATA_DIR=./state\nBEARBOT_LABELS=cat,dog\n")
    other = _conf(tmp_path / "other", "BEARBOT_LABELS=ant,bee\n")
    (tmp_path / ".env").write_text("BEARBOT_LABELS=elk,fox\n")
    assert load_settings().labels == ("elk", "fox")  # ./.env when nothing is named
    monkeypatch.setenv("BEARBOT_ENV_FILE", str(other))
    assert load_settings().labels == ("ant", "bee")  # then BEARBOT_ENV_FILE
    settings = load_settings(env_file=named)  # then --env-file
    assert settings.labels == ("cat", "dog")
    # A relative data directory belongs to the env file's folder, wherever the command runs.
    assert settings.data_dir == tmp_path / "srv" / "state"
    assert settings.db_url == f"sqlite:///{tmp_path}/srv/state/bearbot.db"
    assert settings_to_env(settings)["BEARBOT_DATA_DIR"] == str(tmp_path / "srv" / "state")  # what a child gets


def test_a_named_env_file_that_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="--env-file does not exist"):
        load_settings(env_file=tmp_path / "nope.env")
    monkeypatch.setenv("BEARBOT_ENV_FILE", str(tmp_path / "gone.env"))
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: the env file {tmp_path / 'gone.env'} named by BEARBOT_ENV_FILE does not exist"
    assert not (tmp_path / "var").exists()  # no stray empty data directory


def test_without_an_env_file_the_data_directory_is_the_working_directorys(tmp_path: Path) -> None:
    assert load_settings().data_dir == tmp_path / "var"


def test_settings_command_masks_secrets_and_names_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _conf(
        tmp_path / "etc",
        f"TELEGRAM_BOT_TOKEN={TOKEN}\nBEARBOT_DATA_DIR=data\n"
        "BEARBOT_DATABASE_URL=postgresql+psycopg://bear:hunter2@db/bear\nBEARBOT_WEBHOOK_SECRET=s3cr3t-value\n",
    )
    monkeypatch.setenv("BEARBOT_ADMIN_IDS", "42")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["--env-file", str(conf), "settings"])
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in ("ABCdefGHI", "hunter2", "s3cr3t-value"):
        assert secret not in out
    lines = {line.split("=", 1)[0]: line for line in out.splitlines() if "=" in line and not line.startswith("#")}
    assert lines["TELEGRAM_BOT_TOKEN"].startswith("TELEGRAM_BOT_TOKEN=123456:*** (36 characters hidden)")
    assert lines["TELEGRAM_BOT_TOKEN"].endswith("# env file")
    assert lines["BEARBOT_DATABASE_URL"].startswith("BEARBOT_DATABASE_URL=postgresql+psycopg://bear:***@db/bear")
    assert lines["BEARBOT_WEBHOOK_SECRET"].startswith("BEARBOT_WEBHOOK_SECRET=*** (set)")
    assert lines["BEARBOT_ADMIN_IDS"].startswith("BEARBOT_ADMIN_IDS=42") and lines["BEARBOT_ADMIN_IDS"].endswith("# environment")
    assert lines["BEARBOT_DATA_DIR"].startswith(f"BEARBOT_DATA_DIR={tmp_path / 'etc' / 'data'} ")
    assert lines["BEARBOT_LABELS"].endswith("# default")
    assert f"# env file: {conf}" in out and f"# data directory: {tmp_path / 'etc' / 'data'}" in out
    assert not (elsewhere / "var").exists()


def test_commands_from_another_folder_use_the_env_files_data_directory(tmp_path: Path) -> None:
    conf = _conf(tmp_path / "srv", "BEARBOT_DATA_DIR=./var\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEARBOT_", "TELEGRAM_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bearbot", "--env-file", str(conf), "db", "upgrade"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "srv" / "var" / "bearbot.db").exists() and not (elsewhere / "var").exists()
    # The start says which data directory and which settings file it uses.
    assert f"data directory {tmp_path / 'srv' / 'var'} (new: it does not exist yet); settings from {conf}" in proc.stderr
