"""The conversation: every transport's events in, replies out, and the jobs of a running bot.

One :class:`Conversation` per process, shared by every transport in it. An adapter turns its
updates into :mod:`core.events`, calls :meth:`Conversation.handle` with a :class:`Replier` for
that update, and registers one :class:`Outbox` for what the bot says unasked (run outcomes,
learned-notices, a model that failed to load).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core import admin, corrections, learning, notices
from core.events import (
    ButtonEvent,
    CommandEvent,
    Event,
    ImageEvent,
    Sender,
)
from core.identity import limit_key
from core.photos import on_image
from core.replies import DeliveryError, Outbox, Replier, Reply
from core.services import Services
from core.texts import (
    FEEDBACK_PREFIX,
    NOT_AN_IMAGE,
    OOPS,
    REVIEW_PREFIX,
    TEXT_HINT,
    UNKNOWN_COMMAND,
    help_text,
)

log = logging.getLogger(__name__)

Handler = Callable[[Services, CommandEvent, Replier], Awaitable[None]]
# How long stop() lets jobs in flight finish (a database round trip, a message to admins) before it
# cancels them; the trainer is a child process and is not waited for. Well inside the 10 s that
# `docker compose stop` waits before it kills the container, so the rest of the shutdown fits too.
JOB_GRACE_SECONDS = 5.0


async def _help(services: Services, event: CommandEvent, replier: Replier) -> None:
    """What the bot does; admins also see their commands. Never touches threads or the DB."""
    await replier.send(Reply(help_text(services.serving.labels, is_admin=event.sender.is_admin, transport=event.sender.transport)))


async def _labels(services: Services, event: CommandEvent, replier: Replier) -> None:
    await replier.send(Reply(f"I know these labels: {', '.join(services.serving.labels)}."))


PUBLIC: dict[str, Handler] = {
    "start": _help, "help": _help, "labels": _labels, "correct": corrections.correct_command,
    "notify": notices.notify_command, "quiet": notices.notify_command,
}
COMMANDS = frozenset(PUBLIC) | frozenset(admin.COMMANDS)  # what adapters route here (menus, slash commands)


class Conversation:
    """What the bot decides, for every transport; :meth:`start` and :meth:`stop` bracket its life."""

    def __init__(self, services: Services, *, learn: bool = True) -> None:
        self.services = services
        self.outboxes: dict[str, Outbox] = {}
        # The trainer child this process started (None: this process runs no learning loop).
        self.state = learning.LearningState() if learn else None
        self._scheduler: AsyncIOScheduler | None = None
        self._jobs: set[asyncio.Task[None]] = set()  # scheduled jobs running now

    def add_outbox(self, outbox: Outbox) -> None:
        """Where this process sends unasked messages on ``outbox.transport``."""
        self.outboxes[outbox.transport] = outbox

    async def handle(self, event: Event, replier: Replier) -> None:
        """Answer one event; an error is logged and the user told something short."""
        try:
            await self._dispatch(event, replier)
        except Exception:
            log.exception("error while handling a %s event from %s", type(event).__name__, event.sender.transport)
            try:
                await replier.send(Reply(OOPS))
            except Exception as exc:  # noqa: BLE001 - the transport is down too: nothing left to tell
                log.debug("could not say sorry: %s", exc)

    async def _dispatch(self, event: Event, replier: Replier) -> None:
        services = self.services
        if isinstance(event, ImageEvent):
            await on_image(services, event, replier)
        elif isinstance(event, CommandEvent):
            await self._command(event, replier)
        elif isinstance(event, ButtonEvent):
            await self._button(event, replier)
        elif event.kind == "unusable":
            log.info("non-image message %s in %s chat %s", event.place.message_id, event.sender.transport, event.place.chat_id)
            await self._chatter(event.sender, replier, NOT_AN_IMAGE)
        elif event.place.private:  # plain text: a hint, in one-to-one chats only
            await self._chatter(event.sender, replier, TEXT_HINT)

    async def _command(self, event: CommandEvent, replier: Replier) -> None:
        name = event.name.lower()
        if name in PUBLIC:
            await PUBLIC[name](self.services, event, replier)
        elif name in admin.COMMANDS:
            await self._admin(name, admin.COMMANDS[name], event, replier)
        elif event.place.private:
            await self._chatter(event.sender, replier, UNKNOWN_COMMAND)

    async def _button(self, event: ButtonEvent, replier: Replier) -> None:
        if event.button_id.startswith(f"{FEEDBACK_PREFIX}:"):
            await corrections.feedback_button(self.services, event, replier)
        elif event.button_id.startswith(f"{REVIEW_PREFIX}:"):
            await self._admin("review_button", admin.review_button, event, replier)
        else:
            await replier.toast("That button is out of date.", alert=True)

    async def _admin(self, name: str, handler: admin.AdminHandler, event: admin.AdminEvent, replier: Replier) -> None:
        if event.sender.is_admin:
            await handler(self.services, event, replier)
        else:
            await admin.refuse(name, event, replier)

    async def _chatter(self, sender: Sender, replier: Replier, text: str) -> None:
        """Replies to chatter cost a message each: at most ``chatter_per_minute`` a user, then silence."""
        if await self.services.limits.chatter.hit(limit_key(sender)):
            log.debug("chatter from %s user %s over the limit: not answered", sender.transport, sender.id)
            return
        await replier.send(Reply(text))

    # --- a running bot --------------------------------------------------------------------
    async def tell_admins(self, text: str) -> None:
        """Send ``text`` to every transport's admins (a model that failed to load…)."""
        for transport, outbox in self.outboxes.items():
            try:
                await outbox.to_admins(Reply(text))
            except DeliveryError as exc:
                log.warning("could not tell the %s admins: %s", transport, exc)

    async def start(self, *, wait_for_model: bool = True) -> None:
        """Load the serving model, then run the jobs: model polls and (with learning) the learning loop.

        ``wait_for_model=False`` (``bearbot run``): return once the active version is known; commands
        are answered at once and photos wait for the model on their worker thread.
        """
        services, settings = self.services, self.services.settings
        services.serving.report = lambda text: self.tell_admins(f"⚠️ {text}")
        await services.serving.start(wait=wait_for_model)
        scheduler = self._scheduler = AsyncIOScheduler()
        soon = datetime.now().astimezone()

        def every(seconds: float, job: Callable[..., Awaitable[None]], *args: object, first: float, name: str) -> None:
            # A coroutine function with args (not a lambda): APScheduler awaits it on this loop.
            scheduler.add_job(
                self._tracked(job), "interval", args=args, seconds=seconds, next_run_time=soon + timedelta(seconds=first),
                name=name, max_instances=1, coalesce=True, misfire_grace_time=None,
            )

        every(settings.model_poll_seconds, services.serving.poll, first=settings.model_poll_seconds, name="model-poll")
        if self.state is not None:
            await services.db(learning.recover, settings=settings)
            every(learning.DISPATCH_SECONDS, learning.dispatch, services, self.state, self.outboxes, first=1.0, name="learning-dispatch")
            every(learning.CORRECTIONS_CHECK_SECONDS, learning.corrections_check, services, first=10.0, name="corrections-check")
            if settings.retrain_cron:
                from apscheduler.triggers.cron import CronTrigger

                scheduler.add_job(self._tracked(learning.scheduled), CronTrigger.from_crontab(settings.retrain_cron),
                                  args=[services], name="retrain-cron")
            elif settings.retrain_interval_hours > 0:
                hours = settings.retrain_interval_hours * 3600
                every(hours, learning.scheduled, services, first=hours, name="retrain-interval")
        scheduler.start()

    def _tracked(self, job: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """``job``, noting its task while it runs, so :meth:`stop` can let it finish."""

        async def run(*args: object) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._jobs.add(task)
            try:
                await job(*args)
            finally:
                self._jobs.discard(task)

        return run

    async def stop(self) -> None:
        """Stop the jobs and release the services; a running trainer finishes and records its run.

        No job starts after this is called; one in flight may finish (up to :data:`JOB_GRACE_SECONDS`)
        before the scheduler cancels it, so a stop does not cut a job off mid-write and log it as
        failed (APScheduler cancels its asyncio jobs on shutdown).
        """
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
            if self._jobs:
                await asyncio.wait(set(self._jobs), timeout=JOB_GRACE_SECONDS)
            self._scheduler.shutdown(wait=False)
        if self.state is not None:
            self.state.close_logs()
        await self.services.aclose()
