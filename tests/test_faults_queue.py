"""Fault suite, training queue: dead trainers, racing requests and workers, a model swapped mid-run.

Each test reproduces a way the queue used to jam or lie; the same checks run on SQLite and, where
the server binaries exist, on a throwaway PostgreSQL server (tests/test_postgres.py's fixture).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bearbot.settings import load_settings
from storage import model_versions, runs
from storage.models import ModelVersion, RunStatus, TrainingRun, Trigger
from storage.store import Storage, open_storage
from tests.test_postgres import pg_url  # noqa: F401 - the throwaway PostgreSQL server fixture

LEASE = timedelta(minutes=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Migrated storage on SQLite, and on PostgreSQL when a server can be started here."""
    overrides: dict[str, Any] = {}
    if request.param == "postgresql":
        pytest.importorskip("psycopg")
        url = request.getfixturevalue("pg_url")
        from storage.db import downgrade, upgrade

        upgrade(url)
        downgrade(url, "base")  # a clean schema for every test on the shared server
        overrides["database_url"] = url
    storage = open_storage(load_settings(data_dir=tmp_path / "var", **overrides))
    yield storage
    storage.close()


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` for i < n in ``n`` threads released at the same instant."""
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def _count_active(store: Storage) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(TrainingRun).where(TrainingRun.status.in_(runs.ACTIVE)))


def test_two_requests_at_once_queue_one_run(store: Storage) -> None:
    def request(_: int) -> tuple[int, bool]:
        with store.session() as s:
            run, joined = runs.queue_run(s, trigger=Trigger.ADMIN)
            return run.id, joined

    for _ in range(5):
        outcomes = _race(6, request)
        assert len({run_id for run_id, _ in outcomes}) == 1, outcomes
        assert sorted(joined for _, joined in outcomes) == [False] + [True] * 5
        assert _count_active(store) == 1
        with store.session() as s:  # end it, so the next round races for a fresh one
            s.execute(update(TrainingRun).values(status=RunStatus.FAILED))


def test_the_database_refuses_a_second_active_run(store: Storage) -> None:
    from sqlalchemy.exc import IntegrityError

    with store.session() as s:
        runs.queue_run(s, trigger=Trigger.ADMIN)
    with pytest.raises(IntegrityError), store.session() as s:  # bypassing queue_run does not help
        s.add(TrainingRun(trigger=Trigger.CLI))
        s.flush()


def test_two_workers_one_claims_and_only_the_holder_finishes(store: Storage) -> None:
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)

    names = [f"box{i}:1:nonce{i}" for i in range(4)]

    def claim(i: int) -> int | None:
        with store.session() as s:
            got = runs.claim_next(s, worker=names[i])
            return got.id if got else None

    winners = [name for name, got in zip(names, _race(4, claim), strict=True) if got]
    with store.session() as s:
        holder = runs.get_run(s, run_id=run.id).worker
    assert winners == [holder]
    loser = next(n for n in names if n != holder)
    with pytest.raises(runs.LeaseLost), store.session() as s:
        runs.finish_run(s, run_id=run.id, worker=loser, status=RunStatus.SUCCEEDED)
    with store.session() as s:
        runs.finish_run(s, run_id=run.id, worker=holder, status=RunStatus.REJECTED)
        assert runs.get_run(s, run_id=run.id).status is RunStatus.REJECTED


def test_a_run_failed_by_recovery_is_not_turned_into_a_success(store: Storage) -> None:
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        runs.claim_next(s, worker="gpu-box:7:aaaa")
        s.execute(  # the worker went quiet: no heartbeat for 10 minutes
            update(TrainingRun).values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    with store.session() as s:
        assert [r.id for r in runs.recover_stale_runs(s, lease=LEASE)] == [run.id]
    with pytest.raises(runs.LeaseLost), store.session() as s:  # it wakes up and reports success
        runs.finish_run(s, run_id=run.id, worker="gpu-box:7:aaaa", status=RunStatus.SUCCEEDED)
    with store.session() as s:
        again = runs.get_run(s, run_id=run.id)
        assert again.status is RunStatus.FAILED and "lease" in (again.error or "")


def test_a_renewed_lease_keeps_a_long_run_alive(store: Storage) -> None:
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        runs.claim_next(s, worker="gpu-box:7:aaaa")
        s.execute(update(TrainingRun).values(started_at=datetime.now(UTC) - timedelta(hours=3)))
        assert runs.heartbeat(s, run_id=run.id, worker="gpu-box:7:aaaa")
        assert not runs.heartbeat(s, run_id=run.id, worker="gpu-box:7:bbbb")
    with store.session() as s:
        assert runs.recover_stale_runs(s, lease=LEASE, stale_after=timedelta(hours=6)) == []


@pytest.mark.parametrize("recorded", ["{host}:{pid}", "{host}:{pid}:0ldn0nce"])
def test_a_dead_worker_whose_pid_was_reused_is_recovered(store: Storage, recorded: str) -> None:
    """In a container the restarted worker is pid 1 again on the same host name: the old run is not its."""
    worker = recorded.format(host=socket.gethostname(), pid=os.getpid())
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        runs.claim_next(s, worker=worker)  # its heartbeat is fresh: only the pid reuse gives it away
    with store.session() as s:
        assert [r.id for r in runs.recover_stale_runs(s, lease=LEASE)] == [run.id]
    assert runs.worker_id() != worker and runs.worker_id().startswith(f"{socket.gethostname()}:{os.getpid()}:")


def test_promotion_is_a_compare_and_swap_on_the_serving_version(store: Storage) -> None:
    fields = {"artifact_path": None, "sha256": "a" * 64, "arch": "x", "labels": ["a", "b"], "metrics": {}}
    with store.session() as s:
        v1 = model_versions.create_version(s, activate=True, **fields).id
    with store.session() as s:  # while a run trains against v1, an admin activates v2
        v2 = model_versions.create_version(s, activate=True, expected_active_id=v1, **fields).id
    with pytest.raises(model_versions.ActivationConflict), store.session() as s:
        model_versions.create_version(s, activate=True, expected_active_id=v1, **fields)
    with store.session() as s:
        assert model_versions.get_active(s).id == v2
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 2  # the candidate row rolled back


def test_racing_activations_leave_one_winner(store: Storage) -> None:
    fields = {"artifact_path": None, "sha256": "a" * 64, "arch": "x", "labels": ["a", "b"], "metrics": {}}
    with store.session() as s:
        v1 = model_versions.create_version(s, activate=True, **fields).id

    def promote(_: int) -> bool:
        try:
            with store.session() as s:
                model_versions.create_version(s, activate=True, expected_active_id=v1, **fields)
            return True
        except model_versions.ActivationConflict:
            return False

    assert sum(_race(4, promote)) == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.is_active.is_(True))) == 1


def test_the_holder_renews_its_lease_and_notices_losing_it(store: Storage) -> None:
    from trainer.lease import holding

    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        runs.claim_next(s, worker="box:1:me")
        s.execute(update(TrainingRun).values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=10)))
    with holding(store, run_id=run.id, worker="box:1:me", every=0.05) as lost:
        _wait(lambda: _heartbeat_age(store, run.id) < 5, timeout=10)  # renewed while the run works
        with store.session() as s:
            assert runs.recover_stale_runs(s, lease=LEASE) == []
            runs.fail_run(s, run=runs.get_run(s, run_id=run.id), reason="failed by hand")
        assert lost.wait(10)


def _heartbeat_age(store: Storage, run_id: int) -> float:
    with store.session() as s:
        beat = runs.get_run(s, run_id=run_id).heartbeat_at
    beat = beat if beat.tzinfo else beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds()


def test_a_trainer_that_dies_before_claiming_fails_the_run_it_was_started_for(store: Storage) -> None:
    """Otherwise the dispatcher would start a crashing child every 3 s for ever."""
    with store.session() as s:
        run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
    started = datetime.now(UTC) + timedelta(seconds=1)
    with store.session() as s:  # a run queued after the child started is not its: left alone
        assert runs.fail_process_runs(s, pid=999999, reason="x", queued_before=datetime.now(UTC) - timedelta(hours=1)) == []
        failed = runs.fail_process_runs(s, pid=999999, reason="exited with code 1", queued_before=started)
        assert [r.id for r in failed] == [run.id] and failed[0].status is RunStatus.FAILED


# --- real trainer processes ------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
TINY = {"golden_fraction": 0.3, "train_batch_size": 4, "device": "cpu", "image_size": 96}


def _dataset_store(tmp_path: Path, **overrides: Any) -> Storage:
    from trainer.dataset_import import import_folder

    storage = open_storage(load_settings(data_dir=tmp_path / "var", **{**TINY, **overrides}))
    import_folder(storage, FIXTURES / "bears", progress=False)
    return storage


@pytest.mark.slow
def test_bearbot_train_does_not_wait_for_a_dead_worker(tmp_path: Path) -> None:
    """A worker on another host died holding the run: `bearbot train` fails it and trains, no wait."""
    from trainer import runner

    storage = _dataset_store(tmp_path, run_lease_seconds=30)
    try:
        with storage.session() as s:
            dead, _ = runs.queue_run(s, trigger=Trigger.SCHEDULE)
            runs.claim_next(s, worker="gpu-box:1:d1edd1ed")
            s.execute(update(TrainingRun).values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)))
        result: list[TrainingRun] = []
        thread = threading.Thread(target=lambda: result.append(runner.run_now(storage, poll_seconds=0.2)), daemon=True)
        thread.start()
        thread.join(300)
        assert result, "bearbot train still waiting for a run nobody holds"
        # A fresh run was executed here (whatever the gate said); the dead one did not hold it up.
        assert result[0].id != dead.id and result[0].status in runs.FINISHED
        assert result[0].worker == runs.worker_id()
        with storage.session() as s:
            assert runs.get_run(s, run_id=dead.id).status is RunStatus.FAILED
    finally:
        storage.close()


@pytest.mark.slow
def test_a_killed_trainer_is_failed_at_once_and_the_next_retrain_runs(tmp_path: Path) -> None:
    """kill -9 the bot's trainer child mid-run: the run fails within a dispatch, /retrain works again."""
    from tests.bot_harness import ADMIN, RunningBot

    _dataset_store(tmp_path).close()
    with RunningBot(tmp_path / "var", learning=True, model_poll_seconds=0.5, **TINY) as bot:
        assert bot.reply(bot.send(ADMIN, text="/retrain")).text.startswith("Queued training run #1")
        running = _wait(lambda: _run_if(bot, 1, RunStatus.RUNNING), timeout=240)
        pid = int(running.worker.split(":")[1])
        os.kill(pid, signal.SIGKILL)  # like the kernel's OOM killer: nothing gets recorded
        failed = bot.api.wait_for(
            lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Training run #1"), timeout=30
        )[0]
        assert "failed" in failed.text and "exited with code -9" in failed.text, failed.text
        assert bot.reply(bot.send(ADMIN, text="/retrain")).text.startswith("Queued training run #2")
        bot.api.wait_for(  # the new run was executed to the end (whatever the gate said)
            lambda s: s.chat_id == ADMIN["id"] and (s.text or "").startswith("Training run #2"), timeout=300
        )
        second = bot.db(lambda s: runs.get_run(s, run_id=2))
        assert second.status in runs.FINISHED and "exited with code" not in (second.error or "")


def _run_if(bot: Any, run_id: int, status: RunStatus) -> TrainingRun | None:
    run = bot.db(lambda s: runs.get_run(s, run_id=run_id))
    return run if run is not None and run.status is status else None


def _wait(check: Callable[[], Any], *, timeout: float) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    pytest.fail("timed out")


@pytest.mark.slow
def test_two_worker_processes_on_postgres_execute_the_run_once(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """Two `bearbot worker --once` processes start together against one PostgreSQL server."""
    import subprocess
    import sys

    from storage.db import downgrade, upgrade

    upgrade(pg_url)
    downgrade(pg_url, "base")  # a clean schema on the shared server
    settings = load_settings(data_dir=tmp_path / "var", database_url=pg_url)
    storage = open_storage(settings)
    try:
        with storage.session() as s:
            run, _ = runs.queue_run(s, trigger=Trigger.ADMIN)
        env = {**os.environ, "BEARBOT_DATA_DIR": str(tmp_path / "var"), "BEARBOT_DATABASE_URL": pg_url}
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "bearbot", "worker", "--once"], env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            for _ in range(2)
        ]
        outputs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        executed = sorted(int(o.rsplit("executed ", 1)[1].split()[0]) for o in outputs)
        assert executed == [0, 1], outputs
        with storage.session() as s:
            done = runs.get_run(s, run_id=run.id)
            assert done.status in runs.FINISHED and _count_active(storage) == 0
            assert int(done.worker.split(":")[1]) in {w.pid for w in workers}
            assert s.scalar(select(func.count()).select_from(TrainingRun)) == 1
    finally:
        storage.close()

