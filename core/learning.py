"""The bot's side of the learning loop: request runs, start the trainer process, report outcomes.

Training never runs in the bot's process. A request becomes a ``training_runs`` row; a
dispatch tick starts ``bearbot worker --once`` as a child process when a run is queued (in
``local`` trainer mode), and tells the admin who asked — or every admin, for scheduled runs —
how it ended, through the transports' outboxes. Several bot replicas sharing a database notify
only once (``storage.runs.claim_notification``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bearbot.settings import Settings, settings_to_env
from core.notices import announce_learned
from core.plots import plot_replies, run_plots
from core.replies import DeliveryError, Outbox, Reply
from core.services import Services
from storage import runs, snapshot, trust
from storage.models import RunStatus, TrainingRun, Trigger
from storage.trust import TrustRule

log = logging.getLogger(__name__)

DISPATCH_SECONDS = 3.0
CORRECTIONS_CHECK_SECONDS = 60.0


@dataclass(frozen=True)
class RetrainRequest:
    """What happened to a retrain request; ``message`` is what to tell the person who asked."""

    run_id: int | None
    joined: bool
    message: str


@dataclass
class LearningState:
    """The trainer child process this bot started, if any."""

    process: subprocess.Popen[bytes] | None = None
    started_at: datetime | None = None
    log_files: list[Any] = field(default_factory=list)

    def close_logs(self) -> None:
        """Close our handles on the trainer's log (a running trainer keeps its own)."""
        for fh in self.log_files:
            fh.close()
        self.log_files.clear()


def _queue(
    session: Session, *, trigger: Trigger, user_id: int | None, transport: str | None, chat_id: int | None
) -> RetrainRequest:
    reason = snapshot.dataset_ready(session)
    if reason is not None:
        return RetrainRequest(run_id=None, joined=False, message=reason)
    run, joined = runs.queue_run(session, trigger=trigger, requested_by=user_id, chat_id=chat_id)
    if joined:
        return RetrainRequest(
            run_id=run.id, joined=True,
            message=f"Training run #{run.id} is already {run.status.value}; you will hear when it ends.",
        )
    run.requested_transport = transport if chat_id is not None else None
    waiting = len(snapshot.corrections_waiting(session))
    return RetrainRequest(
        run_id=run.id, joined=False,
        message=f"Queued training run #{run.id} ({waiting} new correction{'' if waiting == 1 else 's'} to learn). "
        "I will report the outcome here.",
    )


async def request_retrain(
    services: Services, *, trigger: Trigger, user_id: int | None = None, transport: str | None = None,
    chat_id: int | None = None,
) -> RetrainRequest:
    """Queue a training run (or join the active one); never blocks the event loop."""
    return await services.db(_queue, trigger=trigger, user_id=user_id, transport=transport, chat_id=chat_id)


def _asked_here(run: TrainingRun, transports: Collection[str]) -> bool:
    """Whether this process can tell whoever asked for ``run`` (a run nobody asked for: its admins)."""
    return run.requested_chat_id is None or (run.requested_transport or "telegram") in transports


def _claim_notifications(session: Session, *, transports: Collection[str]) -> list[tuple[TrainingRun, str]]:
    """Finished, un-notified runs this process won the right to announce (atomic per run); a run asked
    for on a transport this process does not serve is left for the process that does."""
    return [
        (run, runs.describe_run(run))
        for run in runs.unnotified_finished(session)
        if _asked_here(run, transports) and runs.claim_notification(session, run_id=run.id)
    ]


# Settings the trainer has no use for (the bot's secrets, and webhook mode, which needs one); set
# empty so neither the environment nor an env file supplies them.
TRAINER_WITHHELD = ("TELEGRAM_BOT_TOKEN", "DISCORD_BOT_TOKEN", "BEARBOT_WEBHOOK_SECRET", "BEARBOT_WEBHOOK_URL")


def trainer_env(settings: Settings) -> dict[str, str]:
    """The trainer child's environment: the bot's settings without the bot's secrets."""
    env = {**os.environ, **settings_to_env(settings)}
    env.update(dict.fromkeys(TRAINER_WITHHELD, ""))  # empty beats an env file's value
    return env


