"""Flood control, outgoing: python-telegram-bot's ``AIORateLimiter`` keeps the bot under Telegram's limits (30
messages a second overall, 20 a minute per group) before it is told off. Its own retry on a 429
(``RetryAfter``) pauses every request of every chat, so this subclass retries by itself and pauses
only the chat the 429 was about: one flooded chat never delays another user's answer.

(Incoming chatter — replies to stickers, text, unknown commands — is limited per user by the core.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter
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


class PerChatRateLimiter(AIORateLimiter):
    """``AIORateLimiter`` whose retry after a 429 waits for that chat only."""

    def __init__(self, *, max_retries: int = 3, max_wait: float = 60.0) -> None:
        super().__init__(max_retries=0)  # the parent's retry would pause every chat
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._paused_until: dict[str, float] = {}

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSON]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSON:
        """Send through the parent's limiters; on ``RetryAfter`` wait (this chat only) and try again."""
        chat_id = data.get("chat_id")
        key = str(chat_id) if chat_id is not None else None
        group: int | str | bool = False
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)  # type: ignore[arg-type]
        if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str):
            group = chat_id  # groups and channels have their own per-minute limit
        loop = asyncio.get_running_loop()
        retries = self.max_retries if rate_limit_args is None else rate_limit_args
        for attempt in range(retries + 1):
            if key is not None and (wait := self._paused_until.get(key, 0.0) - loop.time()) > 0:
                await asyncio.sleep(wait)
            try:
                return await self._run_request(
                    chat=key is not None, group=group, allow_paid_broadcast=bool(data.get("allow_paid_broadcast")),
                    callback=callback, args=args, kwargs=kwargs,
                )
            except RetryAfter as exc:
                wait = retry_seconds(exc) + 0.1
                if attempt == retries or wait > self.max_wait:
                    raise
                log.warning("flood control on %s (chat %s): waiting %.1f s (attempt %d)", endpoint, key, wait, attempt + 1)
                if key is not None:
                    self._paused_until[key] = max(self._paused_until.get(key, 0.0), loop.time() + wait)
                    if len(self._paused_until) > 1000:  # forget chats whose pause is over
                        now = loop.time()
                        self._paused_until = {k: t for k, t in self._paused_until.items() if t > now}
                else:
                    await asyncio.sleep(wait)
        raise AssertionError("unreachable")
