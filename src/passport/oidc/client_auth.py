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
from passport.oidc.errors import OAuthError
from passport.services import clients
from passport.services.throttle import client_request_key
from passport.storage.models import Application

if TYPE_CHECKING:
    from passport.web.context import RequestContext


def _credentials(request: Request, params: dict[str, str]) -> clients.BasicCredentials | str:
    """The credentials the request carries (secret_basic or secret_post), or the
    ``client_id`` it names without a secret (``none``).

    A credential of a method Passport does not support is refused ``invalid_client``,
    never ignored (else the request would fall through to ``none`` and pass as a
    public client's while looking authenticated).  RFC 6749 §5.2 names the case:
    ``invalid_client`` for "unsupported authentication method".  So are refused
    ``client_assertion`` and ``client_assertion_type`` (RFC 7521 §4.2, RFC 7523 §2.2:
    not a method Passport offers), and an ``Authorization`` header that is not a
    well-formed ``Basic`` one (RFC 6749 §2.3.1 names HTTP Basic; §5.2: a client that
    "attempted to authenticate via the "Authorization" request header field" gets 401
    with a ``WWW-Authenticate`` challenge).  A Bearer token authenticates a resource
    request (RFC 6750), never a client at these endpoints.
    """
    if "client_assertion" in params or "client_assertion_type" in params:
        raise InvalidClient("Client assertions are not supported (RFC 7521 §4.2).")
    header = request.headers.get("Authorization")
    basic = clients.parse_basic(header)
    if header is not None and basic is None:
        raise InvalidClient("Authenticate the client with HTTP Basic (RFC 6749 §2.3.1).")
    if basic is not None:
        # RFC 6749 §2.3: a client "MUST NOT use more than one authentication method in
        # each request" — a secret in the body beside the header, or a body naming
        # another client, is refused rather than one of them silently winning.
        named = params.get("client_id")
        if "client_secret" in params or (named is not None and named != basic.client_id):
            raise InvalidRequest(
                "Authenticate the client once: the Authorization header or the body."
            )
        return basic
    client_id = params.get("client_id", "")
    secret = params.get("client_secret")
    if secret:
        return clients.BasicCredentials(client_id, secret)
    return client_id


def _public(db: Session, client_id: str) -> Application:
    """``none`` (RFC 6749 §2.1): a public client only — a confidential one must prove
    itself, and naming it is not proof."""
    app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
    # Exactly the issued id (MariaDB's collation would match another letter case).
    if app is None or app.client_id != client_id or app.confidential or not app.enabled:
        raise InvalidClient()
    return app


def authenticate(
    db: Session, request: Request, params: dict[str, str], now: datetime
) -> Application:
    """The application that made this request: secret_basic, secret_post, or none
    (:func:`_credentials` says which are refused)."""
    credentials = _credentials(request, params)
    if isinstance(credentials, str):
        return _public(db, credentials)
    return _checked(clients.authenticate(db, credentials, now))


def authenticate_client(
    snapshot: clients.Snapshot,
    db: Session,
    request: Request,
    params: dict[str, str],
    now: datetime,
) -> clients.Client:
    """:func:`authenticate` for the machine endpoints (the client credentials grant,
    introspection), which need only a :class:`~passport.services.clients.Client`: a
    confidential client's success is kept in ``snapshot`` (per process, for as long as
    no application changes: :class:`~passport.services.clients.ClientCache`)."""
    credentials = _credentials(request, params)
    if isinstance(credentials, str):
        return clients.Client.of(_public(db, credentials))
    client = snapshot.authenticate(db, credentials, now)
    if client is None:
        raise InvalidClient()
    return client


def authenticate_confidential(
    snapshot: clients.Snapshot,
    db: Session,
    request: Request,
    params: dict[str, str],
    now: datetime,
) -> clients.Client:
    """A confidential client with its secret: RFC 7662 §2.1 requires the introspecting
    party to be authorized, and a public client proves nothing about itself."""
    client = authenticate_client(snapshot, db, request, params, now)
    if not client.client_id or not client.confidential:
        raise InvalidClient()
    return client


def _checked(app: Application | None) -> Application:
    if app is None:
        raise InvalidClient()
    return app


def authenticate_counted(
    ctx: RequestContext, request: Request, params: dict[str, str], what: str
) -> Application:
    """:func:`authenticate` for ``/oauth2/par`` and ``/oauth2/device_authorization``,
    which each keep a row for a client anyone may name: every request that does not
    prove a confidential client's secret is counted on the client address's counter
    (:func:`passport.services.throttle.client_request_key`) — a public client's
    (``none``: its ``client_id`` is no secret), and every failed authentication — and
    over its limit is refused 429 with ``Retry-After`` (RFC 9126 §2.3; OWASP ASVS 5
    §6.3.1 anti-automation).  Only a confidential client that proved its secret is not
    counted: its back end may speak for all its users from one address, and the
    per-client caps bound it.

    The credentials are checked first (a look-up and a hash), so that what decides is
    what they prove, not what the request carries: a ``client_secret`` that is empty, a
    ``client_assertion`` or a ``Bearer`` header proves nothing and must not skip the
    counter.  That check runs in a read session, before this request's transaction
    takes SQLite's write lock, which the counters' own transaction would wait for; the
    application is then read again in the request's session.

    The caps on live rows that follow at both endpoints are built so that they are no
    lockout lever (OWASP ASVS 5 §6.3.1: anti-automation "without ... malicious
    lockout"; RFC 8628 §5.2 and RFC 9126 §2.3 leave the bound to the server).  A
    client-wide cap alone (``max_pushed_requests_per_client``,
    ``max_device_authorizations_per_client``) let one stranger acting as a public
    client fill it from one address and keep every user of that client out — for a
    ``--par-required`` client, out of signing in at all.  So a request that did not
    prove a confidential secret first meets its share per (client, address),
    ``max_live_requests_per_client_address``, well below the client-wide cap: one
    address fills only its own share, and the users elsewhere go on.  The client-wide
    cap stays as the backstop that bounds the table; reaching it now takes
    cap / share addresses (IPv6: /64s) each holding its share live at once, each
    also under this address counter.  A confidential client that proved its secret
    is held only by the client-wide cap: its back end speaks for all its users from
    one address, and only it can fill its cap."""
    refused: OAuthError | None = None
    application_id = 0
    proven = False
    with ctx.services.db.session() as read:
        try:
            app = authenticate(read, request, params, ctx.now)
        except OAuthError as error:
            refused = error
        else:
            application_id, proven = app.id, app.confidential
    if not proven:
        wait = ctx.services.throttle.reserve([client_request_key(ctx.client_ip)], ctx.now).wait
        if wait:
            raise too_many(what, wait)
    if refused is not None:
        raise refused
    found = ctx.db.get(Application, application_id)
    if found is None or not found.enabled:  # deleted or disabled since
        raise InvalidClient()
    return found


def too_many(what: str, wait: int) -> InvalidRequest:
    """429 ``invalid_request`` with ``Retry-After`` (RFC 9126 §2.3 names 429 for a client
    over the number of requests the server allows; RFC 6585 §4, RFC 9110 §10.2.3)."""
    return InvalidRequest.of(Throttled(f"{what}; try again in {wait} seconds.", retry_after=wait))
