"""Photos and image files → a prediction reply with confidence and feedback buttons."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from telegram import Message, Update
from telegram import User as TgUser
from telegram.ext import ContextTypes

from bearbot.imaging import ImageError, ImageInfo
from bearbot.prediction import Prediction
from bot.handlers.common import upsert
from bot.replies import NOT_AN_IMAGE, feedback_keyboard, prediction_text, slow_down
from bot.services import BotServices, get_services
from bot.telegram_files import DownloadError, TooLargeError, download, image_ref
from storage.models import Origin
from storage.predictions import record_prediction, set_reply_message

log = logging.getLogger(__name__)


def _save(
    session: Session, *, services: BotServices, data: bytes, info: ImageInfo, user: TgUser, message: Message,
    answer: Prediction,
) -> int:
    """Store the image, the user and the prediction in one transaction; returns the prediction id."""
    image, _created = services.storage.images.put(session, data=data, origin=Origin.UPLOAD, info=info)
    uid = upsert(session, user=user, is_admin=services.is_admin(user.id))
    row = record_prediction(
        session, image_id=image.id, user_id=uid, chat_id=message.chat_id, message_id=message.message_id, answer=answer
    )
    return row.id


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


async def on_image(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Download (size-checked), classify on the inference pool, store, and reply with buttons."""
    services = get_services(context)
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    ref = image_ref(message)
    if ref is None:
        await message.reply_text(NOT_AN_IMAGE)
        return
    wait = await services.limits.photos.hit(user.id)
    if wait:
        await message.reply_text(slow_down("photos", services.settings.photos_per_minute, wait))
        return
    limit = services.settings.max_download_bytes
    try:
        data = await download(context.bot, services.http, ref, limit=limit)
        decoded = await services.decode(data)  # the one decode: classified and stored from it
        classifier = services.serving.current  # taken once: a swap meanwhile does not affect this photo
        answer = await services.predict_image(classifier, decoded.image)
        prediction_id = await services.db(
            _save, services=services, data=data, info=decoded.info, user=user, message=message, answer=answer
        )
    except TooLargeError as exc:
        log.info("refused oversize file in chat %s: %s", message.chat_id, exc)
        await message.reply_text(f"That file is too big for me (limit {_mb(limit)}). Send a smaller photo.")
        return
    except ImageError as exc:
        log.info("unusable image in chat %s: %s", message.chat_id, exc)
        await message.reply_text(f"Sorry, I can't use that file: {exc}. Send a JPEG, PNG, WebP or GIF photo.")
        return
    except DownloadError as exc:
        log.warning("download failed in chat %s: %s", message.chat_id, exc)
        await message.reply_text("I couldn't download that file. Please try sending it again.")
        return
    reply = await message.reply_text(
        prediction_text(
            label=answer.label, confidence=answer.confidence, probabilities=answer.probabilities, is_bear=answer.is_bear
        ),
        reply_markup=feedback_keyboard(prediction_id, classifier.labels, answer.label, is_bear=answer.is_bear),
    )
    await services.db(set_reply_message, prediction_id=prediction_id, reply_message_id=reply.message_id)
