"""/correct and the feedback buttons: record what the user says the photo shows.

Callback data is written by the client, so a button's prediction id is trusted only when the
button was pressed under that prediction's own answer: same chat, same message (issue 14).
A bear label for a photo the bot saw no bear in needs an admin (issue 17, ``storage.corrections``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session
from telegram import Update
from telegram import User as TgUser
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bearbot.labels import NOT_BEAR, UnknownLabelError, check_answer
from bot.handlers.common import upsert
from bot.replies import (
    FOREIGN_BUTTON,
    correction_text,
    echo,
    parse_feedback,
    prediction_id_of,
    prediction_text,
    slow_down,
    unknown_label,
    usage_correct,
)
from bot.services import BotServices, get_services
from storage.corrections import record_correction
from storage.models import PredictionRecord
from storage.predictions import find_for_message, get_prediction
from storage.trust import TrustRule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recorded:
    """A correction as the user should hear about it; ``text`` None when no prediction was found."""

    text: str | None
    prediction: PredictionRecord | None = None
    foreign: bool = False  # the prediction exists but belongs to another chat or message


def _bound(pred: PredictionRecord, *, chat_id: int, message_id: int) -> bool:
    """Whether ``message_id`` in ``chat_id`` is ``pred``'s answer (or may be: its id not stored yet)."""
    return pred.chat_id == chat_id and pred.reply_message_id in (None, message_id)


def _record(
    session: Session,
    *,
    services: BotServices,
    user: TgUser,
    label: str,
    chat_id: int,
    message_id: int,
    prediction_id: int | None = None,
    by_message: bool = True,
) -> Recorded:
    """Find the prediction and record the user's label.

    ``prediction_id`` (from buttons) counts only if ``message_id`` in ``chat_id`` is its answer;
    otherwise, with ``by_message``, the prediction is looked up by that message of the exchange.
    """
    pred = None
    if prediction_id is not None:
        pred = get_prediction(session, prediction_id=prediction_id)
        if pred is not None and not _bound(pred, chat_id=chat_id, message_id=message_id):
            log.warning("refused prediction %s claimed from chat %s message %s", prediction_id, chat_id, message_id)
            if not by_message:
                return Recorded(None, foreign=True)
            pred = None
    if pred is None and by_message:
        pred = find_for_message(session, chat_id=chat_id, message_id=message_id)
    if pred is None:
        return Recorded(None)
    is_admin = services.is_admin(user.id)
    uid = upsert(session, user=user, is_admin=is_admin)
    required = services.settings.corrections_to_accept
    admin_only = not pred.is_bear and label != NOT_BEAR
    outcome = record_correction(
        session, image_id=pred.image_id, user_id=uid, label=label, prediction_id=pred.id, is_admin=is_admin,
        required=required, admin_only=admin_only, trust_rule=TrustRule.from_settings(services.settings),
    )
    text = correction_text(
        label=label,
        said=pred.label,
        confidence=pred.confidence,
        is_bear=pred.is_bear,
        updated=not outcome.created,
        status=outcome.status,
        agreeing=outcome.trusted_agreeing,
        required=required,
        admin_only=admin_only,
    )
    return Recorded(text, pred)


async def correct_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/correct <label>`` as a reply to the bot's answer or to the user's own photo."""
    services = get_services(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    labels = services.serving.labels
    target = message.reply_to_message
    if target is None or not context.args:
        await message.reply_text(usage_correct(labels))
        return
    try:
        label = check_answer(" ".join(context.args), labels)
    except UnknownLabelError as exc:
        log.info("unknown label %r (%d chars) from user %s", echo(exc.label), len(exc.label), user.id)
        await message.reply_text(unknown_label(exc.label, labels))
        return
    wait = await services.limits.corrections.hit(user.id)
    if wait:
        await message.reply_text(slow_down("corrections", services.settings.corrections_per_minute, wait))
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
    """A tap on ✅ / "it's <label>" / "not a bear" under an answer: the same as /correct."""
    services = get_services(context)
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    parsed = parse_feedback(query.data or "")
    labels = services.serving.labels
    if parsed is None or parsed[1] not in (*labels, NOT_BEAR):
        await query.answer("That button is out of date; reply with /correct <label> instead.", show_alert=True)
        return
    if query.message is None:  # an inline-mode message: not one of the bot's answers
        log.warning("feedback button without a message from user %s: %r", user.id, query.data)
        await query.answer(FOREIGN_BUTTON, show_alert=True)
        return
    prediction_id, label = parsed
    wait = await services.limits.corrections.hit(user.id)
    if wait:
        await query.answer(slow_down("corrections", services.settings.corrections_per_minute, wait), show_alert=True)
        return
    result = await services.db(
        _record, services=services, user=user, label=label, prediction_id=prediction_id,
        chat_id=query.message.chat.id, message_id=query.message.message_id, by_message=False,
    )
    if result.foreign:
        await query.answer(FOREIGN_BUTTON, show_alert=True)
        return
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
