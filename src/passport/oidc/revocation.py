"""Token revocation, ``/oauth2/revoke``: RFC 7009.

The client authenticates as at the token endpoint (§2.1; a public client names itself
with ``client_id``).  Revoking a refresh token revokes its whole family — the access
tokens issued with it too (§2.1: "SHOULD also invalidate all access tokens based on
the same authorization grant").  An unknown token, or another client's, is answered
200 all the same (§2.2): the answer tells nothing about tokens.  The answer is
``{}`` as ``application/json`` with ``Cache-Control: no-store``."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import client_auth
from passport.oidc import params as oauth_params
from passport.oidc.base import Part
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import OAuthError
from passport.oidc.errors import json_response
from passport.oidc.errors import render
from passport.oidc.tokens import digest
from passport.storage.models import OAuthToken
from passport.web.context import RequestContext


class RevocationEndpoint(Part):
    def revoke(self, request: Request) -> Response:
        self.services.keys.require()
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._revoke(request, ctx, params))

    def _revoke(self, request: Request, ctx: RequestContext, params: dict[str, str]) -> Response:
        db = ctx.db
        try:
            app = client_auth.authenticate(db, request, params, ctx.now)
        except OAuthError as error:
            ctx.refuse()
            return render(error)
        token_hash = digest(params.get("token", ""))
        row = db.scalars(select(OAuthToken).where(OAuthToken.token_hash == token_hash)).first()
        if row is not None and row.application_id == app.id:
            if row.kind == "refresh":
                self.tokens().revoke_family(db, row.family, ctx.now)
            else:
                row.revoked_at = ctx.now
        # §2.2: "The content of the response body is ignored by the client" — but clients
        # such as oidc-client-ts parse it as JSON and refuse text/plain, so the answer is
        # an empty JSON object; never cached, as the token endpoint's (RFC 6749 §5.1).
        return json_response({})
