"""The client address a pushed authorization request or a device authorization came from

``pushed_authorization_requests.client_address`` and
``device_authorizations.client_address``: the address that asked, as every address
counter keys it (:func:`passport.services.throttle.address_of`: IPv6 as its /64), so
that a public client's live requests are capped per (client, address) before the
per-client cap (OWASP ASVS 5 §6.3.1: anti-automation without malicious lockout; RFC
8628 §5.2, RFC 9126 §2.3).  Nullable: a row from before names no address, and lives a
few minutes at most.  Added with ``ALTER TABLE ... ADD COLUMN`` (no SQLite table
rebuild).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

TABLES = ("pushed_authorization_requests", "device_authorizations")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("client_address", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("client_address")
