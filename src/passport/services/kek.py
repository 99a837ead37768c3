"""The key-encryption key: the one secret that wraps every secret Passport keeps at rest
(the OIDC signing keys, :mod:`passport.oidc.keys`; authenticator-app secrets and the
recovery-code key, :mod:`passport.services.factors`).

It comes from configuration (``key_encryption_key``) or, on SQLite, from the file
``<database>.key`` beside the database, made on first use — so that ``make run`` works
with nothing configured, and the key is never in the database it protects.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

from passport.config import Settings


class KeyConfigurationError(Exception):
    """The key-encryption key is missing or wrong; OpenID Connect cannot sign."""


def key_encryption_key(settings: Settings) -> bytes | None:
    """The configured key, or for SQLite one kept in ``<database>.key`` (made if absent)."""
    if settings.key_encryption_key:
        try:
            raw = base64.urlsafe_b64decode(settings.key_encryption_key + "==")
        except (binascii.Error, ValueError):
            raise KeyConfigurationError("key_encryption_key is not base64url") from None
        if len(raw) != 32:
            raise KeyConfigurationError("key_encryption_key must be 32 bytes (base64url)")
        return raw
    if not settings.is_sqlite:
        return None
    database = make_url(settings.database_url).database or "passport.sqlite3"
    path = Path(database + ".key")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return base64.urlsafe_b64decode(path.read_text().strip() + "==")
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))
    return base64.urlsafe_b64decode(path.read_text().strip() + "==")


@functools.lru_cache(maxsize=16)
def derived_key(settings: Settings, label: bytes) -> bytes | None:
    """A key of its own for ``label`` from the key-encryption key (HKDF-SHA256, RFC 5869),
    so that the key that wraps the signing keys is never used for anything else; None
    without a key-encryption key."""
    master = key_encryption_key(settings)
    if master is None:
        return None
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(master)
