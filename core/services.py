"""Long-lived services every transport shares: settings, storage, the serving model, limits, pools."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from PIL import Image
from sqlalchemy.orm import Session

from bearbot.imaging import Decoded, decode
from bearbot.prediction import Classifier, Prediction
from bearbot.settings import Settings
from bot.batching import MicroBatcher
from bot.limits import UserLimits
from bot.model_holder import Bootstrap, ClassifierLoader, ModelHolder
from storage import model_versions
from storage.models import ModelVersion
from storage.store import Storage, open_storage

T = TypeVar("T")


@dataclass
class Services:
    """Everything the conversation needs besides the event: settings, storage, the model, limits."""

    settings: Settings
    storage: Storage
    serving: ModelHolder  # the model answering now (hot-swapped); storage.models is the ORM
    limits: UserLimits  # per user, in the database (shared by replicas)
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

    async def decode(self, data: bytes, *, min_side: int | None = None) -> Decoded:
        """Decode an upload once, on the inference pool, at most ``max_concurrent_decodes`` at a time
        (raises ``ImageError``): a burst of hostile files waits here instead of filling memory.
        ``min_side``: a big JPEG may decode at a smaller scale whose shorter side is still that long."""
        settings = self.settings
        work = functools.partial(
            decode, data, max_pixels=settings.max_image_pixels, max_side=settings.max_image_side, min_side=min_side
        )
        async with self.decodes:
            return await asyncio.get_running_loop().run_in_executor(self.inference, work)

    async def predict_image(self, classifier: Classifier, image: Image.Image) -> Prediction:
        """Classify a decoded image on the inference pool with the given (already taken) model reference,
        in one batch with the other photos waiting for it (:class:`bot.batching.MicroBatcher`)."""
        return await self.batcher.predict(classifier, image)

    async def aclose(self) -> None:
        """Release what the services hold."""
        await self.serving.stop()
        await self.batcher.aclose()
        await self.http.aclose()
        self.inference.shutdown(wait=True, cancel_futures=True)
        if self.owns_storage:
            self.storage.close()


def default_loader(settings: Settings) -> ClassifierLoader:
    """Load a version row with :mod:`bearbot.serving` (verifies the artifact's sha256 first): its cached
    graph without torch, else the torch model with the graph exported in a child process."""

    def load(version: ModelVersion) -> Any:
        from bearbot.serving import load_for_settings

        return load_for_settings(version, settings, defer_export=True)  # first start serves at once, exports in a child

    return load


def default_bootstrap(settings: Settings) -> Bootstrap:
    """On a fresh install, record and activate the built-in zero-shot model v0."""

    def ensure(session: Session) -> None:
        model_versions.ensure_serving(session, settings)

    return ensure


def make_services(
    settings: Settings,
    *,
    storage: Storage | None = None,
    loader: ClassifierLoader | None = None,
    bootstrap: Bootstrap | None = None,
) -> Services:
    """Open storage (upgrading the schema) and build the services; the model loads at start."""
    owns = storage is None
    storage = storage or open_storage(settings)
    # A few inference threads: torch already parallelises inside one prediction.
    inference = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="predict")
    holder = ModelHolder(
        storage,
        loader or default_loader(settings),
        bootstrap=bootstrap if bootstrap is not None else default_bootstrap(settings),
        retry_seconds=10 * settings.model_poll_seconds,  # a failed hot swap is tried again after 10 polls, then 20…
    )
    return Services(
        settings=settings,
        storage=storage,
        serving=holder,
        limits=UserLimits.for_settings(storage, settings),
        http=httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=True),
        inference=inference,
        owns_storage=owns,
    )
