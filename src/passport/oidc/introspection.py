"""Token introspection, ``/oauth2/introspect``: RFC 7662.

Only a confidential application, authenticated (§2.1), may ask, and only about

* its own tokens, as their client, and
* access tokens whose audience (RFC 8707 §2, kept with the token on the server) is one
  of the resource identifiers it registered: §2.1 has "the protected resource" call
  the endpoint with its own credentials, and the resource server is the party the
  token was made for.  Its registration is read now, so an application that gave the
  identifier up no longer learns about tokens for it.  Refresh tokens are only ever
  their client's: a resource server never receives one.

Any other token — unknown, expired, revoked, of a disabled user or application, another
party's — is ``{"active": false}`` and nothing more (§2.2), the same answer whatever the
reason, so no caller can learn that a token exists (§4: the endpoint must not be an
oracle).  One check (:meth:`passport.oidc.tokens.Tokens.live`) serves this endpoint
and userinfo alike: a revocation, or the disabling of the user or of the client,
makes the token inactive at the next call, not when it expires.  ``aud`` is the
token's resources, or its client's ``client_id`` when it names none; ``username`` only
for a token with the ``profile`` scope (OIDC Core §5.4: claims follow scopes)."""

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
from passport.oidc.tokens import LiveToken
from passport.oidc.tokens import audience_claim
from passport.oidc.tokens import split_resources
from passport.services.clients import Client


def may_introspect(caller: Client, live: LiveToken) -> bool:
    """Whether ``caller`` may learn about ``live`` (RFC 7662 §2.1): it is the token's
    client, or the token is an access token for one of the caller's resources."""
    if live.application.id == caller.id:
        return True
    return live.row.kind == "access" and bool(
        set(split_resources(live.row.audience)) & set(caller.resources)
    )


class IntrospectionEndpoint(Part):
    def introspect(self, request: Request) -> Response:
        self.services.keys.require()
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        # A read: no transaction to commit, so no request scope.  The caller from the
        # client cache's latest snapshot; the token, its application and its user in one
        # statement that also reads the application generation: when it is not the
        # snapshot's, a fresh snapshot and again, so a caller changed since (disabled,
        # its secret rotated) is never answered from a stale one.
        now = self.services.clock()
        cache = self.services.client_cache
        snapshot = cache.latest()
        for _attempt in range(2):
            with self.services.db.session() as db:
                try:
                    app = client_auth.authenticate_confidential(snapshot, db, request, params, now)
                except OAuthError as error:
                    return render(error)
            with self.services.db.hot_read() as conn:
                generation, live = self.tokens().live_under(conn, params.get("token", ""), now)
            if not snapshot.caching or generation == snapshot.generation:
                break
            snapshot = cache.current()
        else:
            # The applications are changing fast: decide in a transaction that holds the
            # generation share-locked (ClientCache.locked), which waits, never fails.
            with cache.locked() as (conn, session, locked):
                try:
                    app = client_auth.authenticate_confidential(
                        locked, session, request, params, now
                    )
                except OAuthError as error:
                    return render(error)
                _, live = self.tokens().live_under(conn, params.get("token", ""), now)
        if live is None or not may_introspect(app, live):
            return json_response({"active": False})
        row, user, client = live.row, live.user, live.application
        # RFC 7662 §2.2 members; ``token_type`` as RFC 7009 §2.1's hint names it.
        return json_response(
            {
                "active": True,
                "scope": row.scope,
                "client_id": client.client_id,
                "token_type": "refresh_token" if row.kind == "refresh" else "Bearer",
                "exp": int(row.expires_at.timestamp()),
                "iat": int(row.created_at.timestamp()),
                "sub": f"user-{row.user_id}" if row.user_id else client.client_id,
                "aud": audience_claim(split_resources(row.audience), client.client_id),
                "iss": self.issuer(),
                # RFC 7662 §2.2 makes ``username`` optional; it is the user's
                # ``preferred_username``, a claim of the ``profile`` scope (OIDC Core
                # §5.4): given only for a token whose scope holds ``profile``, as
                # userinfo would, to the client and to the resource server alike.
                **({"username": user.username} if user and "profile" in row.scope.split() else {}),
            }
        )
