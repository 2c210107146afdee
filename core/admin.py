"""Admin commands: /retrain, /stats, /model, /rollback, /pending and its review buttons, /mute and /unmute.

Their output is ``private`` (only the admin who asked sees it, where the transport can do that).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from core.events import ButtonEvent, CommandEvent, Target
from core.identity import upsert
from core.learning import request_retrain
from core.plots import plot_replies
from core.replies import Buttons, Replier, Reply
from core.services import Services
from core.stats import model_text, serving_plots, stats_text
from core.texts import (
    NOT_ADMIN,
    mute_text,
    parse_review,
    prediction_id_of,
    review_buttons,
    usage_mute,
)
from storage import corrections, model_versions, trust
from storage.models import CorrectionStatus, Image, Role, Trigger, User
from storage.predictions import find_for_message, get_prediction
from storage.users import get_user

log = logging.getLogger(__name__)
PENDING_SHOWN = 10

AdminEvent = CommandEvent | ButtonEvent
AdminHandler = Callable[[Services, AdminEvent, Replier], Awaitable[None]]


async def refuse(name: str, event: AdminEvent, replier: Replier) -> None:
    """A polite refusal for a non-admin (the log line tells the would-be admin their id)."""
    log.info("refused %s for non-admin %s", name, event.sender.id)
    if isinstance(event, ButtonEvent):
        await replier.toast(NOT_ADMIN, alert=True)
    else:
        await replier.send(Reply(NOT_ADMIN))


def _private(text: str, buttons: Buttons = (), picture: bytes | None = None) -> Reply:
    return Reply(text, buttons, picture, private=True)


async def retrain(services: Services, event: AdminEvent, replier: Replier) -> None:
    """Queue a training run now (or join the one queued/running); the outcome is reported later."""
    uid = await services.db(upsert, sender=event.sender)
    result = await request_retrain(
        services, trigger=Trigger.ADMIN, user_id=uid, transport=event.sender.transport, chat_id=event.place.chat_id
    )
    await replier.send(_private(result.message))


async def stats(services: Services, event: AdminEvent, replier: Replier) -> None:
    """Predictions, corrections, agreement per class, the model and the last run; then the model's plots."""
    await replier.send(_private(await services.db(stats_text, serving=services.serving.version, labels=services.settings.labels)))
    paths: list[Path] = await services.db(serving_plots, version=services.serving.version)
    for reply in await plot_replies(paths, private=True):
        await replier.send(reply)


async def model(services: Services, event: AdminEvent, replier: Replier) -> None:
    """The serving model version, its metrics, and the other versions."""
    await replier.send(_private(await services.db(model_text, serving=services.serving.version, labels=services.settings.labels)))


def _go_back(session: Session) -> tuple[int | None, int | None]:
    current = model_versions.get_active(session)
    target = model_versions.rollback(session)
    return (current.id if current else None), (target.id if target else None)


async def rollback(services: Services, event: AdminEvent, replier: Replier) -> None:
    """Re-activate the previous model version and swap to it now."""
    was, now = await services.db(_go_back)
    if now is None:
        await replier.send(_private(f"Nothing to roll back to: v{was} has no previous version."))
        return
    result = await services.serving.refresh()
    serving = services.serving.version
    if serving is None or serving.id != now:
        await replier.send(_private(
            f"Activated v{now} (was v{was}), but it failed to load: {result.error}. "
            f"Still serving v{serving.id if serving else '?'}."
        ))
        return
    await replier.send(_private(f"Rolled back: now serving v{now} (was v{was})."))


@dataclass(frozen=True)
class PendingItem:
    correction_id: int
    label: str
    by: str
    said: str | None
    agreeing: int
    image_path: str


def _pending(session: Session, *, images_root: str) -> tuple[list[PendingItem], int]:
    rows = corrections.list_pending(session, limit=PENDING_SHOWN)
    total = corrections.count_by_status(session)[CorrectionStatus.PENDING]
    items = []
    for row in rows:
        image = session.get(Image, row.image_id)
        who = session.get(User, row.user_id)
        items.append(
            PendingItem(
                correction_id=row.id,
                label=row.label,
                by=who.display_name if who else "?",
                said=corrections.predicted_label(session, correction=row),
                agreeing=corrections.agreeing_users(session, image_id=row.image_id, label=row.label),
                image_path=f"{images_root}/{image.path}" if image else "",
            )
        )
    return items, total


