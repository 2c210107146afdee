"""Micro-batching: photos waiting for the model share one forward pass.

A handler awaits :meth:`MicroBatcher.predict`; the photo joins a queue, and one collector task starts
batches of up to ``max_batch`` waiting photos that use the same model reference, at most
``max_in_flight`` batches at a time on the inference pool. A photo that finds the model idle starts at
once (no wait when there is no load); while batches run, newcomers queue and wait at most
``max_wait_ms`` after the oldest of them arrived for company, then go together. The forward pass runs
on a worker thread: the event loop only moves futures around, so ``/help`` is answered during a burst.
Two batches in flight let one batch's preprocessing (crop, resize, normalise: Python and Pillow)
overlap the other's ONNX Runtime pass on the 2-core machine.
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

    def __init__(
        self, executor: Executor, *, max_batch: int = 8, max_wait_ms: float = 5.0, max_in_flight: int = 2
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.max_in_flight = max_in_flight
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._changed = asyncio.Event()  # a photo arrived or a batch finished
        self._running: set[asyncio.Task[None]] = set()
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
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._collect(), name="micro-batcher")
        return await waiting.future

    async def _wait_change(self, timeout: float | None) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    async def _collect(self) -> None:
        """Start batches while photos wait; ends when the queue is empty (the next photo restarts it)."""
        loop = asyncio.get_running_loop()
        while self._queue:
            if len(self._running) >= self.max_in_flight:
                await self._wait_change(None)
                continue
            left = self._queue[0].arrived + self.max_wait - loop.time()
            if self._running and len(self._queue) < self.max_batch and left > 0:
                await self._wait_change(left)  # under load: a few ms for company
                continue
            batch = self._take()
            if batch:
                task = asyncio.create_task(self._run(batch), name="micro-batch")
                self._running.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._changed.set()

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
        """Stop collecting and let running batches finish; photos still waiting get a cancellation."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            self._queue.popleft().future.cancel()
