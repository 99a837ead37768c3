"""Usernames compared by their confusable skeleton (look-alikes collide)

Adds ``users.username_skeleton`` (``passport.lookalikes.lookalike_key``: SHA-256 of
the UTS #39 skeleton, folded) under a unique index, so that the database refuses a
name that looks like an existing one.  Existing users get their key computed here.
Where two existing users already look alike, both keep working: the first (lowest
id) gets the plain key, each later one ``<key>:<id>``, and one log line names their
ids so that an administrator can rename them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from passport.lookalikes import lookalike_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

log = logging.getLogger("passport.migrate")

users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("username", sa.String(64)),
    sa.column("username_skeleton", sa.String(80)),
)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username_skeleton", sa.String(80), nullable=True))

    conn = op.get_bind()
    taken: set[str] = set()
    kept_apart: list[int] = []
    rows = conn.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    for user_id, username in rows:
        key = lookalike_key(username)
        if key in taken:
            kept_apart.append(user_id)
            key = f"{key}:{user_id}"
        taken.add(key)
        conn.execute(sa.update(users).where(users.c.id == user_id).values(username_skeleton=key))
    if kept_apart:
        log.warning(
            "users %s look like earlier usernames; both keep working, consider renaming",
            ", ".join(str(i) for i in kept_apart),
        )

    # SQLite rebuilds the table here: keep 0006's AUTOINCREMENT (ids never reused).
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("username_skeleton", existing_type=sa.String(80), nullable=False)
        batch.create_unique_constraint(op.f("uq_users_username_skeleton"), ["username_skeleton"])


def downgrade() -> None:
    with op.batch_alter_table("users", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f("uq_users_username_skeleton"), type_="unique")
        batch.drop_column("username_skeleton")
