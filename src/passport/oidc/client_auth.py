"""Client authentication at the token, introspection and revocation endpoints.

RFC 6749 §2.3.1: ``client_secret_basic`` (the ``Authorization: Basic`` header, tried
first) and ``client_secret_post`` (``client_id`` and ``client_secret`` in the body);
§2.1 and §3.2.1: ``none`` for a public client, which names itself with ``client_id``
only.  The secrets themselves — hashed at rest, compared in constant time, the
previous one honoured during a rotation's overlap — are :mod:`passport.services.clients`'s
business; this module only says which method the request used.

Every failure is the same ``invalid_client`` (401, RFC 6749 §5.2), whatever failed:
an unknown client, a wrong secret, a disabled application, a confidential client
without its secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Request

from passport.errors import Throttled
from passport.oidc.errors import InvalidClient
from passport.oidc.errors import InvalidRequest
from passport.services import clients
from passport.services.throttle import client_request_key
from passport.storage.models import Application

if TYPE_CHECKING:
    from passport.web.context import RequestContext


def authenticate(
    db: Session, request: Request, params: dict[str, str], now: datetime
) -> Application:
    """The application that made this request: secret_basic, secret_post, or none."""
    basic = clients.parse_basic(request.headers.get("Authorization"))
    if basic is not None:
        # RFC 6749 §2.3: a client "MUST NOT use more than one authentication method in
        # each request" — a secret in the body beside the header, or a body naming
        # another client, is refused rather than one of them silently winning.
        named = params.get("client_id")
        if "client_secret" in params or (named is not None and named != basic.client_id):
            raise InvalidRequest(
                "Authenticate the client once: the Authorization header or the body."
            )
        return _checked(clients.authenticate(db, basic, now))
    client_id = params.get("client_id", "")
    secret = params.get("client_secret")
    if secret:
        credentials = clients.BasicCredentials(client_id, secret)
        return _checked(clients.authenticate(db, credentials, now))
    # ``none`` (RFC 6749 §2.1): a public client only — a confidential one must prove
    # itself, and naming it is not proof.
    app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
    if app is None or app.confidential or not app.enabled:
        raise InvalidClient()
    return app


def authenticate_confidential(
    db: Session, request: Request, params: dict[str, str], now: datetime
) -> Application:
    """A confidential client with its secret: RFC 7662 §2.1 requires the introspecting
    party to be authorized, and a public client proves nothing about itself."""
    app = authenticate(db, request, params, now)
    if app.client_id is None or not app.confidential:
        raise InvalidClient()
    return app


def _checked(app: Application | None) -> Application:
    if app is None:
        raise InvalidClient()
    return app


def anonymous_request_wait(ctx: RequestContext, params: dict[str, str]) -> int:
    """Count a request that carries no client credentials (a public client's, or anyone's
    in its name) on the client address's counter
    (:func:`passport.services.throttle.client_request_key`); the seconds to wait when it
    is over its limit (nothing counted then), else 0.  For ``/oauth2/par`` and
    ``/oauth2/device_authorization``, which each keep a row for a client anyone may
    name.  A request with credentials is not counted: an unauthenticated one fails
    anyway, and an authenticated client's back end may speak for all its users from
    one address; the per-client caps bound it."""
    credentials = ctx.request.authorization is not None or any(
        name in params for name in ("client_secret", "client_assertion")
    )
    if credentials:
        return 0
    return ctx.services.throttle.reserve([client_request_key(ctx.client_ip)], ctx.now).wait


def too_many(what: str, wait: int) -> InvalidRequest:
    """429 ``invalid_request`` with ``Retry-After`` (RFC 9126 §2.3 names 429 for a client
    over the number of requests the server allows; RFC 6585 §4, RFC 9110 §10.2.3)."""
    return InvalidRequest.of(Throttled(f"{what}; try again in {wait} seconds.", retry_after=wait))
