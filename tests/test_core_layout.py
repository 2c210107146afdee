"""The layout: the core imports no transport library, and each library is imported by its adapter only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bearbot", "bot", "core", "storage", "trainer")
# Telegram-specific code outside bot/telegram/: `bearbot run`'s one-line start-up errors (lazy import).
TELEGRAM_ELSEWHERE = {"bearbot/cli/bot_cmds.py"}


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

