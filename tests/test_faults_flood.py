"""Fault suite, floods: Telegram's 429 in one chat, users who send chatter the bot would answer, and
per-user limits that every replica shares (counted in the database, storage/limits.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from bot.limits import SharedLimit
from storage.limits import wait_seconds
from storage.models import RateCounter
from storage.store import Storage
from tests.bot_harness import ALICE, BOB, RunningBot, eventually
from tests.bot_harness import bot, loader  # noqa: F401 - pytest fixtures
from tests.test_faults_queue import pg_url, store  # noqa: F401 - storage on SQLite and on PostgreSQL


def test_a_429_in_one_chat_does_not_delay_another(bot: RunningBot) -> None:
    bot.api.fail_next("sendMessage", retry_after=3)
    start = time.monotonic()
    alice = bot.send(ALICE, text="/help")
    eventually(lambda: any(m == "sendMessage" for m, _ in bot.api.calls), timeout=10)  # Alice's answer got the 429
    bob_answer = bot.reply(bot.send(BOB, text="/help"))
    assert bob_answer.at - start < 2.0, f"Bob waited {bob_answer.at - start:.1f} s for Alice's flood control"
    alice_answer = bot.reply(alice)
    assert alice_answer.at - start >= 2.9  # Alice's own answer honours the retry_after
    assert alice_answer.text.startswith("Send me a photo")


def test_stickers_text_and_unknown_commands_are_throttled_per_user(bot: RunningBot) -> None:
    limit = bot.settings.chatter_per_minute
    kinds = [{"sticker": True}, {"text": "hello bear"}, {"text": "/nonsense"}]
    messages = [bot.send(ALICE, **kinds[i % 3]) for i in range(limit + 8)]
    answered = eventually(lambda: len([m for m in messages if bot.api.replies_to(m["message_id"])]) >= limit)
    assert answered
    bob = bot.reply(bot.send(BOB, sticker=True))  # someone else is answered meanwhile
    assert bob.text
    time.sleep(1.0)  # every update of Alice's has been handled by now
    assert len([m for m in messages if bot.api.replies_to(m["message_id"])]) == limit
    assert bot.reply(bot.send(ALICE, text="/help")).text.startswith("Send me a photo")  # real commands still work


class Clock:
    """Wall-clock time the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _hits(limit: SharedLimit, key: int | str, n: int) -> list[float]:
    async def go() -> list[float]:
        return [await limit.hit(key) for _ in range(n)]

    return asyncio.run(go())


def test_a_limit_is_shared_by_replicas_and_slides(storage: Storage) -> None:
    clock = Clock(60 * 20_000 + 20.0)  # a third into a 60 s window
    replica_a, replica_b = (SharedLimit(storage, "photos", 3, clock=clock) for _ in range(2))
    assert _hits(replica_a, 42, 3) == [0.0, 0.0, 0.0]
    wait = _hits(replica_b, 42, 1)[0]  # the other replica knows Alice used her three
    assert 59 < wait < 61, wait  # the window's three hits slide out only in the next window
    assert _hits(replica_b, 43, 1) == [0.0]  # someone else is not affected
    clock.now += 41  # 1 s into the next window: the previous window still weighs ~98 %
    assert _hits(replica_b, 42, 1)[0] > 0
    clock.now += 20  # a third into it: a third of the old hits slid out, room for one
    first, second = _hits(replica_a, 42, 2)
    assert first == 0.0 and second > 0
    clock.now += 120  # two windows later everything is forgotten, and purged on the next hit
    replica_c = SharedLimit(storage, "photos", 3, clock=clock)
    assert _hits(replica_c, 42, 3) == [0.0, 0.0, 0.0]
    with storage.session() as s:
        assert s.scalar(select(func.count()).select_from(RateCounter)) == 1  # only this window's row is left


def test_racing_replicas_never_pass_the_limit(store: Storage) -> None:  # noqa: F811
    """Eight hits released at once from eight threads (each its own replica): exactly the limit passes,
    on SQLite and on PostgreSQL (one atomic upsert per hit)."""
    limits = [SharedLimit(store, "corrections", 5) for _ in range(8)]
    barrier = threading.Barrier(8)

    def hit(i: int) -> float:
        barrier.wait()
        return asyncio.run(limits[i].hit("telegram:7"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(hit, range(8)))
    assert sorted(w == 0.0 for w in waits) == [False] * 3 + [True] * 5


def test_wait_seconds_is_when_the_next_hit_fits() -> None:
    # 3 allowed, 3 in the previous window, none now, a quarter gone: 3 * 0.75 rounds up to 3; room at 1/3.
    assert abs(wait_seconds(previous=3, current=0, limit=3, elapsed=0.25, window=60) - 5.0) < 1e-9
    # Full in this window: only in the next one, as soon as any of these hits slid out.
    assert abs(wait_seconds(previous=0, current=3, limit=3, elapsed=0.5, window=60) - (30 + 20)) < 1e-9
