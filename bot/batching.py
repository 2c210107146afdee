"""Micro-batching: photos waiting for the model share one forward pass.

A handler awaits :meth:`MicroBatcher.predict`; the photo joins a queue, and one collector task takes
up to ``max_batch`` waiting photos that use the same model reference, at most ``max_wait_ms`` after the
oldest of them arrived, and runs them as one batch on the inference pool. While a batch runs, new
photos queue up and go together in the next one, so under load batches fill by themselves and the
wait only matters for a lone photo. The forward pass runs on a worker thread: the event loop only
moves futures around, so ``/help`` is answered during a burst.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass

from PIL import Image

from bearbot.prediction import Classifier, Prediction

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    classifier: Classifier
    image: Image.Image
    future: asyncio.Future[Prediction]
    arrived: float  # loop time


class MicroBatcher:
    """Groups concurrent predictions into batches of at most ``max_batch`` (1: each photo alone)."""

    def __init__(self, executor: Executor, *, max_batch: int = 8, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches: collections.Counter[int] = collections.Counter()  # batch size → how many ran

    async def predict(self, classifier: Classifier, image: Image.Image) -> Prediction:
        """Classify one decoded image, in a batch with whatever else is waiting for the same model."""
        loop = asyncio.get_running_loop()
        if self.max_batch == 1:  # batching off: each photo its own call on the pool
            self.batches[1] += 1
            return (await loop.run_in_executor(self.executor, classifier.predict_images, [image]))[0]
        waiting = _Waiting(classifier, image, loop.create_future(), loop.time())
        self._queue.append(waiting)
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._collect(), name="micro-batcher")
        return await waiting.future

    async def _collect(self) -> None:
        """Run batches while photos wait; ends when the queue is empty (the next photo restarts it)."""
        loop = asyncio.get_running_loop()
        while self._queue:
            deadline = self._queue[0].arrived + self.max_wait
            while len(self._queue) < self.max_batch and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch = self._take()
            if batch:
                await self._run(batch)

    def _take(self) -> list[_Waiting]:
        """Up to ``max_batch`` waiting photos for the oldest one's model, in arrival order (a model swap
        mid-burst splits the queue: each photo is answered by the model its handler took)."""
        first = self._queue[0].classifier
        batch: list[_Waiting] = []
        rest: collections.deque[_Waiting] = collections.deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():  # its handler was cancelled
                continue
            if item.classifier is first and len(batch) < self.max_batch:
                batch.append(item)
            else:
                rest.append(item)
        self._queue.extendleft(reversed(rest))
        return batch

    async def _run(self, batch: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            answers = await loop.run_in_executor(
                self.executor, batch[0].classifier.predict_images, [item.image for item in batch]
            )
        except Exception as exc:
            log.exception("batch of %d predictions failed", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.batches[len(batch)] += 1
        log.debug("batch of %d in %.1f ms", len(batch), (time.perf_counter() - started) * 1000)
        for item, answer in zip(batch, answers, strict=True):
            if not item.future.done():
                item.future.set_result(answer)

    async def aclose(self) -> None:
        """Stop collecting; photos still waiting get a cancellation."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue:
            self._queue.popleft().future.cancel()
