"""Refresh tokens per application; the response mode of pending authorizations

* ``applications.refresh_tokens``: whether the code flow gives the application a
  refresh token whatever the scope.  When false, it gets one only for
  ``offline_access`` asked for and allowed (OpenID Connect Core §11).  Existing
  applications get true: they received refresh tokens before, and keep doing so.
* ``pending_authorizations.response_mode``: how the answer to a request that waits
  for its user goes back, ``query`` or ``form_post`` (OAuth 2.0 Form Post Response
  Mode).  Rows pending during the upgrade get ``query``, what they asked for.

On SQLite the columns are added with ``ALTER TABLE ... ADD COLUMN`` (no table
rebuild, so 0006's AUTOINCREMENT on ``applications`` stays as it is).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("refresh_tokens", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "pending_authorizations",
        sa.Column("response_mode", sa.String(16), nullable=False, server_default="query"),
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("applications", "refresh_tokens", server_default=None)
        op.alter_column("pending_authorizations", "response_mode", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("pending_authorizations") as batch:
        batch.drop_column("response_mode")
    with op.batch_alter_table("applications", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("refresh_tokens")
