"""Failures a person can cause print one line that says what to do; --verbose keeps the traceback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bearbot.cli import app
from bearbot.cli.common import quiet_expected_warnings
from tests.fake_bot_api import FakeBotApi

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|DEBUG) ")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BEARBOT_", "TELEGRAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "bearbot", *args], cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={**base, "BEARBOT_DATA_DIR": str(tmp_path / "var"), **env},
    )


def _problems(stderr: str) -> list[str]:
    """Every line that is not the ordinary start-up log."""
    return [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_bot_api_is_one_line_and_verbose_shows_the_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    proc = _run(tmp_path, "run", TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_API_URL=url)
    assert proc.returncode == 1
    assert _problems(proc.stderr) == [
        f"error: could not reach the Bot API at {url} (httpx.ConnectError: All connection attempts failed); "
        "check TELEGRAM_API_URL and the network"
    ]
    verbose = _run(tmp_path, "run", "--verbose", TELEGRAM_BOT_TOKEN="123:abc", TELEGRAM_API_URL=url)
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr


def test_rejected_token_is_one_line_without_the_token(tmp_path: Path) -> None:
    with FakeBotApi() as api:
        proc = _run(tmp_path, "run", TELEGRAM_BOT_TOKEN="999:WRONG", TELEGRAM_API_URL=api.url)
    assert proc.returncode == 1
    problems = _problems(proc.stderr)
    assert len(problems) == 1 and problems[0].startswith("error: the Bot API at") and "rejected TELEGRAM_BOT_TOKEN" in problems[0]
    assert "WRONG" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("token", ['"123456:ABC-def"', "bot123456:ABC", "123456 ABC", "ABC", "123456:ABC def"])
def test_a_malformed_token_is_refused_before_any_network_call(tmp_path: Path, token: str) -> None:
    with FakeBotApi() as api:
        result = CliRunner().invoke(app, ["run"], env={"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_URL": api.url,
                                                       "BEARBOT_DATA_DIR": str(tmp_path / "var")})
        assert api.calls == []
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: TELEGRAM_BOT_TOKEN does not look like a bot token")


def test_help_shows_plain_names_and_no_python_types() -> None:
    runner = CliRunner()
    pages = {
        args: runner.invoke(app, [*args, "--help"], terminal_width=100).output
        for args in [(), ("predict",), ("dataset", "build"), ("dataset", "import"), ("db", "upgrade"), ("run",)]
    }
    for args, page in pages.items():
        usage = next(line for line in page.splitlines() if "Usage:" in line)
        assert "<bool>" not in page and "<list" not in page and "{" not in usage, (args, page)
    assert "Usage: bearbot predict [OPTIONS] IMAGES..." in pages[("predict",)]
    assert "IMAGES..." in pages[("predict",)] and "--json " in pages[("predict",)]
    assert "Usage: bearbot dataset import [OPTIONS] FOLDER" in pages[("dataset", "import")]
    assert "Usage: bearbot db upgrade [OPTIONS] [REVISION]" in pages[("db", "upgrade")]
    assert "--env-file" in pages[()] and "FILE" in pages[()] and "settings" in pages[()]
    missing = runner.invoke(app, ["predict"])
    assert missing.exit_code == 2 and "Missing argument 'IMAGES'" in missing.output


def test_expected_library_warnings_are_hidden_and_others_are_not() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_expected_warnings()
        warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile`.", FutureWarning)
        warnings.warn("load_learner` uses Python's insecure pickle module, which can execute code.", UserWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
