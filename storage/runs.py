"""Training runs as rows: queued → running → succeeded / failed / rejected. One run at a time."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.models import RunStatus, TrainingRun, Trigger, utcnow

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED)


def worker_id() -> str:
    """``host:pid`` of this process, recorded on the run it executes."""
    return f"{socket.gethostname()}:{os.getpid()}"


def active_run(session: Session) -> TrainingRun | None:
    """The queued or running run, if any (oldest first)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.status.in_(ACTIVE)).order_by(TrainingRun.id))


def queue_run(
    session: Session, *, trigger: Trigger, requested_by: int | None = None, chat_id: int | None = None
) -> tuple[TrainingRun, bool]:
    """Queue a run, or join the one already queued/running. Returns ``(run, joined)``."""
    existing = active_run(session)
    if existing is not None:
        return existing, True
    run = TrainingRun(trigger=trigger, requested_by=requested_by, requested_chat_id=chat_id)
    session.add(run)
    session.flush()
    return run, False


def claim_next(session: Session, *, worker: str) -> TrainingRun | None:
    """Atomically move the oldest queued run to running for ``worker``; None when nothing waits.

    The conditional UPDATE makes two workers racing for the same row safe: only one matches.
    """
    if session.scalar(select(TrainingRun.id).where(TrainingRun.status == RunStatus.RUNNING)) is not None:
        return None
    candidate = session.scalar(
        select(TrainingRun.id).where(TrainingRun.status == RunStatus.QUEUED).order_by(TrainingRun.id)
    )
    if candidate is None:
        return None
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == candidate, TrainingRun.status == RunStatus.QUEUED)
        .values(status=RunStatus.RUNNING, started_at=utcnow(), worker=worker)
    )
    session.flush()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    run = session.get(TrainingRun, candidate)
    if run is not None:
        session.refresh(run)
    return run


def finish_run(
    session: Session,
    *,
    run_id: int,
    status: RunStatus,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    model_version_id: int | None = None,
    counts: dict[str, int] | None = None,
) -> TrainingRun:
    """Record a run's outcome."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise LookupError(f"no training run {run_id}")
    run.status = status
    run.finished_at = utcnow()
    run.metrics = dict(metrics or {})
    run.error = error
    run.model_version_id = model_version_id
    for key, value in (counts or {}).items():
        setattr(run, f"n_{key}", value)
    session.flush()
    return run


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale_runs(session: Session, *, stale_after: timedelta) -> list[TrainingRun]:
    """Mark runs left ``running`` by a dead process as failed (called at every start).

    On this host a run is dead when its pid is gone; a run on another host is presumed dead
    once it has been running longer than ``stale_after``.
    """
    host = socket.gethostname()
    now = datetime.now(UTC)
    recovered: list[TrainingRun] = []
    for run in session.scalars(select(TrainingRun).where(TrainingRun.status == RunStatus.RUNNING)):
        run_host, _, pid = (run.worker or ":").rpartition(":")
        started = run.started_at or run.created_at
        if started.tzinfo is None:  # SQLite hands back naive UTC
            started = started.replace(tzinfo=UTC)
        if run_host == host and pid.isdigit():
            dead = not _pid_alive(int(pid))
        else:
            dead = now - started > stale_after
        if dead:
            run.status = RunStatus.FAILED
            run.finished_at = utcnow()
            run.error = f"the training process ({run.worker or 'unknown'}) died before finishing"
            recovered.append(run)
    session.flush()
    return recovered


def get_run(session: Session, *, run_id: int) -> TrainingRun | None:
    return session.get(TrainingRun, run_id)


def latest_run(session: Session) -> TrainingRun | None:
    return session.scalar(select(TrainingRun).order_by(TrainingRun.id.desc()))


def unnotified_finished(session: Session) -> list[TrainingRun]:
    """Finished runs whose outcome has not been told to anyone yet."""
    return list(
        session.scalars(
            select(TrainingRun)
            .where(TrainingRun.status.in_(FINISHED), TrainingRun.notified.is_(False))
            .order_by(TrainingRun.id)
        )
    )


def mark_notified(session: Session, *, run_id: int) -> None:
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(notified=True))


def describe_run(run: TrainingRun) -> str:
    """One paragraph on how a run ended, with its figures."""
    m = run.metrics or {}
    cand, cur = m.get("candidate_error"), m.get("current_error")
    figures = ""
    if cand is not None and cur is not None:
        figures = f" Golden-set error: candidate {cand:.1%} vs serving {cur:.1%}"
        cand_loss, cur_loss = m.get("candidate_loss"), m.get("current_loss")
        if cand == cur and cand_loss is not None and cur_loss is not None:
            figures += f" (a tie; log-loss {cand_loss:.3f} vs {cur_loss:.3f} decides)"
        figures += "."
    counts = f" Trained on {run.n_train or 0} images ({run.n_corrections or 0} from corrections)."
    seconds = m.get("seconds")
    took = f" Took {seconds:.0f} s." if isinstance(seconds, int | float) else ""
    if run.status == RunStatus.SUCCEEDED:
        return f"Training run #{run.id} succeeded: model v{run.model_version_id} is now serving.{figures}{counts}{took}"
    if run.status == RunStatus.REJECTED:
        return f"Training run #{run.id} finished but the candidate was not promoted (not better on the golden set).{figures}{counts}{took}"
    return f"Training run #{run.id} failed: {(run.error or 'unknown error').splitlines()[-1][:300]} The current model keeps serving."
