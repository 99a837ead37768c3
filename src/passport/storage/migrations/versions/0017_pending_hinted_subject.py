"""The subject an ``id_token_hint`` named, kept with the pending authorization

``pending_authorizations.hinted_subject``: the ``sub`` of the ID token the client gave
as ``id_token_hint`` (OIDC Core §3.1.2.1), so that when someone signs in on the way, the
authorization goes on only if it is that user (else ``login_required`` to the client).
Nullable: a pending authorization from before, or without a hint, names no one.
Added with ``ALTER TABLE ... ADD COLUMN`` (no SQLite table rebuild).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "pending_authorizations", sa.Column("hinted_subject", sa.String(64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("pending_authorizations") as batch:
        batch.drop_column("hinted_subject")
