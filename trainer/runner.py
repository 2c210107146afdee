"""Executing queued training runs: claim one, hold its lease, run the pipeline (:mod:`trainer.pipeline`,
the one retrain), record the outcome; the worker loop and ``bearbot train``'s wait.

The database is the coordinator: the run is a ``training_runs`` row that this process claimed,
the outcome is written back to it, and a promoted model becomes the active ``model_versions``
row that serving processes notice and hot-swap. Any exception marks the run failed and leaves
the serving model untouched.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import timedelta
from pathlib import Path

from bearbot.settings import Settings
from storage import runs, snapshot
from storage.models import RunStatus, TrainingRun, Trigger
from storage.store import Storage
from trainer.lease import holding

log = logging.getLogger(__name__)


def execute_run(storage: Storage, *, run_id: int) -> TrainingRun:
    """Execute a run this process has claimed (status ``running``) and record its outcome."""
    settings = storage.settings
    work_dir = settings.runs_dir / f"run-{run_id}"
    started = time.perf_counter()
    try:
        outcome = _train_and_gate(storage, settings, run_id=run_id, work_dir=work_dir)
    except Exception as exc:  # noqa: BLE001 - any failure must be recorded, the bot keeps serving
        log.exception("training run #%s failed", run_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with storage.session() as session:
            return runs.finish_run(
                session, run_id=run_id, worker=runs.worker_id(), status=RunStatus.FAILED,
                error=f"{detail}\n{traceback.format_exc()[-4000:]}",
                metrics={"seconds": round(time.perf_counter() - started, 1)},
            )
    log.info("training run #%s: %s in %.0f s", run_id, outcome.status.value, time.perf_counter() - started)
    return outcome


def _train_and_gate(storage: Storage, settings: Settings, *, run_id: int, work_dir: Path) -> TrainingRun:
    from trainer.pipeline import train_and_gate

    outcome = train_and_gate(storage, settings, run_id=run_id, work_dir=work_dir)
    with storage.session() as session:
        return runs.finish_run(
            session, run_id=run_id, worker=runs.worker_id(),
            status=RunStatus.SUCCEEDED if outcome.promoted else RunStatus.REJECTED,
            metrics=outcome.metrics, counts=outcome.counts, model_version_id=outcome.version_id,
        )


def recover(storage: Storage) -> list[int]:
    """Fail runs whose holder died (pid gone, lease not renewed, or past the hard bound); return their ids."""
    settings = storage.settings
    with storage.session() as session:
        stale = runs.recover_stale_runs(
            session, lease=timedelta(seconds=settings.run_lease_seconds),
            stale_after=timedelta(hours=settings.run_stale_hours),
        )
        for run in stale:
            log.warning("training run #%s failed: %s", run.id, run.error)
        return [r.id for r in stale]


def _execute_held(storage: Storage, *, run_id: int) -> TrainingRun | None:
    """Execute a run this process claimed, renewing its lease meanwhile; None when the lease was lost."""
    from trainer.cleanup import clean_up

    worker = runs.worker_id()
    try:
        with holding(storage, run_id=run_id, worker=worker, every=storage.settings.run_lease_seconds / 4):
            return execute_run(storage, run_id=run_id)
    except runs.LeaseLost as exc:
        log.error("%s", exc)
        return None
    finally:
        try:
            clean_up(storage)
        except Exception:  # noqa: BLE001 - housekeeping must not fail a run
            log.warning("cleaning up old model files failed", exc_info=True)


def run_pending(storage: Storage, *, once: bool, poll_seconds: float = 5.0) -> int:
    """Worker loop: claim queued runs and execute them, one at a time. Returns runs executed.

    Every poll first fails runs whose holder died, so a killed worker never jams the queue.
    """
    done = 0
    while True:
        recover(storage)
        with storage.session() as session:
            run = runs.claim_next(session, worker=runs.worker_id())
        if run is not None:
            _execute_held(storage, run_id=run.id)
            done += 1
            continue
        if once:
            return done
        time.sleep(poll_seconds)


def run_now(storage: Storage, *, trigger: Trigger = Trigger.CLI, poll_seconds: float = 2.0) -> TrainingRun:
    """Queue (or join) a run and see it through here: what ``bearbot train`` without --data does.

    When another process holds the active run, wait for it and return its outcome. The wait is
    bounded: every poll fails the run if its holder stopped renewing the lease, a run still
    queued is claimed here, and no run outlives ``run_stale_hours``.
    """
    settings = storage.settings
    recover(storage)
    with storage.session() as session:
        reason = snapshot.dataset_ready(session)
        if reason is not None:
            raise RuntimeError(reason)
        run, _ = runs.queue_run(session, trigger=trigger)
        run_id = run.id
    deadline = time.monotonic() + settings.run_stale_hours * 3600 + 2 * settings.run_lease_seconds
    while True:
        with storage.session() as session:
            claimed = runs.claim_next(session, worker=runs.worker_id())
        if claimed is not None:  # ours: the database holds one queued-or-running run at most
            outcome = _execute_held(storage, run_id=claimed.id)
            if outcome is not None and claimed.id == run_id:
                return outcome
        with storage.session() as session:
            current = runs.get_run(session, run_id=run_id)
            if current is not None and current.status in runs.FINISHED:
                return current
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for training run #{run_id} after {settings.run_stale_hours:g} h")
        time.sleep(poll_seconds)
        recover(storage)

