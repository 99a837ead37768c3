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

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Request

from passport.oidc.errors import InvalidClient
from passport.oidc.errors import InvalidRequest
from passport.services import clients
from passport.storage.models import Application


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
