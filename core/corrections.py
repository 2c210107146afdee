"""/correct and the feedback buttons: record what the user says the photo shows.

A button's id is written by the client, so its prediction id is trusted only when the button was
pressed under that prediction's own answer: same transport, same chat, same message (issue 14).
A bear label for a photo the bot saw no bear in needs an admin (issue 17, ``storage.corrections``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from bearbot.labels import NOT_BEAR, UnknownLabelError, check_answer
from core.events import ButtonEvent, CommandEvent, Sender
from core.identity import limit_key, upsert
from core.replies import Replier, Reply
from core.services import Services
from core.texts import (
    FOREIGN_BUTTON,
    correction_text,
    echo,
    no_prediction,
    parse_feedback,
    prediction_id_of,
    prediction_text,
    slow_down,
    unknown_label,
    usage_correct,
)
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


@dataclass(frozen=True)
class Claim:
    """Which prediction a correction is about: an id (from a button) and the message it came from."""

    chat_id: int
    message_id: int | None
    prediction_id: int | None = None
    by_message: bool = True  # look the prediction up by the message when the id is missing or foreign


def _bound(pred: PredictionRecord, *, transport: str, claim: Claim) -> bool:
    """Whether the claim's message is ``pred``'s answer (or may be: its id not stored yet).

    No message: the adapter looked the prediction up itself (a /correct that replies to nothing),
    so the same chat is all there is to check.
    """
    if pred.transport != transport or pred.chat_id != claim.chat_id:
        return False
    return claim.message_id is None or pred.reply_message_id in (None, claim.message_id)


def _find(session: Session, *, transport: str, claim: Claim) -> Recorded | PredictionRecord:
    pred = None
    if claim.prediction_id is not None:
        pred = get_prediction(session, prediction_id=claim.prediction_id)
        if pred is not None and not _bound(pred, transport=transport, claim=claim):
            log.warning(
                "refused prediction %s claimed from %s chat %s message %s",
                claim.prediction_id, transport, claim.chat_id, claim.message_id,
            )
            if not claim.by_message:
                return Recorded(None, foreign=True)
            pred = None
    if pred is None and claim.by_message and claim.message_id is not None:
        pred = find_for_message(session, transport=transport, chat_id=claim.chat_id, message_id=claim.message_id)
    return pred if pred is not None else Recorded(None)


def _record(session: Session, *, services: Services, sender: Sender, label: str, claim: Claim) -> Recorded:
    """Find the prediction and record the user's label."""
    found = _find(session, transport=sender.transport, claim=claim)
    if isinstance(found, Recorded):
        return found
    pred = found
    required = services.settings.corrections_to_accept
    admin_only = not pred.is_bear and label != NOT_BEAR
    outcome = record_correction(
        session, image_id=pred.image_id, user_id=upsert(session, sender), label=label, prediction_id=pred.id,
        is_admin=sender.is_admin, required=required, admin_only=admin_only,
        trust_rule=TrustRule.from_settings(services.settings),
    )
    text = correction_text(
        label=label, said=pred.label, confidence=pred.confidence, is_bear=pred.is_bear, updated=not outcome.created,
        status=outcome.status, agreeing=outcome.trusted_agreeing, required=required, admin_only=admin_only,
    )
    return Recorded(text, pred)


async def _slowed(services: Services, sender: Sender) -> str | None:
    wait = await services.limits.corrections.hit(limit_key(sender))
    return slow_down("corrections", services.settings.corrections_per_minute, wait) if wait else None


async def correct_command(services: Services, event: CommandEvent, replier: Replier) -> None:
    """``/correct <label>`` about the bot's answer or the user's own photo (the event's target)."""
    labels = services.serving.labels
    target = event.target
    if target is None or not event.args:
        await replier.send(Reply(usage_correct(labels, event.sender.transport)))
        return
    try:
        label = check_answer(" ".join(event.args), labels)
    except UnknownLabelError as exc:
        log.info("unknown label %r (%d chars) from %s user %s", echo(exc.label), len(exc.label), event.sender.transport, event.sender.id)
        await replier.send(Reply(unknown_label(exc.label, labels)))
        return
    if (slow := await _slowed(services, event.sender)) is not None:
        await replier.send(Reply(slow))
        return
    # The bot's answer carries its prediction id in its buttons; a user's photo is looked up.
    claim = Claim(
        chat_id=event.place.chat_id, message_id=target.message_id,
        prediction_id=target.prediction_id if target.prediction_id is not None else prediction_id_of(target.button_ids),
    )
    result = await services.db(_record, services=services, sender=event.sender, label=label, claim=claim)
    await replier.send(Reply(result.text if result.text is not None else no_prediction(event.sender.transport)))


async def feedback_button(services: Services, event: ButtonEvent, replier: Replier) -> None:
    """A tap on ✅ / "it's <label>" / "not a bear" under an answer: the same as /correct."""
    parsed = parse_feedback(event.button_id)
    if parsed is None or parsed[1] not in (*services.serving.labels, NOT_BEAR):
        await replier.toast("That button is out of date; reply with /correct <label> instead.", alert=True)
        return
    if event.place.message_id is None:  # e.g. a Telegram inline-mode message: not one of the bot's answers
        log.warning("feedback button without a message from %s user %s: %r", event.sender.transport, event.sender.id, event.button_id)
        await replier.toast(FOREIGN_BUTTON, alert=True)
        return
    prediction_id, label = parsed
    if (slow := await _slowed(services, event.sender)) is not None:
        await replier.toast(slow, alert=True)
        return
    claim = Claim(chat_id=event.place.chat_id, message_id=event.place.message_id, prediction_id=prediction_id, by_message=False)
    result = await services.db(_record, services=services, sender=event.sender, label=label, claim=claim)
    if result.foreign:
        await replier.toast(FOREIGN_BUTTON, alert=True)
        return
    if result.text is None or result.prediction is None:
        await replier.toast("I can't find that prediction any more.", alert=True)
        return
    await replier.toast(result.text.split("\n", 1)[0])
    pred = result.prediction
    body = prediction_text(label=pred.label, confidence=pred.confidence, probabilities=pred.probabilities, is_bear=pred.is_bear)
    # Keep the buttons: the user may change their mind, and others in a group may vote too.
    await replier.edit(f"{body}\n\n{result.text}", keep_buttons=True)
