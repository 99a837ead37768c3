"""SQLite repair: permissions lost to 0004's table rebuild; ids never reused

Two faults of SQLite databases made by earlier versions, repaired here:

* Migration 0004 rebuilt ``applications`` (Alembic batch mode) while foreign keys
  were on, and the ``DROP TABLE`` of that rebuild cascaded into ``permissions`` and
  from there into ``group_permissions`` and ``user_permissions``: a fresh database
  had none of Passport's own permissions (so ``passport admin create`` failed), and
  a database upgraded through 0004 lost every permission and every grant.  This
  migration re-creates the rows earlier migrations seeded (Passport's built-in
  permissions of 0003; the ``Passport`` application of 0001 was never at risk: a
  rebuild keeps the rebuilt table's own rows).  Permissions that applications
  defined themselves, and every grant, CANNOT be recovered: nothing in the database
  remembers them.  Restore them from a backup taken before the upgrade, or grant
  again (``passport grant add``, ``passport admin create``).  A repair is announced
  with one warning line.  On a healthy database, and always on MariaDB and
  PostgreSQL, the repair finds nothing to do.

* SQLite gives a new row the largest id plus one unless the table is declared
  ``AUTOINCREMENT``, so deleting the newest user handed their id -- and their
  OpenID Connect ``sub`` (``user-<id>``) -- to the next account, which OpenID
  Connect Core 1.0 §2 forbids ("never reassigned").  Every table with an integer
  surrogate id is rebuilt with ``AUTOINCREMENT`` (rows kept) and its counter is
  started at the largest id known, for ``users`` also the largest user id the audit
  log and the logout outbox remember, so ids deleted before this migration are not
  handed out again either.  MariaDB (InnoDB keeps AUTO_INCREMENT across restarts
  since 10.2) and PostgreSQL (sequences) never reused ids: nothing to do there.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("passport.migrate")

PASSPORT_APPLICATION_ID = 1
# Passport's built-in permissions exactly as migration 0003 seeded them.
PASSPORT_PERMISSIONS = [
    ("admin", "Everything below, and granting it."),
    ("users:read", "See users, groups and memberships."),
    ("users:write", "Create, change, disable and delete users; reset passwords; log users out."),
    ("groups:write", "Create, change and delete groups and their members."),
    ("apps:read", "See applications and their permissions."),
    ("apps:write", "Create, change and delete applications, their permissions and grants."),
    ("audit:read", "Read the audit log."),
]
# Tables whose primary key is an integer surrogate id, as of this revision.
SURROGATE_ID_TABLES = (
    "applications",
    "users",
    "audit_events",
    "permissions",
    "groups",
    "oauth_tokens",
    "logout_notifications",
)
# Other places that remember user ids of users that may have been deleted since.
REMEMBERED_USER_IDS = (
    ("audit_events", "user_id"),
    ("audit_events", "actor_id"),
    ("logout_notifications", "user_id"),
)


def upgrade() -> None:
    _restore_seeded_permissions()
    if op.get_bind().dialect.name == "sqlite":
        for table in SURROGATE_ID_TABLES:
            _rebuild_with_autoincrement(table)


def _restore_seeded_permissions() -> None:
    conn = op.get_bind()
    permissions = sa.table(
        "permissions",
        sa.column("application_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("name_key", sa.String),
        sa.column("description", sa.Text),
    )
    present = set(
        conn.scalars(
            sa.select(permissions.c.name_key).where(
                permissions.c.application_id == PASSPORT_APPLICATION_ID
            )
        )
    )
    missing = [(name, text) for name, text in PASSPORT_PERMISSIONS if name not in present]
    if not missing:
        return
    conn.execute(
        permissions.insert(),
        [
            {
                "application_id": PASSPORT_APPLICATION_ID,
                "name": name,
                "name_key": name,
                "description": text,
            }
            for name, text in missing
        ],
    )
    log.warning(
        "migration 0006 re-created %d of Passport's built-in permissions lost to an earlier "
        "SQLite migration; grants deleted with them cannot be recovered: restore them from a "
        "backup or grant again (passport admin create, passport grant add)",
        len(missing),
    )


def _rebuild_with_autoincrement(table: str) -> None:
    """Rebuild ``table`` as ``INTEGER PRIMARY KEY AUTOINCREMENT``, rows and ids kept.

    Runs with foreign keys off (passport.storage.migrate), so the rebuild's
    ``DROP TABLE`` deletes nothing that references ``table``.
    """
    conn = op.get_bind()
    definition = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).scalar_one()
    if "AUTOINCREMENT" not in str(definition).upper():
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    highest = conn.execute(sa.text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")).scalar_one()
    if table == "users":
        for other, column in REMEMBERED_USER_IDS:
            remembered = conn.execute(
                sa.text(f"SELECT COALESCE(MAX({column}), 0) FROM {other}")
            ).scalar_one()
            highest = max(highest, remembered)
    # sqlite_sequence holds the largest id ever handed out per AUTOINCREMENT table.
    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :name"), {"name": table})
    conn.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)"),
        {"name": table, "seq": highest},
    )


def downgrade() -> None:
    # Nothing to undo: the restored permissions are 0003's own rows, and AUTOINCREMENT
    # changes no schema the earlier revisions rely on.
    pass
