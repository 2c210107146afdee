"""One training run, exactly as every trigger runs it: snapshot → train → evaluate → gate → publish.

The database is the coordinator: the run is a ``training_runs`` row that this process claimed,
the outcome is written back to it, and a promoted model becomes the active ``model_versions``
row that serving processes notice and hot-swap. Any exception marks the run failed and leaves
the serving model untouched.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bearbot.settings import Settings
from storage import dataset, model_versions, runs, snapshot
from storage.models import Image, RunStatus, Split, TrainingRun, Trigger
from storage.store import Storage
from trainer.lease import holding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The dataset as one run sees it (after merging accepted corrections)."""

    train: list[dataset.DatasetEntry]
    valid: list[dataset.DatasetEntry]
    golden: list[dataset.DatasetEntry]
    labels: tuple[str, ...]
    merged_corrections: int


def take_snapshot(storage: Storage) -> Snapshot:
    """Merge accepted corrections into the dataset, then list every split."""
    with storage.session() as session:
        index = dataset.PhashIndex.load(session)
        learned: set[int] = set()  # dataset items a correction changed or added
        for correction in snapshot.corrections_waiting(session):
            image = session.get_one(Image, correction.image_id)
            result = dataset.add_correction_item(
                session, image=image, label=correction.label, correction_id=correction.id, index=index
            )
            snapshot.mark_merged(session, correction=correction, outcome=str(result.outcome))
            if result.outcome in (dataset.Outcome.ADDED, dataset.Outcome.RELABELED, dataset.Outcome.MERGED):
                learned.add(result.item.id)
        labels = dataset.dataset_labels(session)
        items = dataset.list_items(session, images=storage.images)
    by_split = {split: [i for i in items if i.split is split] for split in Split}
    return Snapshot(
        train=by_split[Split.TRAIN],
        valid=by_split[Split.VALID],
        golden=by_split[Split.GOLDEN],
        labels=labels,
        merged_corrections=len(learned),
    )


def load_serving(storage: Storage, settings: Settings):  # noqa: ANN201 - TorchClassifier, lazily imported
    """The model serving now (the candidate's opponent at the gate), as the bot loads it."""
    from bearbot.backbone import builtin_sha256
    from bearbot.inference import load_for_settings

    with storage.session() as session:
        active = model_versions.ensure_active(
            session, arch=settings.arch, labels=list(settings.labels),
            builtin_sha256=lambda: builtin_sha256(settings.arch),
        )
        if active is None:
            raise RuntimeError("no model version is active; activate one with `bearbot models activate ID`")
        return load_for_settings(active, settings)


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


LOSS_NOISE = 1e-4  # golden log-loss differences below this are rounding, not a better model


def should_promote(candidate: dict[str, Any], current: dict[str, Any], *, tolerance: float) -> bool:
    """The gate, on golden-split metrics: fewer errors wins; a tie (within ``tolerance``) is
    decided by mean log-loss, so a candidate that is merely *as right but less sure* never replaces
    the serving model. The golden set is small and the serving model often makes no error on it,
    so error rate alone would promote every tie.
    """
    cand_err, cur_err = candidate["error_rate"], current["error_rate"]
    if cand_err < cur_err:
        return True
    if cand_err > cur_err + tolerance:
        return False
    cand_loss, cur_loss = candidate.get("mean_loss"), current.get("mean_loss")
    # Lower by more than float noise: a retrain on an unchanged dataset refits the same head (its
    # loss differs from the serving copy's only by eager-vs-traced rounding, ~1e-6), and the same
    # model again is no reason for a new version.
    return cand_loss is not None and cur_loss is not None and cand_loss < cur_loss - LOSS_NOISE


def _train_and_gate(storage: Storage, settings: Settings, *, run_id: int, work_dir: Path) -> TrainingRun:
    from bearbot.artifact import publish
    from trainer.evaluate import evaluate_classifier
    from trainer.train import train_candidate

    started = time.perf_counter()
    snap = take_snapshot(storage)
    if not snap.golden or not snap.train:
        raise RuntimeError("the dataset has no golden or no training images; build or import one first")
    serving = load_serving(storage, settings)
    result = train_candidate(
        train_items=snap.train, valid_items=snap.valid, labels=snap.labels,
        settings=settings, out_dir=work_dir,
    )
    candidate_metrics = evaluate_classifier(result.classifier, snap.golden, out_dir=work_dir / "candidate")
    current_metrics = evaluate_classifier(serving, snap.golden, out_dir=None)
    cand_err, cur_err = candidate_metrics["error_rate"], current_metrics["error_rate"]
    promote = should_promote(candidate_metrics, current_metrics, tolerance=settings.promote_tolerance)
    counts = {
        "train": len(snap.train), "valid": len(snap.valid), "golden": len(snap.golden),
        "corrections": sum(1 for i in snap.train if i.source == "correction"),
    }
    metrics = {
        "candidate_error": cand_err, "current_error": cur_err, "current_version": serving.version_id,
        "candidate_loss": candidate_metrics.get("mean_loss"), "current_loss": current_metrics.get("mean_loss"),
        "candidate": candidate_metrics, "current": current_metrics, "train": result.metrics,
        "merged_corrections": snap.merged_corrections, "seconds": round(time.perf_counter() - started, 1),
        "promoted": promote,
    }
    with storage.session() as session:
        if not promote:
            shutil.rmtree(work_dir / "export", ignore_errors=True)
            return runs.finish_run(
                session, run_id=run_id, worker=runs.worker_id(), status=RunStatus.REJECTED, metrics=metrics,
                counts=counts,
            )
        path, sha = publish(result.artifact_path, settings.models_dir)
        version = model_versions.create_version(
            session, artifact_path=path.name, sha256=sha, arch=result.arch, labels=list(snap.labels),
            metrics={"golden_error": cand_err, **candidate_metrics, "run_id": run_id}, activate=True,
        )
        return runs.finish_run(
            session, run_id=run_id, worker=runs.worker_id(), status=RunStatus.SUCCEEDED, metrics=metrics,
            model_version_id=version.id, counts=counts,
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


def run_from_cli(settings: Settings) -> int:
    """``bearbot train`` with no arguments: one run on the database's dataset, gate included.

    Prints the outcome; returns the exit code (0 succeeded or rejected by the gate, 1 failed).
    """
    from storage.store import open_storage

    storage = open_storage(settings)
    try:
        run = run_now(storage)
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    finally:
        storage.close()
    print(runs.describe_run(run))
    return 1 if run.status is RunStatus.FAILED else 0
