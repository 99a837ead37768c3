"""Login sessions named to relying parties: the OpenID Connect ``sid``

* ``login_sessions.sid``: 128 random bits per session (Back-Channel Logout 1.0 §2.1,
  §2.4: ID tokens and logout tokens name the session at the OP by it).  Never derived
  from the cookie or its hash.  Existing sessions get a random one here.
* ``oauth_codes.sid`` and ``oauth_tokens.sid``: the session a code, and the token
  family made from it, were issued in (§2.3: the OP remembers which relying parties
  each session signed in to), so that ending one session tells only its applications,
  and a refresh keeps the session's ``sid`` in its ID token.  Existing rows have none:
  Passport cannot tell which session they came from, and tells their applications of
  any logout of the user (as before this revision).

Redis-held sessions are not touched: one from before this revision gets a ``sid``
derived from its hash when it is read (``passport.services.sessions``).

On SQLite the nullable columns are added with ``ALTER TABLE ... ADD COLUMN``; the
``login_sessions`` table (no integer id) is rebuilt to make its column NOT NULL.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

sessions = sa.table(
    "login_sessions",
    sa.column("id_hash", sa.String(64)),
    sa.column("sid", sa.String(32)),
)


def upgrade() -> None:
    op.add_column("oauth_codes", sa.Column("sid", sa.String(32), nullable=True))
    op.add_column("oauth_tokens", sa.Column("sid", sa.String(32), nullable=True))
    op.add_column("login_sessions", sa.Column("sid", sa.String(32), nullable=True))
    conn = op.get_bind()
    for (id_hash,) in conn.execute(sa.select(sessions.c.id_hash)).all():
        conn.execute(
            sa.update(sessions)
            .where(sessions.c.id_hash == id_hash)
            .values(sid=secrets.token_urlsafe(16))
        )
    with op.batch_alter_table("login_sessions") as batch:
        batch.alter_column("sid", existing_type=sa.String(32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("login_sessions") as batch:
        batch.drop_column("sid")
    # oauth_tokens has an integer id: SQLite rebuilds it in batch mode, and must keep
    # 0006's AUTOINCREMENT (ids never reused).
    with op.batch_alter_table("oauth_tokens", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("sid")
    with op.batch_alter_table("oauth_codes") as batch:
        batch.drop_column("sid")
