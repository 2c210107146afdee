"""Users: created on first contact, one row per transport account, admins marked by the adapter."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import add_unique
from storage.models import Role, User

TELEGRAM = "telegram"


def upsert_user(
    session: Session, *, external_id: int | None = None, display_name: str, is_admin: bool, transport: str = TELEGRAM,
    telegram_id: int | None = None,
) -> User:
    """Return the user row for ``(transport, external_id)``, creating it or refreshing name and role.

    ``telegram_id`` is the older spelling of a Telegram ``external_id``. A new user's album arrives
    as several concurrent updates; only one of them creates the row.
    """
    uid = external_id if external_id is not None else telegram_id
    if uid is None:
        raise TypeError("upsert_user needs external_id")
    user = get_user(session, external_id=uid, transport=transport)
    role = Role.ADMIN if is_admin else Role.USER
    if user is None:
        new = User(transport=transport, external_id=uid, display_name=display_name[:256], role=role)
        user, created = add_unique(session, new, existing=lambda: get_user(session, external_id=uid, transport=transport))
        if created:
            return user
    user.display_name = display_name[:256] or user.display_name
    user.role = role
    return user


def get_user(
    session: Session, *, external_id: int | None = None, transport: str = TELEGRAM, telegram_id: int | None = None
) -> User | None:
    uid = external_id if external_id is not None else telegram_id
    return session.scalar(select(User).where(User.transport == transport, User.external_id == uid))
