"""Pending authorizations kept on the server (consent and login state of /oauth2/authorize)

* ``pending_authorizations``: one ``/oauth2/authorize`` request between its pages, so
  that whether the user signed in afresh and allowed the application is known to the
  server only (never a parameter the client sets); single use, bound to the browser
  and the login session.
* ``applications.scopes``: the scopes an application was registered for (RFC 7591 §2
  ``scope``), which bound what the client credentials grant issues.  Existing
  applications get none.

On SQLite the column is added with ``ALTER TABLE ... ADD COLUMN`` (no table rebuild).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications", sa.Column("scopes", sa.Text(), nullable=False, server_default="[]")
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("applications", "scopes", server_default=None)
    op.create_table(
        "pending_authorizations",
        sa.Column("handle_hash", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=True),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("state", sa.String(2048), nullable=True),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("prompt", sa.String(64), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("login_hint", sa.String(254), nullable=True),
        sa.Column("login_required", sa.Boolean(), nullable=False),
        sa.Column("logged_in_at", sa.DateTime(), nullable=True),
        sa.Column("consented_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_pending_authorizations_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handle_hash", name=op.f("pk_pending_authorizations")),
    )
    for column in ("application_id", "expires_at"):
        op.create_index(
            op.f(f"ix_pending_authorizations_{column}"), "pending_authorizations", [column]
        )


def downgrade() -> None:
    op.drop_table("pending_authorizations")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("scopes")
