"""Hold a training run's lease while it executes: a thread renews its heartbeat in the database."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from storage import runs
from storage.store import Storage

log = logging.getLogger(__name__)


@contextmanager
def holding(storage: Storage, *, run_id: int, worker: str, every: float) -> Iterator[threading.Event]:
    """Renew ``worker``'s lease on ``run_id`` every ``every`` seconds until the block ends.

    Yields an event that is set when the lease is lost (the run was failed as stale meanwhile);
    the outcome is then refused by :func:`storage.runs.finish_run` anyway.
    """
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with storage.session() as session:
                    held = runs.heartbeat(session, run_id=run_id, worker=worker)
            except Exception:  # noqa: BLE001 - a DB hiccup: try again next beat, the lease has slack
                log.warning("could not renew the lease on training run #%s", run_id, exc_info=True)
                continue
            if not held:
                log.error("training run #%s: lease lost; its outcome will not be recorded", run_id)
                lost.set()
                return

    thread = threading.Thread(target=beat, name=f"lease-run-{run_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
