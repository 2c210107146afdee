"""Tell users when a serving model learned their correction, once; ``/notify off`` (or ``/quiet``) stops it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.orm import Session

from core.events import CommandEvent
from core.identity import upsert
from core.replies import DeliveryError, Outbox, Replier, Reply
from core.services import Services
from storage.notices import LearnedNotice, claim_learned_notices, set_notify_learned
from storage.store import Storage

log = logging.getLogger(__name__)

OPT_OUT_HINT = "(/notify off stops these messages.)"
NOTIFY_USAGE = "/notify off — stop telling me when a new model learned my corrections\n/notify on — tell me again"


def notice_text(notice: LearnedNotice) -> str:
    """The message, in the words of the person who corrected."""
    said = f"; I had said {notice.said}" if notice.said and notice.said != notice.label else ""
    return (
        f"Thank you! Your correction of this photo (from {notice.photo_sent_at:%d %b %Y}) — it is {notice.label}"
        f"{said} — is now part of model v{notice.version_id}, which answers everyone. {OPT_OUT_HINT}"
    )


async def announce_learned(storage: Storage, outboxes: Mapping[str, Outbox]) -> int:
    """Send every unclaimed "your correction is learned" notice this process can deliver; returns how many went.

    Only the notices of users on ``outboxes``' transports are claimed: the others wait for a process
    that serves theirs.
    """
    sent = 0
    for notice in await storage.in_thread(claim_learned_notices, transports=frozenset(outboxes)):
        try:
            await outboxes[notice.transport].to_chat(notice.chat_id, Reply(notice_text(notice)), reply_to=notice.reply_to)
            sent += 1
        except DeliveryError as exc:  # the user blocked the bot, the chat is gone…: told once means tried once
            log.info(
                "could not tell %s chat %s that correction #%s was learned: %s",
                notice.transport, notice.chat_id, notice.correction_id, exc,
            )
    return sent


async def notify_command(services: Services, event: CommandEvent, replier: Replier) -> None:
    """``/notify on|off`` (``/quiet`` = off): the "your correction is now part of vN" messages."""
    arg = "off" if event.name == "quiet" else (event.args[0].lower() if event.args else "")
    if arg not in ("on", "off"):
        await replier.send(Reply(NOTIFY_USAGE))
        return

    def apply(session: Session) -> None:
        set_notify_learned(session, user_id=upsert(session, event.sender), on=arg == "on")

    await services.db(apply)
    await replier.send(Reply(
        "OK: I will tell you when a new model has learned one of your corrections."
        if arg == "on"
        else "OK: no more messages about your corrections being learned. /notify on turns them back on."
    ))
