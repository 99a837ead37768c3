"""Who may sign in to an application, and the sites Passport guards at a reverse proxy

* ``applications.sign_in_policy``: who may sign in to it — ``anyone`` (every existing
  application: nothing changes), ``groups`` (members of the groups in
  ``application_sign_in_groups``) or ``permission`` (holders of its permission
  ``applications.sign_in_permission``), decided by :mod:`passport.services.access`;
* ``application_sign_in_groups``: those groups (both sides cascade: a deleted group
  or application leaves no row behind);
* ``forward_auth_hosts``: the host names of a site protected by forward-auth, each
  belonging to one application (the primary key), the only hosts a sign-in may
  return to through the forward-auth flow;
* ``applications.forward_auth_rules``: its path rules ("``/admin/*`` needs the
  permission ``admin``"), JSON text like the other lists of an application.

Columns are added with ``ALTER TABLE ... ADD COLUMN`` (no SQLite table rebuild).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("sign_in_policy", sa.String(16), nullable=False, server_default="anyone"),
    )
    op.add_column("applications", sa.Column("sign_in_permission", sa.String(100), nullable=True))
    op.add_column(
        "applications",
        sa.Column("forward_auth_rules", sa.Text(), nullable=False, server_default="[]"),
    )
    op.create_table(
        "application_sign_in_groups",
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_application_sign_in_groups_application_id_applications",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name="fk_application_sign_in_groups_group_id_groups",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("application_id", "group_id", name="pk_application_sign_in_groups"),
    )
    op.create_index(
        "ix_application_sign_in_groups_group_id", "application_sign_in_groups", ["group_id"]
    )
    op.create_table(
        "forward_auth_hosts",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_forward_auth_hosts_application_id_applications",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host", name="pk_forward_auth_hosts"),
    )
    op.create_index(
        "ix_forward_auth_hosts_application_id", "forward_auth_hosts", ["application_id"]
    )


def downgrade() -> None:
    # The indexes go with their tables (MariaDB refuses to drop one first: its foreign
    # key needs it).
    op.drop_table("forward_auth_hosts")
    op.drop_table("application_sign_in_groups")
    with op.batch_alter_table("applications", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("forward_auth_rules")
        batch.drop_column("sign_in_permission")
        batch.drop_column("sign_in_policy")
