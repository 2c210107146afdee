"""The layout: the core imports no transport library, and each library is imported by its adapter only."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bearbot", "bot", "core", "storage", "trainer")
# Transport-specific code outside its adapter: `bearbot run`'s one-line start-up errors (lazy imports).
TELEGRAM_ELSEWHERE = {"bearbot/cli/bot_cmds.py"}
DISCORD_ELSEWHERE = {"bearbot/cli/bot_cmds.py"}


def _imports(path: Path) -> set[str]:
    """Top-level package names ``path`` imports (anywhere in the module, lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules() -> dict[str, set[str]]:
    return {
        str(path.relative_to(ROOT)): _imports(path)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }


def test_core_imports_no_transport() -> None:
    core = {name: imports for name, imports in _modules().items() if name.startswith("core/")}
    assert core, "no core package found"
    assert {name: imports & {"telegram", "discord"} for name, imports in core.items() if imports & {"telegram", "discord"}} == {}


def test_only_the_telegram_adapter_imports_telegram() -> None:
    importers = {name for name, imports in _modules().items() if "telegram" in imports}
    assert importers - TELEGRAM_ELSEWHERE <= {name for name in importers if name.startswith("bot/telegram/")}
    assert any(name.startswith("bot/telegram/") for name in importers)



def test_only_the_discord_adapter_imports_discord() -> None:
    importers = {name for name, imports in _modules().items() if "discord" in imports}
    assert importers - DISCORD_ELSEWHERE <= {name for name in importers if name.startswith("bot/discord/")}
    assert any(name.startswith("bot/discord/") for name in importers)


def test_the_command_line_imports_transports_lazily() -> None:
    """``bearbot chat``, ``train`` … start without loading python-telegram-bot or discord.py."""
    for name in TELEGRAM_ELSEWHERE | DISCORD_ELSEWHERE:
        tree = ast.parse((ROOT / name).read_text())
        top = {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        top |= {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        assert not top & {"telegram", "discord"}, name


def _uses_job_queue(path: Path) -> bool:
    """Whether ``path`` imports JobQueue or reads a ``.job_queue`` (turning it off, ``.job_queue(None)``, is fine)."""
    tree = ast.parse(path.read_text())
    off = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and [ast.dump(a) for a in n.args] == [ast.dump(ast.Constant(None))]}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "JobQueue" for a in node.names):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "job_queue" and id(node) not in off:
            return True
    return False


def test_no_job_queue_telegram_runs_no_scheduler_of_its_own(tmp_path: Path) -> None:
    """The core schedules every job itself (APScheduler), so python-telegram-bot's JobQueue is neither
    used nor installed for it (no ``job-queue`` extra) nor started (``.job_queue(None)``)."""
    from bearbot.settings import load_settings
    from bot.telegram.app import build_application

    assert {name for name in _modules() if _uses_job_queue(ROOT / name)} == set()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [ptb] = [d for d in dependencies if d.startswith("python-telegram-bot")]
    assert "job-queue" not in ptb and any(d.startswith("APScheduler>=") for d in dependencies)  # the core's own
    settings = load_settings(data_dir=tmp_path / "var", telegram_bot_token="1:x")
    application = build_application(settings)
    with pytest.warns(UserWarning, match="No `JobQueue` set up"):  # what PTB says when one reads it
        assert application.job_queue is None
