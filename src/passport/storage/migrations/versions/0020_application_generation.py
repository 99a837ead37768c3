"""A generation number for applications, so that client authentication can be cached

``application_generation``: one row (``id`` 1) whose ``value`` every change to an
application, its resource identifiers or its resource clients increments in its own
transaction (:func:`passport.storage.db.bump_application_generation`).  A process may
reuse what an earlier client authentication found only while the value is unchanged
(:class:`passport.services.clients.ClientCache`), so the cache never outlives a
disabled application or a rotated secret.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "application_generation",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("application_generation")
