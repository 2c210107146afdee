"""The bot's side of the learning loop: request runs, start the trainer process, report outcomes.

Training never runs in the bot's process. A request becomes a ``training_runs`` row; a
dispatch job starts ``bearbot worker --once`` as a child process when a run is queued (in
``local`` trainer mode), and a watch job tells the admin who asked — or every admin, for
scheduled runs — how it ended. Several bot replicas sharing a database notify only once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bearbot.settings import Settings, settings_to_env
from bot.notices import announce_learned
from bot.plots import run_plots, send_plots
from bot.services import BotServices, get_services
from storage import runs, snapshot, trust
from storage.models import RunStatus, TrainingRun, Trigger
from storage.store import Storage
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


def _queue(storage: Storage, trigger: Trigger, user_id: int | None, chat_id: int | None) -> RetrainRequest:
    with storage.session() as session:
        reason = snapshot.dataset_ready(session)
        if reason is not None:
            return RetrainRequest(run_id=None, joined=False, message=reason)
        run, joined = runs.queue_run(session, trigger=trigger, requested_by=user_id, chat_id=chat_id)
        if joined:
            return RetrainRequest(
                run_id=run.id, joined=True,
                message=f"Training run #{run.id} is already {run.status.value}; you will hear when it ends.",
            )
        waiting = len(snapshot.corrections_waiting(session))
        return RetrainRequest(
            run_id=run.id, joined=False,
            message=f"Queued training run #{run.id} ({waiting} new correction{'' if waiting == 1 else 's'} to learn). "
            "I will report the outcome here.",
        )


async def request_retrain(
    services: BotServices, *, trigger: Trigger, user_id: int | None, chat_id: int | None
) -> RetrainRequest:
    """Queue a training run (or join the active one); never blocks the event loop."""
    return await asyncio.to_thread(_queue, services.storage, trigger, user_id, chat_id)


def _claim_notifications(storage: Storage) -> list[tuple[TrainingRun, str]]:
    """Finished, un-notified runs this process won the right to announce (atomic per run)."""
    claimed: list[tuple[TrainingRun, str]] = []
    with storage.session() as session:
        for run in runs.unnotified_finished(session):
            if runs.claim_notification(session, run_id=run.id):
                claimed.append((run, runs.describe_run(run)))
    return claimed


# Settings the trainer has no use for (the bot's secrets, and webhook mode, which needs one); set
# empty so neither the environment nor an env file supplies them.
TRAINER_WITHHELD = ("TELEGRAM_BOT_TOKEN", "BEARBOT_WEBHOOK_SECRET", "BEARBOT_WEBHOOK_URL")


def trainer_env(settings: Settings) -> dict[str, str]:
    """The trainer child's environment: the bot's settings without the bot's secrets."""
    env = {**os.environ, **settings_to_env(settings)}
    env.update(dict.fromkeys(TRAINER_WITHHELD, ""))  # empty beats an env file's value
    return env


def _start_trainer(settings: Settings, state: LearningState) -> None:
    """Start ``bearbot worker --once`` as a separate process with the bot's settings (not its token)."""
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(settings.runs_dir / "trainer.log", "ab")  # noqa: SIM115 - lives as long as the child
    env = trainer_env(settings)
    state.process = subprocess.Popen(
        [sys.executable, "-m", "bearbot", "worker", "--once"],
        stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True,  # a signal to the bot does not kill a run halfway, and vice versa
    )
    state.started_at = datetime.now(UTC)
    state.log_files.append(log_file)
    log.info("started trainer process pid=%s", state.process.pid)


def _needs_trainer(storage: Storage) -> bool:
    with storage.session() as session:
        active = runs.active_run(session)
        return active is not None and active.status == RunStatus.QUEUED


