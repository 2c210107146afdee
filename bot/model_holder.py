"""The serving model: one reference that handlers read, swapped when the active version changes.

A swap loads the new version in a worker thread (the loader verifies its sha256), warms it up
with one prediction and only then replaces the reference; a loader that defers the ONNX export gets
it done first, except at a first start, where nothing serves yet: the eager model answers at once
while a child process exports. Handlers take the reference once per
photo, so predictions in flight finish on the model they started with. A version that fails to
load keeps the old model serving; it is reported once (and recorded on its row, for
``bearbot models list``) and retried with a growing delay, since a file on a shared volume may
only be late. At start, when the active version cannot be loaded and nothing serves yet, the
holder falls back along its rollback chain (or to the built-in v0), makes that version active
(compare-and-swap) and tells the admins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from PIL import Image
from sqlalchemy.orm import Session

from bearbot.prediction import Classifier, Prediction
from storage import model_versions
from storage.models import ModelVersion
from storage.store import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_LOAD_TIMEOUT_S = 600.0  # a photo waits this long for a first load in the background, then fails

# Runs in a worker thread: loads (and verifies) the classifier for a version row.
ClassifierLoader = Callable[[ModelVersion], Classifier]
# Runs in a worker thread inside a transaction: make sure some version is active (v0 on a fresh install).
Bootstrap = Callable[[Session], None]
Reporter = Callable[[str], Awaitable[None]]


class ModelLoadError(RuntimeError):
    """The active model version could not be loaded; the old one keeps serving."""


@dataclass(frozen=True)
class SwapResult:
    """What :meth:`ModelHolder.refresh` did."""

    swapped: bool
    version_id: int | None
    previous_id: int | None
    error: str | None = None
    pause_ms: float = 0.0  # time the reference swap itself took


def warmup_image() -> bytes:
    """A small JPEG used to warm a freshly loaded model before it serves."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 90, 60)).save(buf, format="JPEG")
    return buf.getvalue()


