"""Per-user limits (photos, corrections, chatter), counted in the database so replicas share them.

Each hit is one short transaction on a worker thread (:func:`storage.limits.hit`); the event
loop never waits on the database. Wall-clock time, not a monotonic clock: the windows must mean
the same thing to every process and host.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from bearbot.settings import Settings
from storage import limits
from storage.store import Storage

PURGE_SECONDS = 60.0  # how often one process deletes counts that no longer matter


class SharedLimit:
    """At most ``limit`` events of ``kind`` per ``window`` seconds per key, across every replica."""

    def __init__(
        self, storage: Storage, kind: str, limit: int, *, window: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.storage = storage
        self.kind = kind
        self.limit = limit
        self.window = window
        self._clock = clock
        self._purged_at = float("-inf")

    def _hit(self, session: Session, *, subject: str, now: float, purge: bool) -> float:
        if purge:
            limits.purge(session, kind=self.kind, window=self.window, now=now)
        return limits.hit(session, kind=self.kind, subject=subject, limit=self.limit, window=self.window, now=now)

    async def hit(self, key: int | str) -> float:
        """Record one event for ``key``; return 0 when allowed, else the seconds until it would be."""
        now = self._clock()
        purge = now - self._purged_at >= PURGE_SECONDS
        if purge:
            self._purged_at = now
        return await self.storage.in_thread(self._hit, subject=str(key), now=now, purge=purge)


class UserLimits:
    """The bot's per-user limits, sized from settings."""

    def __init__(self, storage: Storage, *, photos_per_minute: int, corrections_per_minute: int, chatter_per_minute: int) -> None:
        self.photos = SharedLimit(storage, "photos", photos_per_minute)
        self.corrections = SharedLimit(storage, "corrections", corrections_per_minute)
        self.chatter = SharedLimit(storage, "chatter", chatter_per_minute)

    @classmethod
    def for_settings(cls, storage: Storage, settings: Settings) -> UserLimits:
        return cls(
            storage, photos_per_minute=settings.photos_per_minute,
            corrections_per_minute=settings.corrections_per_minute, chatter_per_minute=settings.chatter_per_minute,
        )

