"""Senders as user rows, and as keys of the per-user limits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.events import Sender
from storage.users import upsert_user


def upsert(session: Session, sender: Sender) -> int:
    """``users.id`` for ``sender`` (created, or refreshed with its name and role)."""
    return upsert_user(
        session, transport=sender.transport, external_id=sender.id, display_name=sender.name, is_admin=sender.is_admin
    ).id


def limit_key(sender: Sender) -> str:
    """Whose limit a hit counts against (a Telegram id and a Discord id never share one)."""
    return f"{sender.transport}:{sender.id}"
