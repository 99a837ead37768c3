"""Device Authorization Grant (RFC 8628)

* ``applications.device_grant``: whether the application may use the grant; false for
  every existing application (an administrator switches it on, as Keycloak's
  per-client setting), so this migration changes nothing any client can do.
* ``device_authorizations``: one row per device authorization request, from the
  device's request (§3.1) to the redemption of its device code (§3.4), both codes
  kept only as their SHA-256.

On SQLite the column is added with ``ALTER TABLE ... ADD COLUMN`` (no table rebuild,
so 0006's AUTOINCREMENT on ``applications`` stays as it is).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("device_grant", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("applications", "device_grant", server_default=None)
    op.create_table(
        "device_authorizations",
        sa.Column("device_code_hash", sa.String(64), nullable=False),
        sa.Column("user_code_hash", sa.String(64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("auth_time", sa.DateTime(), nullable=True),
        sa.Column("sid", sa.String(32), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_device_authorizations_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_device_authorizations_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_code_hash", name=op.f("pk_device_authorizations")),
        sa.UniqueConstraint("user_code_hash", name=op.f("uq_device_authorizations_user_code_hash")),
    )
    for column in ("application_id", "expires_at"):
        op.create_index(
            op.f(f"ix_device_authorizations_{column}"), "device_authorizations", [column]
        )


def downgrade() -> None:
    op.drop_table("device_authorizations")
    with op.batch_alter_table("applications", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("device_grant")
