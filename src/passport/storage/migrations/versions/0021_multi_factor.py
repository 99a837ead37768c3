"""Second factors: passkeys, authenticator apps, recovery codes, and what a sign-in used

* ``webauthn_credentials``, ``totp_credentials``, ``recovery_codes``: a user's factors
  (:mod:`passport.services.factors`); ``users.webauthn_handle``: the random WebAuthn
  user handle.
* ``sign_in_steps``: a sign-in or enrolment in progress (the half-way state after the
  password, WebAuthn challenges), single-use, minutes long.
* ``login_sessions.amr`` (RFC 8176 values; every existing session signed in with a
  password: "pwd"), and the same on the codes, token families and device
  authorizations made from a session, for the ID tokens' ``amr`` and ``acr``.
* ``pending_authorizations.acr_values`` (OIDC Core §3.1.2.1), ``applications.mfa_policy``
  ("default" for every existing application), ``groups.require_mfa`` (false).

Columns are added with ``ALTER TABLE ... ADD COLUMN`` (no SQLite table rebuild).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("webauthn_handle", sa.String(64), nullable=True))
    op.create_index("ix_users_webauthn_handle", "users", ["webauthn_handle"], unique=True)
    op.add_column(
        "login_sessions",
        sa.Column("amr", sa.String(64), nullable=False, server_default="pwd"),
    )
    for table in ("oauth_codes", "oauth_tokens", "device_authorizations"):
        op.add_column(table, sa.Column("amr", sa.String(64), nullable=True))
    op.add_column("pending_authorizations", sa.Column("acr_values", sa.String(255), nullable=True))
    op.add_column(
        "applications",
        sa.Column("mfa_policy", sa.String(16), nullable=False, server_default="default"),
    )
    op.add_column(
        "groups",
        sa.Column("require_mfa", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "webauthn_credentials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey(
                "users.id",
                ondelete="CASCADE",
                name="fk_webauthn_credentials_user_id_users",
            ),
            nullable=False,
        ),
        sa.Column("credential_id_hash", sa.String(64), nullable=False),
        sa.Column("credential_id", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(255), nullable=False),
        sa.Column("aaguid", sa.String(36), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint(
            "credential_id_hash", name="uq_webauthn_credentials_credential_id_hash"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webauthn_credentials_user_id", "webauthn_credentials", ["user_id"])
    op.create_table(
        "totp_credentials",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_totp_credentials_user_id_users"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_recovery_codes_user_id_users"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "sign_in_steps",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_sign_in_steps_user_id_users"),
            nullable=True,
        ),
        sa.Column("challenge", sa.String(128), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_sign_in_steps_user_id", "sign_in_steps", ["user_id"])
    op.create_index("ix_sign_in_steps_expires_at", "sign_in_steps", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sign_in_steps")
    op.drop_table("recovery_codes")
    op.drop_table("totp_credentials")
    op.drop_table("webauthn_credentials")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("require_mfa")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("mfa_policy")
    with op.batch_alter_table("pending_authorizations") as batch:
        batch.drop_column("acr_values")
    for table in ("device_authorizations", "oauth_tokens", "oauth_codes", "login_sessions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("amr")
    op.drop_index("ix_users_webauthn_handle", "users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("webauthn_handle")
