"""Application credentials: client ids, secrets shown once and kept hashed, rotation.

Client secrets are 256 random bits, so a single SHA-256 is enough to keep them
safe at rest (no password-style stretching needed); comparisons are constant-time.
During a rotation the previous secret keeps working until its overlap ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from urllib.parse import unquote_to_bytes

from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.storage.models import Application


def new_client_id() -> str:
    return secrets.token_urlsafe(16)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256$" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _matches(stored: str | None, secret: str) -> bool:
    return stored is not None and hmac.compare_digest(stored, hash_secret(secret))


def issue_credentials(app: Application) -> str:
    """Give ``app`` a client id (if it has none) and a fresh secret; return the secret."""
    if app.client_id is None:
        app.client_id = new_client_id()
    secret = new_secret()
    app.secret_hash = hash_secret(secret)
    return secret


def rotate_secret(app: Application, now: datetime, overlap_seconds: int) -> str:
    secret = new_secret()
    if overlap_seconds > 0 and app.secret_hash:
        app.previous_secret_hash = app.secret_hash
        app.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    else:
        app.previous_secret_hash = None
        app.previous_secret_expires_at = None
    app.secret_hash = hash_secret(secret)
    return secret


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    secret: str


def parse_basic(header: str | None) -> BasicCredentials | None:
    """``Authorization: Basic base64(id:secret)`` (RFC 7617), or None.

    RFC 6749 §2.3.1: the client id and the secret are each encoded with
    ``application/x-www-form-urlencoded`` (Appendix B) *before* they are joined with
    ``:`` and base64-encoded, so the header is split on its first ``:`` and then each
    part is form-decoded (``+`` is a space, ``%XX`` a byte; the bytes strict UTF-8).
    Conforming clients (openid-client, oauth4webapi, Spring, Nimbus) escape every
    character but ASCII letters and digits — a Passport secret's ``-`` and ``_``
    arrive as ``%2D`` and ``%5F``.

    Lenient clients that send the id and secret as they are keep working: Passport's
    client ids and secrets are ``secrets.token_urlsafe`` (``A-Z a-z 0-9 - _``), which
    contain neither ``%`` nor ``+``, and on such a string form-decoding changes
    nothing — the raw and the encoded spelling name the same credentials, so
    decoding is never ambiguous for what Passport issues.  The cost falls only on a
    credential that holds ``%`` or ``+`` itself (none that Passport issues): sent
    unencoded it decodes to something else and fails, as RFC 6749 says it must.
    A malformed escape (``%`` without two hex digits) or bytes that are not UTF-8
    authenticate nobody.
    """
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if len(decoded) > 512:
        return None
    encoded_id, sep, encoded_secret = decoded.partition(":")
    client_id, secret = _form_decode(encoded_id), _form_decode(encoded_secret)
    if not sep or not client_id or not secret:
        return None
    return BasicCredentials(client_id, secret)


_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _form_decode(value: str) -> str | None:
    """``application/x-www-form-urlencoded`` decoding of one value (RFC 6749 Appendix B,
    the WHATWG URL standard's parser): ``+`` is a space, ``%XX`` a byte, the result
    strict UTF-8.  None for a ``%`` not followed by two hex digits, or bytes that are
    not UTF-8 — where a lenient decoder would keep the ``%`` or substitute U+FFFD and
    so turn two different headers into one credential."""
    if _MALFORMED_ESCAPE.search(value):
        return None
    try:
        return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def authenticate(db: Session, credentials: BasicCredentials, now: datetime) -> Application | None:
    """The enabled, confidential application these credentials belong to, or None."""
    app = db.scalars(
        select(Application).where(Application.client_id == credentials.client_id)
    ).first()
    if app is None:
        hmac.compare_digest(hash_secret(credentials.secret), hash_secret("x"))  # same work
        return None
    current = _matches(app.secret_hash, credentials.secret)
    previous = (
        app.previous_secret_expires_at is not None
        and now < app.previous_secret_expires_at
        and _matches(app.previous_secret_hash, credentials.secret)
    )
    if not (current or previous) or not app.enabled or not app.confidential:
        return None
    return app
