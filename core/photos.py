"""A photo in: size-checked fetch, one decode, the serving model, a stored answer with feedback buttons."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session

from bearbot.imaging import ImageError, ImageInfo
from bearbot.prediction import Prediction
from core.events import DownloadError, ImageEvent, TooLargeError
from core.identity import limit_key, upsert
from core.replies import Replier, Reply
from core.services import Services
from core.texts import (
    DOWNLOAD_FAILED,
    feedback_buttons,
    prediction_text,
    slow_down,
    too_big,
    unusable,
)
from storage.models import Origin
from storage.predictions import record_prediction, set_reply_message

log = logging.getLogger(__name__)


def _store_image(session: Session, *, services: Services, data: bytes, info: ImageInfo) -> int:
    """Store the image (file written and synced, row committed); returns its id."""
    image, _created = services.storage.images.put(session, data=data, origin=Origin.UPLOAD, info=info)
    return image.id


def _save(session: Session, *, event: ImageEvent, image_id: int, answer: Prediction) -> int:
    """Store the user and the prediction in one transaction; returns the prediction id."""
    row = record_prediction(
        session, image_id=image_id, user_id=upsert(session, event.sender), transport=event.sender.transport,
        chat_id=event.place.chat_id, message_id=event.place.message_id, answer=answer,
    )
    return row.id


async def _fetch(event: ImageEvent, limit: int) -> bytes:
    if event.size is not None and event.size > limit:
        raise TooLargeError(event.size, limit)
    return await event.fetch(limit)


async def on_image(services: Services, event: ImageEvent, replier: Replier) -> None:
    """Fetch (size-checked), classify on the inference pool, store, and answer with buttons."""
    settings, chat = services.settings, event.place.chat_id
    limit = settings.max_download_bytes
    # The limit (a database round trip) is checked while the photo downloads: a limited user's photo
    # is dropped before the decoder and the model, as before, and the others wait for neither in turn.
    # The download starts first: its request is on the wire before the database thread takes the GIL
    # (the other order delayed getFile by ~2 ms per photo, bench/bench_serving.py's stages).
    fetched, wait = await asyncio.gather(
        _fetch(event, limit), services.limits.photos.hit(limit_key(event.sender)), return_exceptions=True
    )
    if isinstance(wait, BaseException):
        raise wait
    if wait:
        await replier.send(Reply(slow_down("photos", settings.photos_per_minute, wait)))
        return
    try:
        if isinstance(fetched, BaseException):
            raise fetched
        data = fetched
        classifier = services.serving.current  # taken once: a swap meanwhile does not affect this photo
        # The one decode, at the model's input size at least: classified and stored from it.
        decoded = await services.decode(data, min_side=getattr(classifier, "image_size", None))
        # The photo is stored while the model runs (the file's fsync and the commit are off the answer's
        # path); it is stored before the answer is sent, and kept even if the model fails on it.
        stored = asyncio.ensure_future(services.db(_store_image, services=services, data=data, info=decoded.info))
        try:
            answer = await services.predict_image(classifier, decoded.image)
        finally:
            image_id = await stored
        prediction_id = await services.db(_save, event=event, image_id=image_id, answer=answer)
    except TooLargeError as exc:
        log.info("refused oversize file in %s chat %s: %s", event.sender.transport, chat, exc)
        await replier.send(Reply(too_big(limit)))
        return
    except ImageError as exc:
        log.info("unusable image in %s chat %s: %s", event.sender.transport, chat, exc)
        await replier.send(Reply(unusable(exc)))
        return
    except DownloadError as exc:
        log.warning("download failed in %s chat %s: %s", event.sender.transport, chat, exc)
        await replier.send(Reply(DOWNLOAD_FAILED))
        return
    text = prediction_text(
        label=answer.label, confidence=answer.confidence, probabilities=answer.probabilities, is_bear=answer.is_bear
    )
    buttons = feedback_buttons(prediction_id, classifier.labels, answer.label, is_bear=answer.is_bear)
    reply_id = await replier.send(Reply(text, buttons))
    if reply_id is not None:
        await services.db(set_reply_message, prediction_id=prediction_id, reply_message_id=reply_id)
