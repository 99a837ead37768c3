"""Pushed Authorization Requests (RFC 9126)

* ``pushed_authorization_requests``: an authorization request a client pushed to
  ``/oauth2/par`` (RFC 9126 §2), kept until ``/oauth2/authorize`` uses it (§4) or it
  expires (a minute).  The ``request_uri`` is stored only as its SHA-256 and the row is
  bound to the client that pushed it.  A table of its own, not ``pending_authorizations``:
  a pushed request has no browser yet (that table's rows are bound to one), is made by
  an authenticated client rather than a user's navigation, and lives a minute, not ten.
* ``applications.require_pushed_authorization_requests`` (RFC 9126 §6): when true the
  application's authorization requests must come through the PAR endpoint.  Existing
  applications get false: nothing changes for them.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column(
            "require_pushed_authorization_requests",
            sa.Boolean(),
            nullable=False,
            server_default=sa.false(),
        ),
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column(
            "applications", "require_pushed_authorization_requests", server_default=None
        )
    op.create_table(
        "pushed_authorization_requests",
        sa.Column("request_uri_hash", sa.String(64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_pushed_authorization_requests_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_uri_hash", name=op.f("pk_pushed_authorization_requests")),
    )
    for column in ("application_id", "expires_at"):
        op.create_index(
            op.f(f"ix_pushed_authorization_requests_{column}"),
            "pushed_authorization_requests",
            [column],
        )


def downgrade() -> None:
    op.drop_table("pushed_authorization_requests")
    with op.batch_alter_table("applications", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("require_pushed_authorization_requests")
