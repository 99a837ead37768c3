"""Application credentials, permissions, groups and grants; Passport's own admin rights.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PASSPORT_PERMISSIONS = [
    ("admin", "Everything below, and granting it."),
    ("users:read", "See users, groups and memberships."),
    ("users:write", "Create, change, disable and delete users; reset passwords; log users out."),
    ("groups:write", "Create, change and delete groups and their members."),
    ("apps:read", "See applications and their permissions."),
    ("apps:write", "Create, change and delete applications, their permissions and grants."),
    ("audit:read", "Read the audit log."),
]


def upgrade() -> None:
    with op.batch_alter_table("applications") as batch:
        batch.add_column(sa.Column("redirect_uris", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("confidential", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("secret_hash", sa.String(255), nullable=True))
        batch.add_column(sa.Column("previous_secret_hash", sa.String(255), nullable=True))
        batch.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(), nullable=True))
        batch.create_unique_constraint(op.f("uq_applications_client_id"), ["client_id"])
    with op.batch_alter_table("applications") as batch:
        batch.alter_column("redirect_uris", server_default=None)
        batch.alter_column("confidential", server_default=None)
        batch.alter_column("enabled", server_default=None)

    permissions = op.create_table(
        "permissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_permissions_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint(
            "application_id", "name_key", name=op.f("uq_permissions_application_id")
        ),
    )
    op.create_index(op.f("ix_permissions_application_id"), "permissions", ["application_id"])
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("name_key", name=op.f("uq_groups_name_key")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_user_id"), "group_members", ["user_id"])
    op.create_table(
        "group_permissions",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("permission_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_permissions_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["permission_id"],
            ["permissions.id"],
            name=op.f("fk_group_permissions_permission_id_permissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "permission_id", name=op.f("pk_group_permissions")),
    )
    op.create_index(
        op.f("ix_group_permissions_permission_id"), "group_permissions", ["permission_id"]
    )
    op.create_table(
        "user_permissions",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("permission_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_permissions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["permission_id"],
            ["permissions.id"],
            name=op.f("fk_user_permissions_permission_id_permissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "permission_id", name=op.f("pk_user_permissions")),
    )
    op.create_index(
        op.f("ix_user_permissions_permission_id"), "user_permissions", ["permission_id"]
    )
    op.bulk_insert(
        permissions,
        [
            {"application_id": 1, "name": n, "name_key": n, "description": d}
            for n, d in PASSPORT_PERMISSIONS
        ],
    )


def downgrade() -> None:
    op.drop_table("user_permissions")
    op.drop_table("group_permissions")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("permissions")
    with op.batch_alter_table("applications") as batch:
        batch.drop_constraint(op.f("uq_applications_client_id"), type_="unique")
        for column in (
            "previous_secret_expires_at",
            "previous_secret_hash",
            "secret_hash",
            "client_id",
            "enabled",
            "confidential",
            "redirect_uris",
        ):
            batch.drop_column(column)
