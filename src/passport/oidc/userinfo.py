"""The UserInfo endpoint, ``/oauth2/userinfo``: OpenID Connect Core §5.3 (GET and POST),
its access token a Bearer token (RFC 6750): in the ``Authorization`` header (§2.1), or
in a POST form body (§2.2) — never in the URL (§2.3 advises against it; refused by
:mod:`passport.oidc.params`).  The answers without claims, each with a ``Bearer``
challenge (RFC 6750 §3.1):

* no token at all → 401 with a bare ``Bearer`` challenge, no error code (§3.1);
* a token that is not a live access token (unknown, expired, revoked, a refresh
  token) → 401 ``invalid_token``;
* a live access token for other resources (RFC 8707: its audience names resource
  identifiers) → 401 ``invalid_token``: the token was made for those APIs, and a
  resource server accepts only tokens whose audience is itself (RFC 9068 §4; RFC 8707
  §2: audience-restricted tokens are the point) — Passport's userinfo is not among them,
  so a token leaked by an API cannot read the user's profile here.  A client that needs
  both asks for a token without ``resource`` (an authorization without it);
* a live access token without a user or without ``openid`` (OIDC Core §5.3.1) →
  403 ``insufficient_scope`` with ``scope="openid"`` in the challenge."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import Part
from passport.oidc.errors import InsufficientScope
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import InvalidToken
from passport.oidc.errors import bearer_challenge
from passport.oidc.errors import json_response
from passport.oidc.errors import render


def bearer(request: Request, params: dict[str, str]) -> str | None:
    """RFC 6750 §2.1 (the header), or §2.2 (a form body, POST only) — not both: a client
    "MUST NOT use more than one method to transmit the token in each request" (§2).
    None when the request carries no Bearer token at all (no header of that scheme,
    no ``access_token`` in the body)."""
    header = request.headers.get("Authorization", "")
    in_body = params.get("access_token") if request.method == "POST" else None
    if header[:7].lower() == "bearer " or header.lower() == "bearer":
        if in_body is not None:
            raise InvalidRequest(
                "Send the access token in the Authorization header or the body, not both."
            )
        return header[7:].strip()
    return in_body


class UserInfoEndpoint(Part):
    def userinfo(self, request: Request) -> Response:
        self.services.keys.require()
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        try:
            token = bearer(request, params)
        except InvalidRequest as refused:
            return render(refused)
        if token is None:
            # RFC 6750 §3.1: no authentication at all (or another scheme) is told by the
            # bare challenge, without an error code.
            return bearer_challenge()
        # A read: no transaction to commit, so no request scope; the token, its
        # application and its user in one statement on the hot connection.
        with self.services.db.hot_read() as db:
            tokens = self.tokens()
            live = tokens.live(db, token, self.services.clock())
            if live is None or live.row.kind != "access":
                # RFC 6750 §3.1 invalid_token: "expired, revoked, malformed, or invalid
                # for other reasons" — a refresh token is not an access token.
                return render(InvalidToken())
            if live.row.audience:
                # RFC 9068 §4 / RFC 8707 §2: a token for other resources is not for us.
                return render(InvalidToken("The access token is for another resource."))
            if live.user is None or "openid" not in live.row.scope.split():
                # RFC 6750 §3.1 insufficient_scope (403): a live access token, but not
                # one of an OpenID Connect authentication (OIDC Core §5.3) — a
                # client_credentials token has no user, and ``openid`` is never granted
                # to one.
                return render(InsufficientScope("openid"))
            return json_response(
                tokens.user_claims(db, live.user, live.application.id, live.row.scope)
            )
