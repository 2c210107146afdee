"""Identity across transports: migration 0006 keeps Telegram's rows and separates other transports."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bearbot.settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import TrainingRun, User
from storage.users import get_user, upsert_user


@pytest.mark.parametrize("start", ["0004", "0005"])  # from 0004, 0005's UPDATE opens the transaction first
def test_0006_keeps_existing_rows_as_telegram(settings: Settings, start: str) -> None:
    url = settings.db_url
    upgrade(url, start)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id, telegram_id, display_name, role, created_at, notify_learned) "
                          "VALUES (1, 2001, '@alice', 'user', CURRENT_TIMESTAMP, 1)"))
        conn.execute(text("INSERT INTO training_runs (id, trigger, status, requested_by, requested_chat_id, created_at, "
                          "notified, lane, metrics) VALUES (1, 'admin', 'succeeded', 1, 2001, CURRENT_TIMESTAMP, 0, 'train', '{}')"))
    upgrade(url)
    factory = make_session_factory(engine)
    with factory() as session:
        alice = get_user(session, external_id=2001)
        assert alice is not None and alice.id == 1 and alice.transport == "telegram"
        run = session.get(TrainingRun, 1)
        assert run is not None and (run.requested_transport, run.requested_chat_id) == ("telegram", 2001)
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
