"""Per-user sliding-window limits (photos, corrections) kept in memory by the bot process."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimit:
    """At most ``limit`` events per ``window`` seconds per key."""

    def __init__(self, limit: int, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[int, deque[float]] = {}

    def hit(self, key: int) -> float:
        """Record one event for ``key``; return 0 when allowed, else the seconds until it would be."""
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        if len(events) >= self.limit:
            return max(0.0, self.window - (now - events[0]))
        events.append(now)
        if len(self._events) > 10_000:  # drop idle users so memory stays bounded
            self._events = {k: v for k, v in self._events.items() if v and now - v[-1] < self.window}
        return 0.0


class UserLimits:
    """The bot's per-user limits, sized from settings."""

    def __init__(self, *, photos_per_minute: int, corrections_per_minute: int) -> None:
        self.photos = SlidingWindowLimit(photos_per_minute)
        self.corrections = SlidingWindowLimit(corrections_per_minute)
