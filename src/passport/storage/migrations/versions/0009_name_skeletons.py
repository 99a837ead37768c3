"""Group, application and permission names compared by their confusable skeleton

As 0008 did for usernames: adds ``name_skeleton`` (``passport.lookalikes.lookalike_key``:
SHA-256 of the UTS #39 section 4 skeleton, folded) to ``applications`` and ``groups``
under a unique index, and to ``permissions`` unique per application, so that the
database refuses a name that looks like an existing one (``Admins`` with a
CYRILLIC CAPITAL LETTER A next to ``Admins``).  Existing rows get their key
computed here.  Where two existing rows already look alike, both keep working:
the first (lowest id) gets the plain key, each later one ``<key>:<id>``, and one
log line names their ids so that an administrator can rename them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

from passport.lookalikes import lookalike_key

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("passport.migrate")

# Every one of these tables has an integer id: SQLite rebuilds it in batch mode, and
# must keep 0006's AUTOINCREMENT (ids never reused).
_KEEP_IDS = {"sqlite_autoincrement": True}


def _fill(table_name: str, scoped_by: str | None) -> list[int]:
    """Compute every row's key; a later look-alike (within its scope) gets ``<key>:<id>``.
    Returns the ids of those kept apart."""
    columns: list[sa.ColumnClause[Any]] = [
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String(100)),
    ]
    if scoped_by is not None:
        columns.append(sa.column(scoped_by, sa.Integer()))
    table = sa.table(table_name, *columns, sa.column("name_skeleton", sa.String(80)))
    scope = table.c[scoped_by] if scoped_by is not None else sa.literal(0)
    conn = op.get_bind()
    taken: set[tuple[object, str]] = set()
    kept_apart: list[int] = []
    rows = conn.execute(sa.select(table.c.id, table.c.name, scope).order_by(table.c.id)).all()
    for row_id, name, within in rows:
        key = lookalike_key(name)
        if (within, key) in taken:
            kept_apart.append(row_id)
            key = f"{key}:{row_id}"
        taken.add((within, key))
        conn.execute(sa.update(table).where(table.c.id == row_id).values(name_skeleton=key))
    return kept_apart


def upgrade() -> None:
    for table_name in ("applications", "groups", "permissions"):
        with op.batch_alter_table(table_name, table_kwargs=_KEEP_IDS) as batch:
            batch.add_column(sa.Column("name_skeleton", sa.String(80), nullable=True))

    kept_apart = {
        "applications": _fill("applications", None),
        "groups": _fill("groups", None),
        "permissions": _fill("permissions", "application_id"),
    }
    named = [f"{t} {', '.join(map(str, ids))}" for t, ids in kept_apart.items() if ids]
    if named:
        log.warning(
            "look-alike names kept apart (%s): they look like earlier names of their kind; "
            "both keep working, consider renaming",
            "; ".join(named),
        )

    for table_name in ("applications", "groups"):
        with op.batch_alter_table(table_name, table_kwargs=_KEEP_IDS) as batch:
            batch.alter_column("name_skeleton", existing_type=sa.String(80), nullable=False)
            batch.create_unique_constraint(
                op.f(f"uq_{table_name}_name_skeleton"), ["name_skeleton"]
            )
    with op.batch_alter_table("permissions", table_kwargs=_KEEP_IDS) as batch:
        batch.alter_column("name_skeleton", existing_type=sa.String(80), nullable=False)
        batch.create_unique_constraint(
            op.f("uq_permissions_application_id_name_skeleton"),
            ["application_id", "name_skeleton"],
        )


def downgrade() -> None:
    with op.batch_alter_table("permissions", table_kwargs=_KEEP_IDS) as batch:
        batch.drop_constraint(op.f("uq_permissions_application_id_name_skeleton"), type_="unique")
        batch.drop_column("name_skeleton")
    for table_name in ("groups", "applications"):
        with op.batch_alter_table(table_name, table_kwargs=_KEEP_IDS) as batch:
            batch.drop_constraint(op.f(f"uq_{table_name}_name_skeleton"), type_="unique")
            batch.drop_column("name_skeleton")
