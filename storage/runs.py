"""Training runs as rows: queued → running → succeeded / failed / rejected. One run at a time.

A running run is held by one worker under a lease: the worker renews ``heartbeat_at`` while it
works (:func:`heartbeat`), only the holder may record the outcome (:func:`finish_run`), and a run
whose holder died or stopped renewing is failed by whoever looks next (:func:`recover_stale_runs`).
The database itself refuses a second queued-or-running run (a partial unique index).
"""

from __future__ import annotations

from pathlib import Path

import functools
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.db import add_unique
from storage.models import RunStatus, TrainingRun, Trigger, utcnow

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED)


class LeaseLost(RuntimeError):
    """This worker no longer holds the run (its lease ran out and the run was failed meanwhile)."""


@functools.cache
def _process_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:12]}"


def worker_id() -> str:
    """``host:pid:nonce`` of this process, recorded on the run it holds.

    The random nonce tells a restarted process from the dead one whose pid it reused (in a
    container every worker is pid 1 on the same host name).
    """
    return _process_id(os.getpid())


def active_run(session: Session) -> TrainingRun | None:
    """The queued or running run, if any (oldest first)."""
    return session.scalar(select(TrainingRun).where(TrainingRun.status.in_(ACTIVE)).order_by(TrainingRun.id))


def queue_run(
    session: Session, *, trigger: Trigger, requested_by: int | None = None, chat_id: int | None = None
) -> tuple[TrainingRun, bool]:
    """Queue a run, or join the one already queued/running. Returns ``(run, joined)``.

    Two requests racing both see no active run; the unique index lets one insert win and the
    other joins it.
    """
    existing = active_run(session)
    if existing is not None:
        return existing, True
    run = TrainingRun(trigger=trigger, requested_by=requested_by, requested_chat_id=chat_id)
    row, created = add_unique(session, run, existing=lambda: active_run(session))
    return row, not created


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
    now = utcnow()
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == candidate, TrainingRun.status == RunStatus.QUEUED)
        .values(status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker)
    )
    session.flush()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    run = session.get(TrainingRun, candidate)
    if run is not None:
        session.refresh(run)
    return run


def heartbeat(session: Session, *, run_id: int, worker: str) -> bool:
    """Renew ``worker``'s lease on its running run; False when it no longer holds it."""
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.status == RunStatus.RUNNING, TrainingRun.worker == worker)
        .values(heartbeat_at=utcnow())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def finish_run(
    session: Session,
    *,
    run_id: int,
    worker: str,
    status: RunStatus,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
    model_version_id: int | None = None,
    counts: dict[str, int] | None = None,
) -> TrainingRun:
    """Record the outcome of the run ``worker`` holds; raises :class:`LeaseLost` when it holds it no more.

    The check and the write are one conditional UPDATE, so a run already failed by recovery is
    never turned into a success (and, raised inside the promoting transaction, nothing is promoted).
    """
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise LookupError(f"no training run {run_id}")
    values: dict[str, Any] = {
        "status": status, "finished_at": utcnow(), "metrics": dict(metrics or {}), "error": error,
        "model_version_id": model_version_id,
    }
    values.update({f"n_{key}": value for key, value in (counts or {}).items()})
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.status == RunStatus.RUNNING, TrainingRun.worker == worker)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(run)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(
            f"training run #{run_id} is {run.status.value} (held by {run.worker or 'nobody'}), "
            f"not held by {worker}; its outcome {status.value} is not recorded"
        )
    return run


def fail_run(session: Session, *, run: TrainingRun, reason: str) -> bool:
    """Fail an unfinished run whatever holds it (recovery); False when it finished meanwhile."""
    holder = TrainingRun.worker.is_(None) if run.worker is None else TrainingRun.worker == run.worker
    result = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run.id, TrainingRun.status == run.status, holder)
        .values(status=RunStatus.FAILED, finished_at=utcnow(), error=reason)
        .execution_options(synchronize_session=False)
    )
    session.refresh(run)
    return result.rowcount == 1  # type: ignore[attr-defined]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _why_dead(run: TrainingRun, *, lease: timedelta, stale_after: timedelta | None, now: datetime) -> str | None:
    """Why ``run``'s holder is presumed dead, or None while it may still be working."""
    holder = run.worker or "unknown"
    host, pid, nonce = ((run.worker or "").split(":") + ["", "", ""])[:3]
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid() and run.worker != worker_id():
            return f"the training process ({holder}) is gone; this process reuses its pid"
        if not _pid_alive(int(pid)):
            return f"the training process ({holder}) died before finishing"
    last = _aware(run.heartbeat_at or run.started_at or run.created_at)
    if now - last > lease:
        return f"the training process ({holder}) stopped renewing its lease ({(now - last).total_seconds():.0f} s)"
    started = _aware(run.started_at or run.created_at)
    if stale_after is not None and now - started > stale_after:
        return f"the training run ({holder}) ran longer than {stale_after.total_seconds() / 3600:g} h"
    return None


