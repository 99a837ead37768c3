"""The pushed authorization request endpoint, ``/oauth2/par`` (RFC 9126).

A client posts the parameters of an authorization request straight to Passport
(§2.1), authenticated as at the token endpoint (:mod:`passport.oidc.client_auth`:
``client_secret_basic``, ``client_secret_post``, ``none`` for a public client naming
itself with ``client_id``), and gets back a ``request_uri`` that stands for them
(§2.2, ``201 Created``).  It then sends its user to ``/oauth2/authorize`` with only
``client_id`` and that ``request_uri`` (§4, :meth:`AuthorizationEndpoint.authorize`).
What this buys: the request travels over a back channel, authenticated, and never
through the browser where it could be read or changed (§1).

The pushed parameters are checked by the very function that checks a request at the
authorization endpoint, :meth:`AuthorizationEndpoint.validate` (§2.1: the server
"MUST validate the pushed request as it would an authorization request sent to the
authorization endpoint"); only how a refusal is told differs.  Here every error is a
JSON body as at the token endpoint (§2.3): ``invalid_client`` (401) when the client
is not authenticated, otherwise the code the authorization endpoint would have sent
back (``invalid_request``, ``invalid_scope``, ``unsupported_response_type``,
``request_not_supported``…), status 400 — a redirect URI that is not registered
included, since nothing is redirected here.

* ``client_id`` is required, also beside HTTP Basic (§2.1), and must name the
  authenticated client;
* ``request_uri`` in a pushed request is refused (§2.1: "MUST NOT be provided");
* ``request`` (a Request Object, §3) is refused ``request_not_supported``, as at the
  authorization endpoint;
* parameters that no rule reads are ignored as there (RFC 6749 §3.1) and not kept:
  only those of :data:`~passport.oidc.authorization.AUTHORIZATION_PARAMETERS` are; the
  client's credentials (``client_secret``…) never.

What is kept (:mod:`passport.oidc.pushed`) is those parameters as sent, not their
validated form: the authorization endpoint validates them again when the
``request_uri`` is used (§4), so an application changed in between is judged as it is
then.  A pushed request lives a minute (``expires_in``) and starts one authorization.

A public client's ``client_id`` is no secret, so anyone may push in its name; what
that can cost is bounded (OWASP ASVS 5 §2.4.1 / §6.3.1 anti-automation, RFC 9126 §2.3:
"429 Too Many Requests: If the number of requests from a client during a particular
time period exceeds the number the authorization server allows"):

* a push that does not prove a confidential client's secret — a public client's, or
  one whose authentication failed — is counted per client address
  (:func:`passport.oidc.client_auth.authenticate_counted`, ``throttle_client_request_limit``
  per throttle window, then growing delays): 429 ``invalid_request`` with
  ``Retry-After``.  A confidential client that proved its secret is not counted
  there: its back end pushes for all its users from one address;
* at most ``max_live_requests_per_client_address`` live pushed requests of a public
  client from one address, then at most ``max_pushed_requests_per_client`` per client
  (a backstop one address cannot reach alone:
  :func:`~passport.oidc.client_auth.authenticate_counted` says why): one more is
  refused 429 ``invalid_request`` with ``Retry-After`` (until the oldest expires), and
  none already issued is dropped for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import client_auth
from passport.oidc import params as oauth_params
from passport.oidc import pushed
from passport.oidc.authorization import AUTHORIZATION_PARAMETERS
from passport.oidc.base import ContextFactory
from passport.oidc.base import Part
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import OAuthError
from passport.oidc.errors import json_response
from passport.oidc.errors import render
from passport.services.throttle import address_of
from passport.web.context import RequestContext

if TYPE_CHECKING:
    from passport.composition import Services
    from passport.oidc.authorization import AuthorizationEndpoint

# Parameters of client authentication (RFC 6749 §2.3.1, RFC 7521 §4.2): who pushed is
# kept as the application, never a credential.
CLIENT_PARAMETERS = frozenset(
    {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


class PushedAuthorizationEndpoint(Part):
    def __init__(
        self, services: Services, context: ContextFactory, authorization: AuthorizationEndpoint
    ) -> None:
        super().__init__(services, context)
        self.authorization = authorization

    def push(self, request: Request) -> Response:
        """``POST /oauth2/par`` (RFC 9126 §2); any other method is the routing map's 405
        (§2.3), answered ``invalid_request`` as a protocol endpoint's refusal."""
        try:
            # The POST body only, as at the token endpoint (§2.1: "the client sends ...
            # using the application/x-www-form-urlencoded format"); a repeated,
            # over-long or non-string parameter is invalid_request, a body too large 413.
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._push(request, ctx, params))

    def _push(self, request: Request, ctx: RequestContext, params: oauth_params.Params) -> Response:
        try:
            app = client_auth.authenticate_counted(
                ctx, request, params, "Too many pushed authorization requests"
            )
            if not params.get("client_id"):
                # §2.1: "as a required authorization request parameter, it is similarly
                # required in a pushed authorization request" (Basic names the client
                # too, and client_auth refuses a client_id naming another one).
                raise InvalidRequest("client_id is required (RFC 9126 §2.1).")
            if "request_uri" in params:
                raise InvalidRequest("request_uri must not be pushed (RFC 9126 §2.1).")
            # Params: every value of a repeatable one (RFC 8707 ``resource``) is kept.
            asked = oauth_params.Params(
                {k: v for k, v in params.items() if k not in CLIENT_PARAMETERS}, params.repeated
            )
            self.authorization.validate(app, asked, through_par=True)
            # Only what the authorization endpoint reads is kept (RFC 6749 §3.1: the
            # rest is ignored there), each repeatable one with every value.
            kept = oauth_params.Params(
                {k: v for k, v in asked.items() if k in AUTHORIZATION_PARAMETERS},
                {k: v for k, v in asked.repeated.items() if k in AUTHORIZATION_PARAMETERS},
            )
            stored = pushed.encode(kept)
            if stored is None:
                raise InvalidRequest("The pushed authorization request is too large.")
            address = address_of(ctx.client_ip)
            # ASVS 5 §6.3.1: a public client's share per address first, then the
            # client-wide backstop (client_auth.authenticate_counted says why).
            if not app.confidential:
                share = self.settings.max_live_requests_per_client_address
                full = pushed.room_for(ctx.db, app.id, ctx.now, share, address)
                if full:
                    raise client_auth.too_many(
                        "Too many pushed authorization requests for this client from this address",
                        full,
                    )
            limit = self.settings.max_pushed_requests_per_client
            full = pushed.room_for(ctx.db, app.id, ctx.now, limit)
            if full:
                raise client_auth.too_many(
                    "This client has too many pushed authorization requests", full
                )
        except OAuthError as error:
            ctx.refuse()
            return render(error)
        request_uri = pushed.store(ctx.db, app.id, stored, ctx.now, address)
        # RFC 9126 §2.2: 201 Created with request_uri and expires_in; never cached.
        return json_response({"request_uri": request_uri, "expires_in": pushed.LIFETIME}, 201)
