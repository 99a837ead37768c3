"""Email keys by mailbox: ``users.email_key`` and ``invitations.email_key`` recomputed

Until now an address's key was its NFKC ``casefold()``; it is now the local part in
lower case and the domain as its IDNA A-label (``passport.services.accounts.email_key``):
``casefold`` merged different mailboxes (``ß``/``ss``, final/medial sigma) and kept apart
one domain's U-label and A-label.  Keys of rows made before are recomputed here, so that
sign-in by address, password resets and the uniqueness of addresses find them.

The rule is copied as it stands at this revision (a migration must not change with the
application).  Two accounts whose addresses turn out to be one mailbox keep the first
key; the later one gets ``<key>#<id>`` (still unique; its owner or an administrator
sets the address again to resolve it), as look-alike usernames did in migration 0008.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import unicodedata

import email_validator
import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _key(address: str) -> str:
    text = unicodedata.normalize("NFKC", address.strip())
    try:
        parsed = email_validator.validate_email(
            text, check_deliverability=False, allow_smtputf8=True, strict=True
        )
    except email_validator.EmailNotValidError:
        return text.lower()
    return f"{parsed.local_part.lower()}@{parsed.ascii_domain or parsed.domain}"


def _rekey(table: str, nullable: bool) -> None:
    rows = sa.table(
        table, sa.column("id", sa.Integer), sa.column("email", sa.String), sa.column("email_key")
    )
    bind = op.get_bind()
    found = bind.execute(
        sa.select(rows.c.id, rows.c.email).where(rows.c.email.is_not(None)).order_by(rows.c.id)
    ).all()
    if nullable:  # users: unique; free every key first so no interim value collides
        bind.execute(rows.update().values(email_key=None))
    seen: set[str] = set()
    for row_id, email in found:
        key = _key(email)
        if nullable and key in seen:
            key = f"{key[:240]}#{row_id}"
        seen.add(key)
        bind.execute(rows.update().where(rows.c.id == row_id).values(email_key=key))


def upgrade() -> None:
    _rekey("users", nullable=True)
    _rekey("invitations", nullable=False)


def downgrade() -> None:
    for table in ("users", "invitations"):
        rows = sa.table(table, sa.column("email", sa.String), sa.column("email_key"))
        op.get_bind().execute(rows.update().values(email_key=sa.func.lower(rows.c.email)))
