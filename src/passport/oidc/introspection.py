"""Token introspection, ``/oauth2/introspect``: RFC 7662.

Only a confidential client, authenticated (§2.1), may ask, and only about its own
tokens: any other token — unknown, expired, revoked, another client's — is
``{"active": false}`` and nothing more (§2.2), so a client cannot learn that a token
exists.  One check (:meth:`passport.oidc.tokens.Tokens.live`) serves this endpoint and
userinfo alike."""

from __future__ import annotations

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


class IntrospectionEndpoint(Part):
    def introspect(self, request: Request) -> Response:
        self.services.keys.require()
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        # A read: no transaction to commit, so no request scope.
        with self.services.db.session() as db:
            now = self.services.clock()
            try:
                app = client_auth.authenticate_confidential(db, request, params, now)
            except OAuthError as error:
                return render(error)
            live = self.tokens().live(db, params.get("token", ""), now)
            if live is None or live.application.id != app.id:
                return json_response({"active": False})
            row, user = live.row, live.user
            # RFC 7662 §2.2 members; ``token_type`` as RFC 7009 §2.1's hint names it.
            return json_response(
                {
                    "active": True,
                    "scope": row.scope,
                    "client_id": app.client_id,
                    "token_type": "refresh_token" if row.kind == "refresh" else "Bearer",
                    "exp": int(row.expires_at.timestamp()),
                    "iat": int(row.created_at.timestamp()),
                    "sub": f"user-{row.user_id}" if row.user_id else app.client_id,
                    "aud": app.client_id,
                    "iss": self.issuer(),
                    **({"username": user.username} if user else {}),
                }
            )