class Loading:
    """Stands in for the first model while it loads (:meth:`ModelHolder.start` with ``wait=False``).

    Its labels and version come from the version's row, so commands answer at once; a photo's
    prediction waits for the real model on its worker thread (never on the event loop), then is
    the real model's answer.
    """

    def __init__(self, version: ModelVersion, *, timeout_s: float = FIRST_LOAD_TIMEOUT_S) -> None:
        self.labels: tuple[str, ...] = tuple(version.labels)
        self.version_id: int | None = version.id
        self.timeout_s = timeout_s
        self.loaded: concurrent.futures.Future[Classifier] = concurrent.futures.Future()

    @property
    def image_size(self) -> int | None:
        """The loaded model's input size, None while it loads (callers then decode at full size)."""
        if not self.loaded.done() or self.loaded.exception() is not None:
            return None
        return getattr(self.loaded.result(), "image_size", None)

    def predict(self, data: bytes) -> Prediction:
        return self.loaded.result(self.timeout_s).predict(data)

    def predict_images(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return self.loaded.result(self.timeout_s).predict_images(images)


class ModelHolder:
    """Holds the current :class:`Classifier` and swaps it when the database says so."""

    def __init__(
        self,
        storage: Storage,
        loader: ClassifierLoader,
        *,
        bootstrap: Bootstrap | None = None,
        report: Reporter | None = None,
        retry_seconds: float = 60.0,
    ) -> None:
        self._storage = storage
        self._loader = loader
        self._bootstrap = bootstrap
        self.report = report
        self.retry_seconds = retry_seconds  # first retry of a failed load; doubles up to an hour
        self._current: Classifier | None = None
        self._version: ModelVersion | None = None
        # (version id, sha256) that failed → (failures so far, monotonic time of the next try)
        self._failed: dict[tuple[int, str], tuple[int, float]] = {}
        self._lock = asyncio.Lock()
        self._poll_task: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[None] | None = None

    # --- what handlers read -----------------------------------------------------------------
    @property
    def current(self) -> Classifier:
        """The serving classifier (take it once per request)."""
        if self._current is None:
            raise RuntimeError("no model loaded yet; call ModelHolder.start() first")
        return self._current

    @property
    def version(self) -> ModelVersion | None:
        """The (detached) row of the serving version."""
        return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        """The serving model's label set: what /correct and the buttons accept."""
        return tuple(self.current.labels)

    @property
    def serving(self) -> bool:
        """True once a loaded model answers (not the stand-in of a first load in progress)."""
        return self._current is not None and not isinstance(self._current, Loading)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self, *, wait: bool = True) -> None:
        """Ensure a version exists and load the active one; if it cannot be loaded, serve the last
        good one instead (raises only when nothing at all can serve).

        ``wait=False`` (``bearbot run``): return once the active version is known and load it in the
        background; meanwhile :class:`Loading` stands in, so the bot polls and answers commands at
        once and the first photos wait for the model. A load that finds nothing to serve is then
        logged and told to the admins instead of raised; photos get errors until a version loads.
        """
        if self._bootstrap is not None:
            await self._storage.in_thread(self._bootstrap)
        if not wait:
            active = await self._storage.in_thread(model_versions.get_active)
            if active is not None:
                stand_in = Loading(active)
                self._current = stand_in
                self._start_task = asyncio.create_task(self._first_load(stand_in), name="model-first-load")
                return
        await self._first_load(None)

    async def _first_load(self, stand_in: Loading | None) -> None:
        try:
            result = await self.refresh()
            if not self.serving and result.error not in (None, "no active model version"):
                await self._fall_back(result.error or "unknown error")
            if not self.serving:
                raise ModelLoadError(result.error or "no active model version")
        except Exception as exc:
            if stand_in is None:
                raise
            stand_in.loaded.set_exception(exc)
            message = f"No model could be loaded at start ({exc}); photos cannot be answered until one loads."
            log.error("%s", message)
            await self._report(message)
            return
        if stand_in is not None:
            stand_in.loaded.set_result(self.current)

    async def _fall_back(self, error: str) -> None:
        """Serve the first loadable version of the broken active one's rollback chain (then v0)."""
        broken = await self._storage.in_thread(model_versions.get_active)
        if broken is None:
            return
        chain = await self._storage.in_thread(
            lambda s: model_versions.fallback_chain(s, start_id=broken.id)
        )
        for candidate in chain:
            try:
                classifier = await asyncio.to_thread(self._load_and_warm, candidate)
            except Exception as exc:  # noqa: BLE001 - try the next one down the chain
                log.warning("fallback model v%s cannot be loaded either: %s", candidate.id, exc)
                continue
            reason = f"could not be loaded at start: {error}"
            try:
                active = await self._storage.in_thread(
                    lambda s, c=candidate: model_versions.fall_back(s, broken_id=broken.id, reason=reason, target_id=c.id),
                )
            except model_versions.ActivationConflict:  # another replica fell back (or someone activated) first
                await self.refresh()
                if self.serving:
                    return
                active = candidate
            self._current, self._version = classifier, active
            message = (
                f"Model v{broken.id} could not be loaded at start ({error}); serving v{active.id} instead, "
                f"now the active version. Fix it and run `bearbot models activate {broken.id}` to go back."
            )
            log.error("%s", message)
            await self._report(message)
            return

    async def refresh(self) -> SwapResult:
        """Load and swap in the active version if it differs from the serving one."""
        async with self._lock:
            active = await self._storage.in_thread(model_versions.get_active)
            previous = self._version.id if self._version else None
            if active is None:
                return SwapResult(False, previous, previous, error="no active model version")
            if active.id == previous:
                return SwapResult(False, previous, previous)
            key = (active.id, active.sha256)
            failures, next_try = self._failed.get(key, (0, 0.0))
            if failures and time.monotonic() < next_try:
                return SwapResult(False, previous, previous, error="failed before; retried later")
            started = time.perf_counter()
            try:
                # A thread of its own: loading must not take a slot from the predictions being served.
                classifier = await asyncio.to_thread(self._load_and_warm, active)
            except Exception as exc:  # noqa: BLE001 - any load failure must leave the old model serving
                delay = min(self.retry_seconds * 2**failures, 3600.0)
                self._failed[key] = (failures + 1, time.monotonic() + delay)
                if failures == 0 and previous is None:  # at start: start() falls back and tells
                    log.error("model v%s could not be loaded: %s", active.id, exc)
                elif failures == 0:  # told once; the retries are logged only
                    message = f"Model v{active.id} could not be loaded ({exc}); still serving v{previous}."
                    log.error("%s", message, exc_info=not isinstance(exc, ModelLoadError))
                    await self._record(active.id, str(exc))
                    await self._report(message)
                else:
                    log.warning("model v%s still cannot be loaded (try %d): %s", active.id, failures + 1, exc)
                return SwapResult(False, previous, previous, error=str(exc))
            if key in self._failed or active.load_error:
                self._failed.pop(key, None)
                await self._record(active.id, None)
            load_s = time.perf_counter() - started
            swap_started = time.perf_counter()
            self._current, self._version = classifier, active  # the swap: one reference each
            pause_ms = (time.perf_counter() - swap_started) * 1000
            was = f"was v{previous}" if previous is not None else "first load"
            log.info("serving model v%s (%s; loaded and warmed in %.2f s)", active.id, was, load_s)
            return SwapResult(True, active.id, previous, pause_ms=pause_ms)

    async def poll(self, _context: object = None) -> None:
        """Scheduler job: start a check of the active version unless one is still running.

        The check runs as its own task so a slow load never keeps the job "running" (APScheduler
        would log every skipped poll meanwhile).
        """
        if self._poll_task is None or self._poll_task.done():
            self._poll_task = asyncio.create_task(self._poll_once(), name="model-poll")

    async def _poll_once(self) -> None:
        try:
            await self.refresh()
        except Exception:  # noqa: BLE001 - a DB hiccup must not stop future polls
            log.exception("model poll failed")

    async def stop(self) -> None:
        """Wait for a first load or a check in progress (called at shutdown)."""
        for task in (self._start_task, self._poll_task):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    # --- internals --------------------------------------------------------------------------
    def _load_and_warm(self, version: ModelVersion) -> Classifier:
        classifier = self._loader(version)
        # A loader may leave the ONNX export to us (load_classifier(defer_export=True)). On a swap the old
        # model serves at full speed until the new one is exported; with nothing serving yet (a first
        # start) the eager model answers at once and the graph takes over when a child process made it.
        first = not self.serving
        if not first and (export_now := getattr(classifier, "export_now", None)) is not None:
            export_now()
        answer = classifier.predict(warmup_image())
        if answer.model_version not in (None, version.id):
            raise ModelLoadError(f"loaded model reports version {answer.model_version}, expected {version.id}")
        if first and (export_later := getattr(classifier, "export_in_background", None)) is not None:
            export_later()
        return classifier

    async def _record(self, version_id: int, error: str | None) -> None:
        """Note on the version's row whether it loads (best effort: serving matters more)."""
        try:
            await self._storage.in_thread(
                lambda s: model_versions.record_load(s, version_id=version_id, error=error)
            )
        except Exception:  # noqa: BLE001
            log.warning("could not record the load outcome of model v%s", version_id, exc_info=True)

    async def _report(self, message: str) -> None:
        if self.report is None:
            return
        try:
            await self.report(message)
        except Exception:  # noqa: BLE001 - reporting is best effort
            log.exception("could not report model problem")
