"""OpenID Connect: signing keys, authorization codes, tokens, consents.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("use_after", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_index(op.f("ix_signing_keys_use_after"), "signing_keys", ["use_after"])
    with op.batch_alter_table("applications") as batch:
        batch.add_column(
            sa.Column("first_party", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("access_token_format", sa.String(8), nullable=False, server_default="jwt")
        )
    with op.batch_alter_table("applications") as batch:
        batch.alter_column("first_party", server_default=None)
        batch.alter_column("access_token_format", server_default=None)
    op.execute("UPDATE applications SET first_party = true WHERE id = 1")
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=True),
        sa.Column("auth_time", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        _fk("oauth_codes", "application_id", "applications"),
        _fk("oauth_codes", "user_id", "users"),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_oauth_codes")),
    )
    op.create_table(
        "oauth_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("auth_time", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("rotated_at", sa.DateTime(), nullable=True),
        sa.Column("successor", sa.Text(), nullable=True),
        _fk("oauth_tokens", "application_id", "applications"),
        _fk("oauth_tokens", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_oauth_tokens_token_hash")),
    )
    for column in ("application_id", "user_id", "family", "code_hash"):
        op.create_index(op.f(f"ix_oauth_tokens_{column}"), "oauth_tokens", [column])
    op.create_table(
        "consents",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        _fk("consents", "user_id", "users"),
        _fk("consents", "application_id", "applications"),
        sa.PrimaryKeyConstraint("user_id", "application_id", name=op.f("pk_consents")),
    )


def downgrade() -> None:
    op.drop_table("consents")
    op.drop_table("oauth_tokens")
    op.drop_table("oauth_codes")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("access_token_format")
        batch.drop_column("first_party")
    op.drop_table("signing_keys")
