"""Users: created on first contact, admins marked from settings."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import add_unique
from storage.models import Role, User


def upsert_user(session: Session, *, telegram_id: int, display_name: str, is_admin: bool) -> User:
    """Return the user row for ``telegram_id``, creating it or refreshing name and role.

    A new user's album arrives as several concurrent updates; only one of them creates the row.
    """
    user = get_user(session, telegram_id=telegram_id)
    role = Role.ADMIN if is_admin else Role.USER
    if user is None:
        new = User(telegram_id=telegram_id, display_name=display_name[:256], role=role)
        user, created = add_unique(session, new, existing=lambda: get_user(session, telegram_id=telegram_id))
        if created:
            return user
    user.display_name = display_name[:256] or user.display_name
    user.role = role
    return user


def get_user(session: Session, *, telegram_id: int) -> User | None:
    return session.scalar(select(User).where(User.telegram_id == telegram_id))

