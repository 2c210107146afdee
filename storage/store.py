"""The storage bundle: engine, session factory and image store, opened from settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bearbot.settings import Settings
from storage.db import make_engine, make_session_factory, session_scope, upgrade
from storage.images import ImageStore


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

    def close(self) -> None:
        self.engine.dispose()


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
