"""What the console's tests share: a SQLite harness, a user's id, an action on their page."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from oidc_support import form_of
from passport.storage.models import User

from support import Harness
from support import PassportClient


def user_id(h: Harness, name: str) -> int:
    with h.app.services.db.session() as db:
        return int(db.scalars(select(User.id).where(User.username == name)).one())


def disabled(h: Harness, name: str) -> bool:
    with h.app.services.db.session() as db:
        return bool(db.scalars(select(User.disabled).where(User.username == name)).one())


def act(client: PassportClient, h: Harness, name: str, **fields: str) -> Any:
    page = client.get(f"/admin/user?id={user_id(h, name)}")
    return client.post("/admin/user", data={**form_of(page), **fields})
