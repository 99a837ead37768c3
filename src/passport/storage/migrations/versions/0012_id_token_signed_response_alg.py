"""Per-application ID token signature algorithm

Adds ``applications.id_token_signed_response_alg`` (OpenID Connect Dynamic Client
Registration 1.0 §2): the JWS algorithm of the application's ID tokens, and of its
JWT access tokens and logout tokens.  NULL, what every existing application gets,
means the server's ``signing_alg`` setting: what it was signed with until now, so
no relying party sees a change of algorithm from this migration.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# ``applications`` has an integer id: should SQLite rebuild it in batch mode, it must
# keep 0006's AUTOINCREMENT (ids never reused).
_KEEP_IDS = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("applications", table_kwargs=_KEEP_IDS) as batch:
        batch.add_column(sa.Column("id_token_signed_response_alg", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("applications", table_kwargs=_KEEP_IDS) as batch:
        batch.drop_column("id_token_signed_response_alg")
