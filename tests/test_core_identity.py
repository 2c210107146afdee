"""Identity across transports: migration 0006 keeps Telegram's rows and separates other transports."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bearbot.settings import Settings
from storage.db import downgrade, make_engine, make_session_factory, upgrade
from storage.models import TrainingRun, User
from storage.users import get_user, upsert_user

try:
    from tests.test_postgres import pg_url
except pytest.skip.Exception:  # no psycopg: only the PostgreSQL case is skipped, not this module

    @pytest.fixture
    def pg_url() -> str:
        pytest.skip("psycopg is not installed")


def _rows_kept_as_telegram(url: str, start: str) -> None:
    """Telegram rows written before 0006 are Telegram's after it; the ids and the run's chat stay."""
    upgrade(url, start)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, telegram_id, display_name, role, created_at, notify_learned) "
                          "VALUES (1, 2001, '@alice', 'user', CURRENT_TIMESTAMP, TRUE)"))
        conn.execute(text("INSERT INTO training_runs (id, trigger, status, requested_by, requested_chat_id, created_at, "
                          "notified, lane, metrics) VALUES (1, 'admin', 'succeeded', 1, 2001, CURRENT_TIMESTAMP, FALSE, 'train', '{}')"))
    upgrade(url)
    factory = make_session_factory(engine)
    with factory() as session:
        alice = get_user(session, external_id=2001)
        assert alice is not None and alice.id == 1 and alice.transport == "telegram"
        run = session.get(TrainingRun, 1)
        assert run is not None and (run.requested_transport, run.requested_chat_id) == ("telegram", 2001)
    engine.dispose()


@pytest.mark.parametrize("start", ["0004", "0005"])  # from 0004, 0005's UPDATE opens the transaction first
def test_0006_keeps_existing_rows_as_telegram(settings: Settings, start: str) -> None:
    _rows_kept_as_telegram(settings.db_url, start)


@pytest.mark.slow
def test_0006_keeps_existing_rows_on_postgres(pg_url: str) -> None:
    downgrade(pg_url, "base")
    _rows_kept_as_telegram(pg_url, "0005")
    downgrade(pg_url, "0005")  # and back: one id space again, the row intact
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT telegram_id FROM users WHERE id = 1")).scalar() == 2001
    engine.dispose()


def test_same_number_on_two_transports_is_two_users(storage: object) -> None:
    with storage.session() as session:  # type: ignore[attr-defined]
        tg = upsert_user(session, external_id=2**62 + 5, display_name="@ann", is_admin=False)
        dc = upsert_user(session, external_id=2**62 + 5, display_name="ann#1", is_admin=True, transport="discord")
        assert tg.id != dc.id and (tg.transport, dc.transport) == ("telegram", "discord")
        assert upsert_user(session, external_id=2**62 + 5, display_name="ann", is_admin=True, transport="discord").id == dc.id
    with pytest.raises(IntegrityError), storage.session() as session:  # type: ignore[attr-defined]
        session.add(User(transport="discord", external_id=2**62 + 5, display_name="dup"))
        session.flush()
