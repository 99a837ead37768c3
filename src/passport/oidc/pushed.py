"""Pushed authorization requests kept on the server (RFC 9126): what ``/oauth2/par``
stores (§2.2) and ``/oauth2/authorize`` takes back by its ``request_uri`` (§4).

A ``request_uri`` is ``urn:ietf:params:oauth:request_uri:`` followed by 256 random bits
(§2.2: "the request_uri value MUST be bound to the client that posted the
authorization request", and must not be guessable, §7.1).  Only its SHA-256 is kept
(:func:`passport.oidc.tokens.digest`, as every token), with the client's application
id; a row lives :data:`LIFETIME` seconds and :func:`take` deletes it as it returns it —
§4: "Authorization servers SHOULD treat request_uri values as one-time use", and only
one of two concurrent uses can win that delete.

What is kept is bounded, since a public client's ``client_id`` is no secret and anyone
may push in its name: only the parameters the authorization endpoint reads
(:data:`passport.oidc.authorization.AUTHORIZATION_PARAMETERS`), at most
:data:`MAX_STORED_BYTES` of them, and at most ``max_pushed_requests_per_client`` live
requests per client, ``max_live_requests_per_client_address`` of a public client's
from one address (:func:`room_for`; a new push is refused, never an older one
dropped).
"""

from __future__ import annotations

import json
import math
import secrets
from datetime import datetime
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.oidc.params import Params
from passport.oidc.tokens import digest
from passport.services.applications import lock_for_counting
from passport.storage.models import PushedAuthorizationRequest

# RFC 9126 §2.2: "urn:ietf:params:oauth:request_uri:<reference-value>" (§7.1 registers it).
URN_PREFIX = "urn:ietf:params:oauth:request_uri:"
# RFC 9126 §2.2 ``expires_in``: "a short lifetime ... between 5 and 600 seconds" is
# suggested; a client redirects its user at once.
LIFETIME = 60
_REFERENCE_LENGTH = 43  # secrets.token_urlsafe(32)
# The pushed parameters are kept as JSON in a TEXT column.  What the authorization
# endpoint reads is a few KiB at most (state 2048, scope 500, an ID token as
# id_token_hint…), and no more than its own query string may carry (max_query_bytes,
# 8 KiB): a larger request is refused (RFC 9126 §2.3, 413 or invalid_request), never cut.
MAX_STORED_BYTES = 8192


def is_pushed(request_uri: str) -> bool:
    """Whether ``request_uri`` is of the form this server issues (any other value, an
    https URL or another URN, is a Request Object by reference: not supported)."""
    return request_uri.startswith(URN_PREFIX)


def encode(parameters: dict[str, str]) -> str | None:
    """The parameters as stored, or None when they are too large to keep; a repeatable
    one (RFC 8707 ``resource``, :class:`~passport.oidc.params.Params`) as the list of
    its values."""
    document: dict[str, str | list[str]] = dict(parameters)
    if isinstance(parameters, Params):
        document.update({name: v for name, v in parameters.repeated.items() if v})
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text if len(text.encode("utf-8", "surrogatepass")) <= MAX_STORED_BYTES else None


def room_for(
    db: Session, application_id: int, now: datetime, limit: int, address: str | None = None
) -> int:
    """0 when ``application_id`` may push one more request, else the seconds until its
    oldest live one expires (``Retry-After``): at most ``limit`` live at once — from
    ``address`` (:func:`passport.services.throttle.address_of`) when it is given, else
    from anywhere.  The client's row is locked first (:func:`lock_for_counting`), so
    pushes arriving at once count one after another."""
    lock_for_counting(db, application_id)
    live = [
        PushedAuthorizationRequest.application_id == application_id,
        PushedAuthorizationRequest.expires_at > now,
    ]
    if address is not None:
        live.append(PushedAuthorizationRequest.client_address == address)
    count, oldest = db.execute(
        select(func.count(), func.min(PushedAuthorizationRequest.expires_at)).where(*live)
    ).one()
    if count < limit or oldest is None:
        return 0
    return max(1, math.ceil((oldest - now).total_seconds()))


def store(
    db: Session, application_id: int, parameters: str, now: datetime, address: str | None = None
) -> str:
    """Keep ``parameters`` (from :func:`encode`) for ``application_id``, pushed from
    ``address`` (:func:`passport.services.throttle.address_of`); returns the
    ``request_uri`` (shown once, to the client that pushed them).  Expired ones go first,
    as :func:`passport.oidc.pending.start` does: a public client's ``client_id`` is no
    secret, so anyone may push, and the table must not wait for housekeeping to shrink."""
    db.execute(
        delete(PushedAuthorizationRequest).where(PushedAuthorizationRequest.expires_at <= now)
    )
    request_uri = URN_PREFIX + secrets.token_urlsafe(32)
    db.add(
        PushedAuthorizationRequest(
            request_uri_hash=digest(request_uri),
            application_id=application_id,
            parameters=parameters,
            client_address=address,
            created_at=now,
            expires_at=now + timedelta(seconds=LIFETIME),
        )
    )
    return request_uri


def take(db: Session, request_uri: str, application_id: int, now: datetime) -> Params | None:
    """The parameters pushed as ``request_uri`` by ``application_id``, deleted as they are
    read; None when there are none: unknown, expired, already used, or pushed by
    another client (§4; one answer for all, so a probe learns nothing)."""
    if len(request_uri) != len(URN_PREFIX) + _REFERENCE_LENGTH or not is_pushed(request_uri):
        return None
    key = digest(request_uri)
    row = db.get(PushedAuthorizationRequest, key)
    if row is None or row.application_id != application_id or row.expires_at <= now:
        return None
    parameters = row.parameters
    result = db.execute(
        delete(PushedAuthorizationRequest)
        .where(
            PushedAuthorizationRequest.request_uri_hash == key,
            PushedAuthorizationRequest.application_id == application_id,
        )
        .execution_options(synchronize_session=False)
    )
    db.expunge(row)
    if getattr(result, "rowcount", 0) != 1:  # another request used it first
        return None
    decoded = json.loads(parameters)
    repeated = {
        str(name): [str(v) for v in value]
        for name, value in decoded.items()
        if isinstance(value, list) and value
    }
    values = {
        str(name): repeated[name][0] if name in repeated else str(value)
        for name, value in decoded.items()
    }
    return Params(values, repeated)
