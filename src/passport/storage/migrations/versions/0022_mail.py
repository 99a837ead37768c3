"""Mail: a durable outbox, single-use links, invitations, verified addresses

* ``mail_outbox``: messages written in the transaction of the operation that causes
  them and sent by the background worker (:mod:`passport.services.mail`).
* ``email_links``: the SHA-256 of each link sent by mail (verify an address, reset a
  password, accept an invitation), single use, hours long.
* ``invitations`` and ``invitation_groups``: an administrator's invitation of a person
  by email, with the groups they join.
* ``users.email_verified`` (false for every existing user: nobody has proved an
  address yet).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _user(column: str, table: str, ondelete: str) -> sa.Column[int]:
    return sa.Column(
        column,
        sa.Integer(),
        sa.ForeignKey("users.id", ondelete=ondelete, name=f"fk_{table}_{column}_users"),
        nullable=True,
    )


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("email_key", sa.String(254), nullable=False),
        _user("invited_by", "invitations", "SET NULL"),
        sa.Column("inviter", sa.String(100), nullable=False),
        _user("user_id", "invitations", "SET NULL"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_invitations_email_key", "invitations", ["email_key"])
    op.create_index("ix_invitations_expires_at", "invitations", ["expires_at"])
    op.create_table(
        "invitation_groups",
        sa.Column(
            "invitation_id",
            sa.Integer(),
            sa.ForeignKey(
                "invitations.id",
                ondelete="CASCADE",
                name="fk_invitation_groups_invitation_id_invitations",
            ),
            primary_key=True,
        ),
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey(
                "groups.id", ondelete="CASCADE", name="fk_invitation_groups_group_id_groups"
            ),
            primary_key=True,
        ),
    )
    op.create_index("ix_invitation_groups_group_id", "invitation_groups", ["group_id"])
    op.create_table(
        "email_links",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        _user("user_id", "email_links", "CASCADE"),
        sa.Column(
            "invitation_id",
            sa.Integer(),
            sa.ForeignKey(
                "invitations.id",
                ondelete="CASCADE",
                name="fk_email_links_invitation_id_invitations",
            ),
            nullable=True,
        ),
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_email_links_user_id", "email_links", ["user_id"])
    op.create_index("ix_email_links_invitation_id", "email_links", ["invitation_id"])
    op.create_index("ix_email_links_expires_at", "email_links", ["expires_at"])
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("recipient_key", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mail_outbox_user_id", "mail_outbox", ["user_id"])
    op.create_index("ix_mail_outbox_recipient_key", "mail_outbox", ["recipient_key"])
    op.create_index("ix_mail_outbox_next_attempt_at", "mail_outbox", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("mail_outbox")
    op.drop_table("email_links")
    op.drop_table("invitation_groups")
    op.drop_table("invitations")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified")
