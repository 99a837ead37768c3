"""Who a session belongs to, as the hot path needs it: a few columns, no ORM entity."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import select

from passport.storage.models import User


@dataclass(frozen=True)
class Identity:
    """Who a session belongs to, as the hot path needs it (no ORM entity)."""

    id: int
    username: str
    email: str | None
    display_name: str
    # Default for identities a Redis session store kept from before migration 0022.
    email_verified: bool = False


_IDENTITY = select(
    User.id, User.username, User.email, User.display_name, User.email_verified
).where(User.id == bindparam("user_id"), User.disabled.is_(False))


def load_identity(conn: Connection, user_id: int) -> Identity | None:
    """The enabled user ``user_id`` as an :class:`Identity`, in one Core SELECT."""
    row = conn.execute(_IDENTITY, {"user_id": user_id}).first()
    if row is None:
        return None
    return Identity(row.id, row.username, row.email, row.display_name, bool(row.email_verified))


def identity_of(user: User) -> Identity:
    return Identity(
        user.id, user.username, user.email, user.display_name, bool(user.email_verified)
    )
