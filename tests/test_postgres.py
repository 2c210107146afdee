"""Nothing is SQLite-only: the migrations and storage also run on a real PostgreSQL server.

Starts a throwaway PostgreSQL cluster on 127.0.0.1 when the server binaries and psycopg are
installed (they are on the project's machines); skipped elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg")

from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from sqlalchemy.exc import IntegrityError  # noqa: E402

from bearbot.settings import load_settings  # noqa: E402
from storage import model_versions, runs  # noqa: E402
from storage.db import downgrade, make_engine, upgrade  # noqa: E402
from storage.models import Base, ModelVersion, Origin, RunStatus, Trigger  # noqa: E402
from storage.store import open_storage  # noqa: E402
from tests.helpers import image_bytes  # noqa: E402

pytestmark = pytest.mark.slow


def _as_postgres(*cmd: str) -> list[str]:
    # initdb/postgres refuse to run as root; the 'postgres' system user runs them.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("PostgreSQL server binaries are not installed")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("running as root without runuser")
    root = Path(tempfile.mkdtemp(prefix="bearbot-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(_as_postgres("initdb", "-D", str(data), "-A", "trust", "-U", "postgres"), check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres("pg_ctl", "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"),
        check=True, capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_migrations_round_trip_and_match_models(pg_url: str) -> None:
    upgrade(pg_url)
    downgrade(pg_url, "base")
    upgrade(pg_url)
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_storage_on_postgres(pg_url: str, tmp_path: Path) -> None:
    store = open_storage(load_settings(data_dir=tmp_path / "var", database_url=pg_url))
    with store.session() as s:
        _, created = store.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
        _, again = store.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
        assert created and not again
        v1 = model_versions.create_version(
            s, artifact_path=None, sha256="a" * 64, arch="x", labels=["a", "b"], metrics={}, activate=True
        )
        v2 = model_versions.create_version(
            s, artifact_path="m.pkl", sha256="b" * 64, arch="x", labels=["a", "b"], metrics={}, activate=True
        )
        assert model_versions.rollback(s).id == v1.id
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        assert runs.claim_next(s, worker="h:1").status is RunStatus.RUNNING
    with store.session() as s:  # the partial unique index holds on PostgreSQL too
        s.get(ModelVersion, v2.id).is_active = True
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    store.close()


def test_trust_on_postgres(pg_url: str, tmp_path: Path) -> None:
    """The trust recount (a correlated subquery with LIMIT, sums of CASE) is plain SQL on both backends."""
    from storage import corrections, trust
    from storage.models import CorrectionStatus
    from storage.users import upsert_user

    downgrade(pg_url, "base")
    store = open_storage(load_settings(data_dir=tmp_path / "var", database_url=pg_url))
    with store.session() as s:
        image, _ = store.images.put(s, data=image_bytes(), origin=Origin.UPLOAD)
        admin = upsert_user(s, telegram_id=1, display_name="admin", is_admin=True).id
        users = [upsert_user(s, telegram_id=10 + i, display_name=str(i), is_admin=False).id for i in range(3)]
        rule = trust.TrustRule(min_days=0, min_right=1, max_wrong_share=0.0)
        for uid, label in zip(users, ("black", "black", "teddy"), strict=True):
            corrections.record_correction(s, image_id=image.id, user_id=uid, label=label, prediction_id=None,
                                          is_admin=False, required=2, trust_rule=rule)
        assert corrections.count_by_status(s)[CorrectionStatus.ACCEPTED] == 0  # nobody trusted yet
        corrections.record_correction(s, image_id=image.id, user_id=admin, label="black", prediction_id=None,
                                      is_admin=True, required=2, trust_rule=rule)
        records = [trust.get_trust(s, user_id=u) for u in users]
        assert [(r.right, r.wrong) for r in records if r] == [(1, 0), (1, 0), (0, 1)]
        assert trust.trusted_users(s, set(users), rule) == set(users[:2])
        assert trust.trusted_waiting(s, rule) == 1
    store.close()
