"""The UserInfo endpoint, ``/oauth2/userinfo``: OpenID Connect Core §5.3 (GET and POST),
its access token a Bearer token (RFC 6750): in the ``Authorization`` header (§2.1), or
in a POST form body (§2.2) — never in the URL (§2.3 advises against it; refused by
:mod:`passport.oidc.params`).  Any problem with the token is ``invalid_token`` with a
``Bearer`` challenge (RFC 6750 §3.1): an access token (not a refresh token) that is
live, of a user, with the ``openid`` scope (OIDC Core §5.3.1)."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import Part
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import InvalidToken
from passport.oidc.errors import json_response
from passport.oidc.errors import render


def bearer(request: Request, params: dict[str, str]) -> str:
    """RFC 6750 §2.1 (the header), or §2.2 (a form body, POST only) — not both: a client
    "MUST NOT use more than one method to transmit the token in each request" (§2)."""
    header = request.headers.get("Authorization", "")
    in_body = params.get("access_token") if request.method == "POST" else None
    if header[:7].lower() == "bearer ":
        if in_body is not None:
            raise InvalidRequest(
                "Send the access token in the Authorization header or the body, not both."
            )
        return header[7:].strip()
    return in_body or ""


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
        # A read: no transaction to commit, so no request scope.
        with self.services.db.session() as db:
            tokens = self.tokens()
            live = tokens.live(db, token, self.services.clock())
            if (
                live is None
                or live.user is None
                or live.row.kind != "access"
                or "openid" not in live.row.scope.split()
            ):
                return render(InvalidToken())
            return json_response(
                tokens.user_claims(db, live.user, live.application, live.row.scope)
            )
