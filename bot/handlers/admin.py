"""Admin commands: /retrain, /stats, /model, /rollback, /pending and its review buttons."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session
from telegram import Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.handlers.common import admin_only, user_id
from bot.replies import parse_review, review_keyboard
from bot.services import get_services
from bot.plots import send_plots
from bot.stats import model_text, serving_plots, stats_text
from storage import corrections, model_versions
from storage.models import CorrectionStatus, Image, Trigger, User

log = logging.getLogger(__name__)
PENDING_SHOWN = 10


@admin_only
async def retrain(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Queue a training run now (or join the one queued/running); the outcome is reported later."""
    from bot.learning import request_retrain  # the learning loop is optional for the other handlers

    services = get_services(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    uid = await user_id(services, user)
    result = await request_retrain(services, trigger=Trigger.ADMIN, user_id=uid, chat_id=message.chat_id)
    await message.reply_text(result.message)


async def _send_report(update: Update, context: ContextTypes.DEFAULT_TYPE, report: Callable[..., str]) -> None:
    services = get_services(context)
    assert update.effective_message is not None
    text = await services.db(report, serving=services.serving.version, labels=services.settings.labels)
    await update.effective_message.reply_text(text)


@admin_only
async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Predictions, corrections, agreement per class, the model and the last run; then the model's plots."""
    await _send_report(update, context, stats_text)
    services = get_services(context)
    assert update.effective_chat is not None
    plots = await services.db(serving_plots, version=services.serving.version)
    await send_plots(context.bot, update.effective_chat.id, plots)


@admin_only
async def model(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The serving model version, its metrics, and the other versions."""
    await _send_report(update, context, model_text)


@admin_only
async def rollback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Re-activate the previous model version and swap to it now."""
    services = get_services(context)
    message = update.effective_message
    assert message is not None

    def go_back(session: Session) -> tuple[int | None, int | None]:
        current = model_versions.get_active(session)
        target = model_versions.rollback(session)
        return (current.id if current else None), (target.id if target else None)

    was, now = await services.db(go_back)
    if now is None:
        await message.reply_text(f"Nothing to roll back to: v{was} has no previous version.")
        return
    result = await services.serving.refresh()
    serving = services.serving.version
    if serving is None or serving.id != now:
        await message.reply_text(
            f"Activated v{now} (was v{was}), but it failed to load: {result.error}. "
            f"Still serving v{serving.id if serving else '?'}."
        )
        return
    await message.reply_text(f"Rolled back: now serving v{now} (was v{was}).")


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


@admin_only
async def pending(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List pending corrections, each with its photo and approve / reject buttons."""
    services = get_services(context)
    message = update.effective_message
    assert message is not None
    items, total = await services.db(_pending, images_root=str(services.storage.images.root))
    if not items:
        await message.reply_text("No pending corrections. 🎉")
        return
    required = services.settings.corrections_to_accept
    shown = f"{len(items)} of {total}" if total > len(items) else str(total)
    await message.reply_text(f"Pending corrections: {shown} (accepted automatically when {required} people agree).")
    for item in items:
        caption = (
            f"#{item.correction_id}: {item.by} says {item.label}"
            + (f" (model said {item.said})" if item.said else "")
            + f" · {item.agreeing}/{required} agree"
        )
        try:
            with open(item.image_path, "rb") as fh:
                photo = fh.read()
            await message.reply_photo(photo=photo, caption=caption, reply_markup=review_keyboard(item.correction_id))
        except OSError:
            await message.reply_text(caption + " (image file missing)", reply_markup=review_keyboard(item.correction_id))


@admin_only
async def review_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Approve or reject one pending correction."""
    services = get_services(context)
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    parsed = parse_review(query.data or "")
    if parsed is None:
        await query.answer("That button is out of date.", show_alert=True)
        return
    approve, correction_id = parsed
    admin_uid = await user_id(services, user)
    row = await services.db(corrections.review, correction_id=correction_id, admin_id=admin_uid, approve=approve)
    if row is None:
        await query.answer("That correction no longer exists.", show_alert=True)
        return
    verdict = "approved ✅" if approve else "rejected ❌"
    await query.answer(f"#{correction_id} {verdict}")
    text = f"#{correction_id}: {row.label} — {verdict} by {user.full_name}"
    try:
        if query.message is not None and getattr(query.message, "photo", None):
            await query.edit_message_caption(caption=text)
        else:
            await query.edit_message_text(text)
    except BadRequest as exc:
        log.debug("edit after review: %s", exc)


