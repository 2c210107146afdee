"""Long-lived services the handlers share, kept on ``application.bot_data`` (no module globals)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from PIL import Image
from telegram.ext import Application, CallbackContext

from bearbot.imaging import Decoded, decode
from bearbot.prediction import Classifier, Prediction
from bearbot.settings import Settings
from bot.batching import MicroBatcher
from bot.limits import UserLimits
from bot.model_holder import ModelHolder
from storage.store import Storage

T = TypeVar("T")
SERVICES_KEY = "services"


@dataclass
class BotServices:
    """Everything a handler needs besides the update: settings, storage, the model, limits."""

    settings: Settings
    storage: Storage
    serving: ModelHolder  # the model answering now (hot-swapped); storage.models is the ORM
    limits: UserLimits
    http: httpx.AsyncClient  # file downloads (streamed, size-capped)
    inference: ThreadPoolExecutor  # predictions; kept apart so DB work and /help never queue behind them
    owns_storage: bool = True
    decodes: asyncio.Semaphore = field(init=False)
    batcher: MicroBatcher = field(init=False)  # photos waiting for the model share a forward pass

    def __post_init__(self) -> None:
        self.decodes = asyncio.Semaphore(self.settings.max_concurrent_decodes)
        self.batcher = MicroBatcher(
            self.inference, max_batch=self.settings.batch_max_size, max_wait_ms=self.settings.batch_wait_ms
        )

    async def db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``fn(session, **kwargs)`` in one transaction on a worker thread (:meth:`Storage.in_thread`)."""
        return await self.storage.in_thread(fn, **kwargs)

    async def predict(self, classifier: Classifier, data: bytes) -> Prediction:
        """Classify ``data`` on the inference pool with the given (already taken) model reference."""
        return await asyncio.get_running_loop().run_in_executor(self.inference, classifier.predict, data)

    async def decode(self, data: bytes) -> Decoded:
        """Decode an upload once, on the inference pool, at most ``max_concurrent_decodes`` at a time
        (raises ``ImageError``): a burst of hostile files waits here instead of filling memory."""
        settings = self.settings
        work = functools.partial(
            decode, data, max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
        )
        async with self.decodes:
            return await asyncio.get_running_loop().run_in_executor(self.inference, work)

    async def predict_image(self, classifier: Classifier, image: Image.Image) -> Prediction:
        """Classify a decoded image on the inference pool with the given (already taken) model reference,
        in one batch with the other photos waiting for it (:class:`bot.batching.MicroBatcher`)."""
        return await self.batcher.predict(classifier, image)

    def is_admin(self, telegram_id: int | None) -> bool:
        return telegram_id is not None and telegram_id in self.settings.admin_ids

    async def aclose(self) -> None:
        """Release what the services hold (the bot calls this from ``post_shutdown``)."""
        await self.serving.stop()
        await self.batcher.aclose()
        await self.http.aclose()
        self.inference.shutdown(wait=True, cancel_futures=True)
        if self.owns_storage:
            self.storage.close()


def get_services(context: CallbackContext[Any, Any, Any, Any] | Application[Any, Any, Any, Any, Any, Any]) -> BotServices:
    """The typed accessor for ``bot_data['services']``."""
    services = context.bot_data.get(SERVICES_KEY)
    if not isinstance(services, BotServices):
        raise RuntimeError("bot_data['services'] is not set up; build the bot with bot.app.build_application")
    return services