async def _dispatch(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start a trainer for queued runs (local mode) and announce finished runs."""
    services = get_services(context)
    state: LearningState = context.application.bot_data["learning"]
    settings = services.settings
    if state.process is not None and state.process.poll() is not None:
        pid, code, started = state.process.pid, state.process.returncode, state.started_at
        log.info("trainer process exited with %s", code)
        state.process = None
        for fh in state.log_files:
            fh.close()
        state.log_files.clear()
        await asyncio.to_thread(_reap, services.storage, pid, code, started)
    await asyncio.to_thread(_recover, services)  # a run whose holder stopped renewing its lease
    if settings.trainer_mode == "local" and state.process is None:
        if await asyncio.to_thread(_needs_trainer, services.storage):
            _start_trainer(settings, state)
    for run, text in await asyncio.to_thread(_claim_notifications, services.storage):
        chats = {run.requested_chat_id} if run.requested_chat_id else set(settings.admin_ids)
        for chat_id in chats:
            try:
                await context.bot.send_message(chat_id=chat_id, text=text)
            except TelegramError as exc:
                log.warning("could not tell chat %s about run #%s: %s", chat_id, run.id, exc)
                continue
            await send_plots(context.bot, chat_id, run_plots(run.metrics))  # the run's pictures follow its text
    await announce_learned(context.bot, services.storage)  # "your correction is now part of vN"


async def _scheduled(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The periodic retrain (interval or cron)."""
    services = get_services(context)
    result = await request_retrain(services, trigger=Trigger.SCHEDULE, user_id=None, chat_id=None)
    log.info("scheduled retrain: %s", result.message)


async def _corrections_check(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Queue a run once enough accepted corrections wait to be learned."""
    services = get_services(context)

    rule = TrustRule.from_settings(services.settings)  # a flood of new accounts queues nothing
    waiting = await services.storage.in_thread(trust.trusted_waiting, rule=rule)
    if waiting >= services.settings.retrain_min_corrections:
        result = await request_retrain(services, trigger=Trigger.CORRECTIONS, user_id=None, chat_id=None)
        log.info("corrections trigger: %s", result.message)


def _reap(storage: Storage, pid: int, code: int, started: datetime | None) -> None:
    """Fail what our trainer child left unfinished when it exited (killed, out of memory, crashed)."""
    reason = f"the trainer process (pid {pid}) exited with code {code} before recording the outcome"
    with storage.session() as session:
        queued_before = started if code != 0 else None
        for run in runs.fail_process_runs(session, pid=pid, reason=reason, queued_before=queued_before):
            log.warning("training run #%s failed: %s", run.id, reason)


def _recover(services: BotServices) -> None:
    settings = services.settings
    with services.storage.session() as session:
        for run in runs.recover_stale_runs(
            session, lease=timedelta(seconds=settings.run_lease_seconds),
            stale_after=timedelta(hours=settings.run_stale_hours),
        ):
            log.warning("training run #%s failed: %s", run.id, run.error)


def install_learning(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Recover dead runs and add the learning jobs. Needs ``bot_data['services']`` and a JobQueue."""
    services = get_services(application)
    settings = services.settings
    application.bot_data["learning"] = LearningState()
    _recover(services)
    jobs = application.job_queue
    if jobs is None:
        raise RuntimeError("python-telegram-bot was installed without the job-queue extra")
    jobs.run_repeating(_dispatch, interval=DISPATCH_SECONDS, first=1.0, name="learning-dispatch")
    jobs.run_repeating(_corrections_check, interval=CORRECTIONS_CHECK_SECONDS, first=10.0, name="corrections-check")
    if settings.retrain_cron:
        from apscheduler.triggers.cron import CronTrigger

        jobs.run_custom(
            _scheduled, job_kwargs={"trigger": CronTrigger.from_crontab(settings.retrain_cron)}, name="retrain-cron"
        )
    elif settings.retrain_interval_hours > 0:
        seconds = settings.retrain_interval_hours * 3600
        jobs.run_repeating(_scheduled, interval=seconds, first=seconds, name="retrain-interval")


def stop_trainer(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Leave a running trainer alone (it finishes and records its run) but close our log handles."""
    state: LearningState | None = application.bot_data.get("learning")
    if state is not None:
        for fh in state.log_files:
            fh.close()
        state.log_files.clear()
