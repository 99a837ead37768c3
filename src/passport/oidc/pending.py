"""Pending authorizations: an ``/oauth2/authorize`` request waiting for its user to sign in
(OpenID Connect Core 1.0 §3.1.2.3) or to allow the application (§3.1.2.4), kept on the
server.

The pages between the authorization request and the code (``/login``, ``/consent``)
pass only an opaque *handle*; everything else — the validated request, whether a
fresh login happened and when, whether the user allowed the application — is in the
``pending_authorizations`` row, where no client or browser can set it (Authlib's
``grant_user`` argument is the same idea: consent is a server-side fact, never a
request flag).  A handle is

* random (256 bits) and stored only as its SHA-256;
* bound to the browser that made the request: the SHA-256 of an HttpOnly,
  ``SameSite=Lax`` cookie (:data:`BROWSER_COOKIE`) must match, so a handle that leaks
  (a log, a shoulder) is useless in another browser;
* bound to the login session once someone is signed in (``session_hash``);
* short-lived (:data:`LIFETIME`) and single-use: :func:`consume` deletes the row when
  the code is issued or the user refuses, and only one caller can win that delete.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from sqlalchemy import String
from sqlalchemy import delete
from sqlalchemy.orm import Session

from passport.storage.models import PendingAuthorization

LIFETIME = 600  # seconds a user has to sign in and decide
BROWSER_COOKIE = "passport_authz"
_HANDLE_LENGTH = 43  # secrets.token_urlsafe(32)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def column_length(name: str) -> int:
    """The length of a text column of ``pending_authorizations``: the longest value of that
    request parameter Passport can keep (longer ones are refused, never truncated)."""
    column_type = PendingAuthorization.__table__.c[name].type
    assert isinstance(column_type, String) and column_type.length
    return column_type.length


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1)."""

    application_id: int
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompts: frozenset[str]
    max_age: int | None
    login_hint: str | None
    # How the answer goes back (OAuth 2.0 Multiple Response Type Encoding Practices §2.1;
    # Form Post Response Mode §2): "query" or "form_post".
    response_mode: str = "query"
    # The ``sub`` of the request's ``id_token_hint`` (OIDC Core §3.1.2.1), checked when the
    # request arrives and kept with a pending authorization (migration 0017): whoever
    # signs in on the way must be that user, else ``login_required`` to the client.
    hinted_subject: str | None = None
    # RFC 8707 §2.1 ``resource``: the resource identifiers asked for, checked.
    resources: tuple[str, ...] = ()
    # OIDC Core §3.1.2.1 ``acr_values`` (migration 0021): the step-up asked for.
    acr_values: str | None = None


def new_browser_binding() -> str:
    """The value of :data:`BROWSER_COOKIE` for a browser that has none yet."""
    return secrets.token_urlsafe(32)


def valid_browser_binding(value: str | None) -> bool:
    return value is not None and len(value) == _HANDLE_LENGTH


def start(
    db: Session,
    request: AuthorizationRequest,
    *,
    browser: str,
    session_hash: str | None,
    login_required: bool,
    now: datetime,
) -> str:
    """Record ``request`` as pending; returns the handle for the pages (shown once)."""
    db.execute(delete(PendingAuthorization).where(PendingAuthorization.expires_at <= now))
    handle = secrets.token_urlsafe(32)
    db.add(
        PendingAuthorization(
            handle_hash=_sha256(handle),
            browser_hash=_sha256(browser),
            session_hash=session_hash,
            application_id=request.application_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            state=request.state,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            prompt=" ".join(sorted(request.prompts)),
            max_age=request.max_age,
            login_hint=request.login_hint,
            response_mode=request.response_mode,
            resource=" ".join(request.resources) or None,
            hinted_subject=request.hinted_subject,
            acr_values=request.acr_values,
            login_required=login_required,
            created_at=now,
            expires_at=now + timedelta(seconds=LIFETIME),
        )
    )
    return handle


def find(
    db: Session, handle: str | None, browser: str | None, now: datetime
) -> PendingAuthorization | None:
    """The live pending authorization that ``handle`` names, if ``browser`` made it."""
    if not handle or len(handle) != _HANDLE_LENGTH or not valid_browser_binding(browser):
        return None
    assert browser is not None
    row = db.get(PendingAuthorization, _sha256(handle))
    if row is None or row.expires_at <= now:
        return None
    if not hmac.compare_digest(row.browser_hash, _sha256(browser)):
        return None
    return row


def request_of(row: PendingAuthorization) -> AuthorizationRequest:
    return AuthorizationRequest(
        application_id=row.application_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        state=row.state,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        prompts=frozenset(row.prompt.split()),
        max_age=row.max_age,
        login_hint=row.login_hint,
        response_mode=row.response_mode,
        resources=tuple(row.resource.split()) if row.resource else (),
        hinted_subject=row.hinted_subject,
        acr_values=row.acr_values,
    )


def consume(db: Session, row: PendingAuthorization) -> bool:
    """Delete ``row``; False when another request already consumed it (a replay, a race)."""
    result = db.execute(
        delete(PendingAuthorization)
        .where(PendingAuthorization.handle_hash == row.handle_hash)
        .execution_options(synchronize_session=False)
    )
    db.expunge(row)
    return bool(getattr(result, "rowcount", 0) == 1)
