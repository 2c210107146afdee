"""Alembic is the only way the schema is made; migrations and models agree."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from bearbot.settings import Settings
from storage.db import current_revision, downgrade, head_revision, make_engine, upgrade
from storage.models import Base

TABLES = {"users", "images", "predictions", "corrections", "dataset_items", "training_runs", "model_versions"}


def test_upgrade_downgrade_upgrade(settings: Settings) -> None:
    url = settings.db_url
    upgrade(url)
    engine = make_engine(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == head_revision(url)
    downgrade(url, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    assert current_revision(engine) is None
    upgrade(url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_models_match_migrations(settings: Settings) -> None:
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_runs_in_wal_mode(settings: Settings) -> None:
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_cli_db_upgrade_and_current(settings: Settings) -> None:
    env_cmd = [sys.executable, "-m", "bearbot", "db"]
    up = subprocess.run([*env_cmd, "upgrade"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    cur = subprocess.run([*env_cmd, "current"], capture_output=True, text=True, timeout=120)
    assert cur.returncode == 0 and "up to date" in cur.stdout
