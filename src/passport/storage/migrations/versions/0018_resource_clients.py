"""Which clients may get client credentials tokens for an API (RFC 8707 §2)

``resource_clients``: one row per (resource server application, client
application) — the client may ask the token endpoint's client credentials grant
(RFC 6749 §4.4) for a token whose audience is one of the resource server's identifiers
(RFC 8707 §2: the authorization server "determines whether the client is authorized to
access the resource"; RFC 9700 §2.3: privilege restriction).  Both columns are foreign
keys to ``applications`` with ``ON DELETE CASCADE``: deleting either application deletes
its rows, on every database, so a grant never outlives its client (nor passes to a
later application).

The table starts empty: no client may get a client credentials token for any resource
until an administrator lists it on the API.  Resource indicators (0015) have not been
released, so no deployment relies on the open behaviour this closes; a deployment that
did would list its clients (``passport app update API --resource-client CLIENT_ID``).
Client credentials tokens already issued for an API stay active until they expire (the
upgrade revokes nothing); taking a client off a list later revokes its tokens for it.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_clients",
        sa.Column("api_id", sa.Integer(), nullable=False),
        sa.Column("client_app_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_id"],
            ["applications.id"],
            name="fk_resource_clients_api_id_applications",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_app_id"],
            ["applications.id"],
            name="fk_resource_clients_client_app_id_applications",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_id", "client_app_id", name="pk_resource_clients"),
    )
    op.create_index(
        "ix_resource_clients_client_app_id",
        "resource_clients",
        ["client_app_id"],
    )


def downgrade() -> None:
    # The index goes with its table (MariaDB refuses to drop it first: its foreign key
    # needs it).
    op.drop_table("resource_clients")