def recover_stale_runs(
    session: Session, *, lease: timedelta, stale_after: timedelta | None = None
) -> list[TrainingRun]:
    """Fail runs whose holder is dead: its pid is gone (this host), its lease ran out, or (as a
    last bound) it has run longer than ``stale_after``. Called on every dispatch and worker poll."""
    now = datetime.now(UTC)
    recovered: list[TrainingRun] = []
    for run in list(session.scalars(select(TrainingRun).where(TrainingRun.status == RunStatus.RUNNING))):
        reason = _why_dead(run, lease=lease, stale_after=stale_after, now=now)
        if reason is not None and fail_run(session, run=run, reason=reason):
            recovered.append(run)
    session.flush()
    return recovered


def fail_process_runs(
    session: Session, *, pid: int, reason: str, queued_before: datetime | None
) -> list[TrainingRun]:
    """Fail the runs a child process of ours (``pid``, this host) held when it exited.

    With ``queued_before`` (the child's start) a run queued before then is failed as well when the
    child held none: it was started for that run and died before claiming it, and another child
    would likely crash the same way.
    """
    prefix = f"{socket.gethostname()}:{pid}:"
    failed = [
        run
        for run in list(session.scalars(select(TrainingRun).where(TrainingRun.status == RunStatus.RUNNING)))
        if (run.worker or "").startswith(prefix) and fail_run(session, run=run, reason=reason)
    ]
    if queued_before is not None and not failed:
        queued = session.scalar(select(TrainingRun).where(TrainingRun.status == RunStatus.QUEUED).order_by(TrainingRun.id))
        if queued is not None and _aware(queued.created_at) <= queued_before and fail_run(session, run=queued, reason=reason):
            failed.append(queued)
    session.flush()
    return failed


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


def claim_notification(session: Session, *, run_id: int) -> bool:
    """Mark a run as told; True only for the one session (of any replica) that flipped the flag."""
    won = session.execute(
        update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.notified.is_(False)).values(notified=True)
    )
    return won.rowcount == 1  # type: ignore[attr-defined]


def describe_run(run: TrainingRun) -> str:
    """How a run ended, for admins: the gate's paired evidence in words, the photos it would break."""
    m = run.metrics or {}
    if run.status == RunStatus.FAILED:
        return f"Training run #{run.id} failed: {(run.error or 'unknown error').splitlines()[-1][:300]} The current model keeps serving."
    gate = m.get("gate") or {}
    fixes, breaks = gate.get("fixes", 0), gate.get("breaks", 0)
    n = gate.get("n") or {}
    judged = (
        f" Judged photo by photo on {n.get('golden', 0)} golden photos, {n.get('reviewed', 0)} photos users"
        f" reviewed (each answered by a candidate trained without it) and {n.get('presumed', 0)} answers nobody corrected:"
        f" it fixes {fixes} photo{'' if fixes == 1 else 's'} serving gets wrong and breaks {breaks} it got right."
    )
    broken = gate.get("broken") or []
    if broken:
        names = "; ".join(
            f"{Path(b['path']).name[:12]} ({b['truth']}, would say {b['candidate']})" for b in broken[:5]
        )
        judged += f" Broken: {names}{' …' if len(broken) > 5 else ''}."
    counts = f" Trained on {run.n_train or 0} images ({run.n_corrections or 0} from corrections)."
    seconds = m.get("seconds")
    took = f" Took {seconds:.0f} s." if isinstance(seconds, int | float) else ""
    if run.status == RunStatus.SUCCEEDED:
        head = f"Training run #{run.id} succeeded: model v{run.model_version_id} is now serving ({gate.get('reason', 'passed the gate')})."
    else:
        head = f"Training run #{run.id} finished; the serving model stays, because {gate.get('reason', 'the candidate was not better')}."
    return f"{head}{judged}{counts}{took}"