def start_trainer(settings: Settings, state: LearningState) -> None:
    """Start ``bearbot worker --once`` as a separate process with the bot's settings (not its token)."""
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(settings.runs_dir / "trainer.log", "ab")  # noqa: SIM115 - lives as long as the child
    state.process = subprocess.Popen(
        [sys.executable, "-m", "bearbot", "worker", "--once"],
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=trainer_env(settings),
        start_new_session=True,  # a signal to the bot does not kill a run halfway, and vice versa
    )
    state.started_at = datetime.now(UTC)
    state.log_files.append(log_file)
    log.info("started trainer process pid=%s", state.process.pid)


def _needs_trainer(session: Session) -> bool:
    active = runs.active_run(session)
    return active is not None and active.status == RunStatus.QUEUED


def _reap(session: Session, *, pid: int, code: int, started: datetime | None) -> None:
    """Fail what our trainer child left unfinished when it exited (killed, out of memory, crashed)."""
    reason = f"the trainer process (pid {pid}) exited with code {code} before recording the outcome"
    queued_before = started if code != 0 else None
    for run in runs.fail_process_runs(session, pid=pid, reason=reason, queued_before=queued_before):
        log.warning("training run #%s failed: %s", run.id, reason)


def recover(session: Session, *, settings: Settings) -> None:
    """Fail runs whose holder stopped renewing its lease."""
    for run in runs.recover_stale_runs(
        session, lease=timedelta(seconds=settings.run_lease_seconds), stale_after=timedelta(hours=settings.run_stale_hours),
    ):
        log.warning("training run #%s failed: %s", run.id, run.error)


async def _report_run(run: TrainingRun, text: str, outboxes: Mapping[str, Outbox]) -> None:
    """The outcome, then the run's pictures: to the chat that asked, else to every transport's admins."""
    replies = [Reply(text), *await plot_replies(run_plots(run.metrics))]
    if run.requested_chat_id is not None:
        transport = run.requested_transport or "telegram"  # before other transports, chats were Telegram's
        targets = [(transport, outboxes[transport].to_chat, run.requested_chat_id)]
    else:
        targets = [(name, box.to_admins, None) for name, box in outboxes.items()]
    for transport, send, chat_id in targets:
        for reply in replies:
            try:
                await (send(chat_id, reply) if chat_id is not None else send(reply))  # type: ignore[call-arg]
            except DeliveryError as exc:
                log.warning("could not tell %s %s about run #%s: %s", transport, chat_id or "admins", run.id, exc)
                break  # the pictures make no sense without the text


async def dispatch(services: Services, state: LearningState, outboxes: Mapping[str, Outbox]) -> None:
    """Start a trainer for queued runs (local mode) and announce finished runs and learned corrections."""
    settings = services.settings
    if state.process is not None and state.process.poll() is not None:
        pid, code, started = state.process.pid, state.process.returncode, state.started_at
        log.info("trainer process exited with %s", code)
        state.process = None
        state.close_logs()
        await services.db(_reap, pid=pid, code=code, started=started)
    await services.db(recover, settings=settings)  # a run whose holder stopped renewing its lease
    if settings.trainer_mode == "local" and state.process is None and await services.db(_needs_trainer):
        start_trainer(settings, state)
    for run, text in await services.db(_claim_notifications, transports=frozenset(outboxes)):
        await _report_run(run, text, outboxes)
    await announce_learned(services.storage, outboxes)  # "your correction is now part of vN"


async def scheduled(services: Services) -> None:
    """The periodic retrain (interval or cron)."""
    result = await request_retrain(services, trigger=Trigger.SCHEDULE)
    log.info("scheduled retrain: %s", result.message)


async def corrections_check(services: Services) -> None:
    """Queue a run once enough trusted, accepted corrections wait to be learned."""
    rule = TrustRule.from_settings(services.settings)  # a flood of new accounts queues nothing
    waiting = await services.db(trust.trusted_waiting, rule=rule)
    if waiting >= services.settings.retrain_min_corrections:
        result = await request_retrain(services, trigger=Trigger.CORRECTIONS)
        log.info("corrections trigger: %s", result.message)
