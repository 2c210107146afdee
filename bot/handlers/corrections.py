"""/correct and the feedback buttons: record what the user says the photo shows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session
from telegram import Update
from telegram import User as TgUser
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bearbot.labels import UnknownLabelError, check_label
from bot.handlers.common import upsert
from bot.replies import (
    correction_text,
    parse_feedback,
    prediction_id_of,
    prediction_text,
    unknown_label,
    usage_correct,
)
from bot.services import BotServices, get_services
from storage.corrections import record_correction
from storage.models import Prediction
from storage.predictions import find_for_message, get_prediction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """A correction as the user should hear about it; ``text`` None when no prediction was found."""

    text: str | None
    prediction: Prediction | None = None


def _record(
    session: Session,
    *,
    services: BotServices,
    user: TgUser,
    label: str,
    prediction_id: int | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
) -> Recorded:
    """Find the prediction (by id or by a message of the exchange) and record the user's label."""
    pred = None
    if prediction_id is not None:
        pred = get_prediction(session, prediction_id=prediction_id)
    if pred is None and chat_id is not None and message_id is not None:
        pred = find_for_message(session, chat_id=chat_id, message_id=message_id)
    if pred is None:
        return Recorded(None)
    is_admin = services.is_admin(user.id)
    uid = upsert(session, user=user, is_admin=is_admin)
    required = services.settings.corrections_to_accept
    outcome = record_correction(
        session, image_id=pred.image_id, user_id=uid, label=label, prediction_id=pred.id, is_admin=is_admin, required=required
    )
    text = correction_text(
        label=label,
        said=pred.label,
        confidence=pred.confidence,
        is_bear=pred.is_bear,
        updated=not outcome.created,
        status=outcome.status,
        agreeing=outcome.agreeing_users,
        required=required,
    )
    return Recorded(text, pred)


async def correct_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/correct <label>`` as a reply to the bot's answer or to the user's own photo."""
    services = get_services(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    labels = services.models.labels
    target = message.reply_to_message
    if target is None or not context.args:
        await message.reply_text(usage_correct(labels))
        return
    try:
        label = check_label(" ".join(context.args), labels)
    except UnknownLabelError as exc:
        await message.reply_text(unknown_label(exc.label, labels))
        return
    wait = services.limits.corrections.hit(user.id)
    if wait:
        await message.reply_text(f"Too many corrections at once; try again in {max(1, round(wait))} s.")
        return
    # The bot's answer carries its prediction id in the buttons; a user's photo is looked up.
    result = await services.db(
        _record,
        services=services,
        user=user,
        label=label,
        prediction_id=prediction_id_of(target.reply_markup),
        chat_id=message.chat_id,
        message_id=target.message_id,
    )
    if result.text is None:
        await message.reply_text("I have no prediction for that message. Reply to one of my answers with /correct <label>.")
        return
    await message.reply_text(result.text)


async def feedback_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on ✅ / "it's <label>" under an answer: the same as /correct."""
    services = get_services(context)
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    parsed = parse_feedback(query.data or "")
    labels = services.models.labels
    if parsed is None or parsed[1] not in labels:
        await query.answer("That button is out of date; reply with /correct <label> instead.", show_alert=True)
        return
    prediction_id, label = parsed
    wait = services.limits.corrections.hit(user.id)
    if wait:
        await query.answer(f"Too many corrections at once; try again in {max(1, round(wait))} s.", show_alert=True)
        return
    result = await services.db(_record, services=services, user=user, label=label, prediction_id=prediction_id)
    if result.text is None or result.prediction is None:
        await query.answer("I can't find that prediction any more.", show_alert=True)
        return
    await query.answer(result.text.split("\n", 1)[0])
    pred = result.prediction
    body = prediction_text(label=pred.label, confidence=pred.confidence, probabilities=pred.probabilities, is_bear=pred.is_bear)
    try:
        # Keep the buttons: the user may change their mind, and others in a group may vote too.
        await query.edit_message_text(f"{body}\n\n{result.text}", reply_markup=getattr(query.message, "reply_markup", None))
    except BadRequest as exc:  # "message is not modified" when the same button is tapped twice
        log.debug("edit after feedback: %s", exc)