async def pending(services: Services, event: AdminEvent, replier: Replier) -> None:
    """List pending corrections, each with its photo and approve / reject buttons."""
    items, total = await services.db(_pending, images_root=str(services.storage.images.root))
    if not items:
        await replier.send(_private("No pending corrections. 🎉"))
        return
    required = services.settings.corrections_to_accept
    shown = f"{len(items)} of {total}" if total > len(items) else str(total)
    await replier.send(_private(f"Pending corrections: {shown} (accepted automatically when {required} trusted people agree)."))
    for item in items:
        caption = (
            f"#{item.correction_id}: {item.by} says {item.label}"
            + (f" (model said {item.said})" if item.said else "")
            + f" · {item.agreeing}/{required} agree"
        )
        buttons = review_buttons(item.correction_id)
        try:
            photo = await asyncio.to_thread(Path(item.image_path).read_bytes)
        except OSError:
            await replier.send(_private(caption + " (image file missing)", buttons=buttons))
            continue
        await replier.send(_private(caption, buttons=buttons, picture=photo))


async def review_button(services: Services, event: AdminEvent, replier: Replier) -> None:
    """Approve or reject one pending correction."""
    assert isinstance(event, ButtonEvent)
    parsed = parse_review(event.button_id)
    if parsed is None:
        await replier.toast("That button is out of date.", alert=True)
        return
    approve, correction_id = parsed
    admin_uid = await services.db(upsert, sender=event.sender)
    row = await services.db(corrections.review, correction_id=correction_id, admin_id=admin_uid, approve=approve)
    if row is None:
        await replier.toast("That correction no longer exists.", alert=True)
        return
    verdict = "approved ✅" if approve else "rejected ❌"
    await replier.toast(f"#{correction_id} {verdict}")
    await replier.edit(f"#{correction_id}: {row.label} — {verdict} by {event.sender.name}", keep_buttons=False)


# A user named by id: 123456789, or a Discord mention <@123456789> / <@!123456789>.
USER_REF_RE = re.compile(r"<@!?(?P<mention>\d+)>|(?P<id>\d+)")


def _author(session: Session, *, transport: str, chat_id: int, target: Target) -> User | None:
    """Whose photo (or my answer to it) ``target`` is: from its buttons' prediction id, else by the message."""
    prediction_id = target.prediction_id if target.prediction_id is not None else prediction_id_of(target.button_ids)
    pred = get_prediction(session, prediction_id=prediction_id) if prediction_id is not None else None
    if (pred is None or pred.transport != transport or pred.chat_id != chat_id) and target.message_id is not None:
        pred = find_for_message(session, transport=transport, chat_id=chat_id, message_id=target.message_id)
    return session.get(User, pred.user_id) if pred is not None and pred.user_id is not None else None


def _set_muted(session: Session, *, event: CommandEvent, muted: bool) -> str:
    """Find the user the command names (an id argument, else the message it replies to) and (un)mute them."""
    transport, command = event.sender.transport, "mute" if muted else "unmute"
    if event.args:
        match = USER_REF_RE.fullmatch(event.args[0].strip())
        if match is None:
            return usage_mute(command, transport)
        external_id = int(match["mention"] or match["id"])
        user = get_user(session, transport=transport, external_id=external_id)
        if user is None:
            return f"I have never heard from {transport} user {external_id}, so they have no corrections to mute."
    elif event.target is not None:
        user = _author(session, transport=transport, chat_id=event.place.chat_id, target=event.target)
        if user is None:
            return "That message is no photo of anyone's I answered, so I can't tell whose it is. " + usage_mute(command, transport)
    else:
        return usage_mute(command, transport)
    if user.role == Role.ADMIN:
        return f"{user.display_name} is an admin: admins' corrections always count. Remove them from the admins first."
    record = trust.mute(session, user_id=user.id, by=upsert(session, event.sender), muted=muted)
    log.info("%s %s user %s (%s) by %s", "muted" if muted else "unmuted", transport, user.external_id, user.id, event.sender.id)
    return mute_text(
        name=user.display_name, transport=transport, external_id=user.external_id, muted=muted,
        made=record.made, right=record.right, wrong=record.wrong,
    )


async def mute(services: Services, event: AdminEvent, replier: Replier) -> None:
    """/mute <user> (or replying to their photo or my answer to it): their corrections stop counting."""
    assert isinstance(event, CommandEvent)
    await replier.send(_private(await services.db(_set_muted, event=event, muted=True)))


async def unmute(services: Services, event: AdminEvent, replier: Replier) -> None:
    """/unmute <user>: their corrections count again (as far as their record earns trust)."""
    assert isinstance(event, CommandEvent)
    await replier.send(_private(await services.db(_set_muted, event=event, muted=False)))


COMMANDS: dict[str, AdminHandler] = {
    "retrain": retrain, "stats": stats, "model": model, "rollback": rollback, "pending": pending,
    "mute": mute, "unmute": unmute,
}
