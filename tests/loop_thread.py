"""A bot under test on its own event loop in a background thread (the Telegram and Discord harnesses)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session


class LoopThread:
    """Runs :meth:`serve` on a fresh event loop in a daemon thread, so a test can talk to the bot
    from its own thread: :meth:`start_loop` returns once ``serve`` calls ``ready``, :meth:`stop_loop`
    sets ``stop`` and joins. An exception in the loop is raised in the test thread (by
    :meth:`start_loop`, or :meth:`raise_error` after stopping)."""

    thread_name = "bot"
    services: Any = None  # core.services.Services once serve() made them

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    async def serve(self, ready: Callable[[], None], stop: asyncio.Event) -> None:
        """Start the bot, call ``ready()``, and run until ``stop`` is set."""
        raise NotImplementedError

    def start_loop(self, *, timeout: float = 120.0) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.thread_name} did not get ready")
        self.raise_error()

    def stop_loop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - surfaced in the test thread
            self._error = exc
        finally:  # also when serve() failed before it was ready: start_loop then raises the error
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        await self.serve(self._ready.set, self._stop)

    # --- helpers for tests ------------------------------------------------------------------
    def call(self, fn: Callable[..., Any]) -> Any:
        """Run the coroutine function ``fn`` on the bot's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(60)

    def db(self, fn: Callable[[Session], Any]) -> Any:
        """``fn(session)`` on the bot's database."""
        assert self.services is not None
        with self.services.storage.session() as session:
            return fn(session)
