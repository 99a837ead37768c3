"""Post-logout redirect URIs registered apart from redirect URIs

Adds ``applications.post_logout_redirect_uris`` (OpenID Connect RP-Initiated Logout
1.0 §3 client metadata): the URIs ``/logout`` may send a user back to after signing
out.  Until now it accepted any registered login redirect URI, which §2 forbids (the
OP must not redirect to a URI not registered *for that purpose*).

Upgrading copies every existing application's current ``redirect_uris`` into the new
list, so that signing out keeps returning where it returned before and no deployed
relying party breaks; an administrator can then narrow each list.  Applications
registered after the upgrade start with none (Passport's own "signed out" page).

The column is added with ``ALTER TABLE ... ADD COLUMN`` (no SQLite table rebuild, so
0006's AUTOINCREMENT on ``applications`` stays as it is).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("post_logout_redirect_uris", sa.Text(), nullable=False, server_default="[]"),
    )
    # The same JSON text (passport.storage.types.JSONList), already validated as
    # redirect URIs, which post-logout redirect URIs follow the rules of.
    op.execute("UPDATE applications SET post_logout_redirect_uris = redirect_uris")
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default in place
        op.alter_column("applications", "post_logout_redirect_uris", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("applications", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("post_logout_redirect_uris")
