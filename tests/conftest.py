"""Shared fixtures: every test runs in its own temp directory with a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bearbot.settings import Settings, load_settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer .env or BEARBOT_* variable leaks into a test; cwd is a temp dir."""
    for name in list(os.environ):
        if name.startswith(("BEARBOT_", "TELEGRAM_", "DISCORD_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def anyio_backend() -> str:
    """``pytest.mark.anyio`` tests (the core's) run on asyncio, the loop every transport uses."""
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data dir (SQLite database inside it)."""
    return load_settings(data_dir=tmp_path / "var")


@pytest.fixture
def storage(settings: Settings) -> Iterator[object]:
    """Migrated storage on a fresh SQLite file."""
    from storage.store import open_storage

    store = open_storage(settings)
    yield store
    store.close()
