"""Resource indicators (RFC 8707)

* ``application_resources``: the resource identifiers (absolute URIs, RFC 8707 §2) an
  application serves as a resource server; the key is the URI's SHA-256, so that one
  identifier belongs to one application on every database (compared exactly, not by a
  collation that folds case);
* ``pending_authorizations.resource``, ``oauth_codes.resource``: the ``resource``
  values of an authorization request, kept through sign-in and consent to the code
  (RFC 8707 §2.1);
* ``oauth_tokens.audience``: the resources a token was issued for (its ``aud``);
* ``consents.resource``: the resources a user allowed an application to reach.

Every new column is nullable and existing rows get NULL: a token, code, request or
consent from before meant no resource, and keeps meaning that (the client is the
token's audience, as it was).  Columns are added with ``ALTER TABLE ... ADD COLUMN``
(no SQLite table rebuild).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("pending_authorizations", "resource"),
    ("oauth_codes", "resource"),
    ("oauth_tokens", "audience"),
    ("consents", "resource"),
)


def upgrade() -> None:
    op.create_table(
        "application_resources",
        sa.Column("uri_hash", sa.String(64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name="fk_application_resources_application_id_applications",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("uri_hash", name="pk_application_resources"),
    )
    op.create_index(
        "ix_application_resources_application_id", "application_resources", ["application_id"]
    )
    for table, column in _COLUMNS:
        op.add_column(table, sa.Column(column, sa.Text(), nullable=True))


def downgrade() -> None:
    for table, column in _COLUMNS:
        # oauth_tokens has an integer id: a SQLite rebuild must keep its AUTOINCREMENT.
        keep_ids = {"sqlite_autoincrement": True} if table == "oauth_tokens" else {}
        with op.batch_alter_table(table, table_kwargs=keep_ids) as batch:
            batch.drop_column(column)
    # The index goes with its table (MariaDB refuses to drop it first: its foreign key
    # needs it).
    op.drop_table("application_resources")
