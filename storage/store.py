"""The storage bundle: engine, session factory and image store, opened from settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bearbot.settings import Settings
from storage.db import make_engine, make_session_factory, session_scope, upgrade
from storage.images import ImageStore

T = TypeVar("T")


@dataclass
class Storage:
    """What every process needs to reach the database and the image files."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    images: ImageStore

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work that commits on success and rolls back on error."""
        with session_scope(self.sessions) as session:
            yield session

    async def in_thread(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``fn(session, **kwargs)`` in one :meth:`session` on a worker thread, so an event
        loop never waits on the database."""

        def work() -> T:
            with self.session() as session:
                return fn(session, **kwargs)

        return await asyncio.to_thread(work)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # also when the block raises (a command's ``fail``)


def open_storage(settings: Settings, *, migrate: bool = True) -> Storage:
    """Create the data dir, upgrade the schema (unless ``migrate=False``) and connect."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    return Storage(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        images=ImageStore(settings.images_dir, max_pixels=settings.max_image_pixels),
    )
