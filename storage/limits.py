"""Per-user rate limits counted in the database, so every bot replica sees the same counts.

A sliding-window counter (the approximation Cloudflare describes for its rate limiting): hits
are counted per fixed window (``slot`` = unix time // window) and the previous window's count
weighs as much as the sliding window still overlaps it. The increment and the check are one
atomic ``INSERT … ON CONFLICT DO UPDATE … WHERE hits < allowed RETURNING`` (SQLite ≥ 3.35 and
PostgreSQL), so two replicas hit at once can never both take the last place. Rows older than
the previous window are deleted by :func:`purge`, so the table holds two windows of active users.
"""

from __future__ import annotations

import math

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import RateCounter


def _upsert_hit(session: Session, *, kind: str, subject: str, slot: int, allowed: int) -> bool:
    """Count one hit in ``slot`` unless it already holds ``allowed``; True when counted."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(RateCounter).values(kind=kind, subject=subject, slot=slot, hits=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateCounter.kind, RateCounter.subject, RateCounter.slot],
        set_={"hits": RateCounter.hits + 1},
        where=RateCounter.hits < allowed,
    ).returning(RateCounter.hits)
    return session.execute(stmt).scalar() is not None


def wait_seconds(*, previous: int, current: int, limit: int, elapsed: float, window: float) -> float:
    """Seconds until one more hit fits, with ``elapsed`` (0-1) of the current window gone."""
    room = limit - current - 1  # hits the previous window may still carry when the next one fits
    if room >= 0:  # fits later in this window, once enough of the previous one has slid out
        return max(0.0, (1.0 - room / previous - elapsed) * window) if previous else 0.0
    # Only in the next window, where this window's hits are the ones sliding out.
    return (1.0 - elapsed + max(0.0, 1.0 - (limit - 1) / current)) * window


def hit(session: Session, *, kind: str, subject: str, limit: int, window: float, now: float) -> float:
    """Record one event of ``kind`` for ``subject`` at unix time ``now`` if fewer than ``limit``
    happened in the last ``window`` seconds; return 0 when recorded, else the seconds to wait."""
    slot = int(now // window)
    elapsed = now / window - slot
    counts = dict(
        session.execute(
            select(RateCounter.slot, RateCounter.hits).where(
                RateCounter.kind == kind, RateCounter.subject == subject, RateCounter.slot.in_((slot - 1, slot))
            )
        ).all()
    )
    previous, current = counts.get(slot - 1, 0), counts.get(slot, 0)
    carried = math.ceil(previous * (1.0 - elapsed) - 1e-9)  # the previous window's hits still inside
    allowed = limit - carried
    if allowed > 0:
        if _upsert_hit(session, kind=kind, subject=subject, slot=slot, allowed=allowed):
            return 0.0
        current = max(current, allowed)  # another replica took the last place meanwhile
    return max(wait_seconds(previous=previous, current=current, limit=limit, elapsed=elapsed, window=window), 0.5)


def purge(session: Session, *, kind: str, window: float, now: float) -> int:
    """Delete ``kind``'s counts older than the previous window (they no longer count); returns rows."""
    result = session.execute(
        delete(RateCounter).where(RateCounter.kind == kind, RateCounter.slot < int(now // window) - 1)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
