"""Outgoing flood control: honour Telegram's ``RetryAfter`` by pausing all requests and retrying.

python-telegram-bot's own ``AIORateLimiter`` needs the ``aiolimiter`` extra; this bot sends
about one message per update, so reacting to ``RetryAfter`` (approach 1 in PTB's docs) is enough.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

JSON = bool | dict[str, Any] | list[dict[str, Any]]


def retry_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` as seconds (it is an int or a timedelta depending on settings)."""
    with warnings.catch_warnings():
        # PTB 22.2+ warns that the int form will become a timedelta; both are handled here.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class RetryAfterLimiter(BaseRateLimiter[None]):
    """Retries a request after Telegram's ``retry_after``; every other request waits meanwhile."""

    def __init__(self, *, max_retries: int = 3, max_wait: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._open = asyncio.Event()
        self._open.set()

    async def initialize(self) -> None:
        self._open.set()

    async def shutdown(self) -> None:
        self._open.set()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> JSON:
        """Call ``callback``; on ``RetryAfter`` pause everything for the asked time and try again."""
        for attempt in range(self.max_retries + 1):
            await self._open.wait()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_seconds(exc)
                if attempt == self.max_retries or wait > self.max_wait:
                    raise
                log.warning("flood control on %s: waiting %.1f s (attempt %d)", endpoint, wait, attempt + 1)
                self._open.clear()
                try:
                    await asyncio.sleep(wait)
                finally:
                    self._open.set()
        raise AssertionError("unreachable")
