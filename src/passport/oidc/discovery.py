"""Discovery and keys: OpenID Connect Discovery 1.0 §4
(``/.well-known/openid-configuration``, with RFC 8414 members) and the JWK Set
(``/.well-known/jwks.json``, RFC 7517 §5) of :mod:`passport.oidc.keys`.

Every URL published here is built from the configured issuer, never from the
request's ``Host`` (Discovery §4.3: ``issuer`` must equal the one the document was
fetched under, and must not be chosen by whoever sends the request).
"""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.oidc.authorization import RESPONSE_MODES
from passport.oidc.authorization import SCOPES
from passport.oidc.base import Part
from passport.oidc.errors import json_response


class DiscoveryEndpoint(Part):
    def discovery(self, request: Request) -> Response:
        issuer = self.issuer()
        return json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth2/authorize",
                "token_endpoint": f"{issuer}/oauth2/token",
                "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "introspection_endpoint": f"{issuer}/oauth2/introspect",
                "revocation_endpoint": f"{issuer}/oauth2/revoke",
                "end_session_endpoint": f"{issuer}/logout",
                "response_types_supported": ["code"],
                # OAuth 2.0 Form Post Response Mode §2 beside the code flow's query.
                "response_modes_supported": list(RESPONSE_MODES),
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                ],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.settings.signing_alg],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "introspection_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "revocation_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": sorted(SCOPES),  # offline_access among them (Core §11)
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "amr",
                    "azp",
                    "sid",
                    "name",
                    "preferred_username",
                    "email",
                    "email_verified",
                    "groups",
                    "permissions",
                ],
                "prompt_values_supported": ["none", "login", "consent"],
                "authorization_response_iss_parameter_supported": True,
                # Back-Channel Logout 1.0 §2.1: logout tokens, with ``sid`` (also in ID
                # tokens).  Front-Channel Logout is not implemented: not announced.
                "backchannel_logout_supported": True,
                "backchannel_logout_session_supported": True,
                # Discovery §3: request_uri_parameter_supported defaults to true — say no
                # (OIDC Core §6: both are refused, request(_uri)_not_supported).
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
            }
        )

    def jwks(self, request: Request) -> Response:
        self.services.keys.require()
        response = json_response({"keys": self.services.keys.published(self.services.clock())})
        response.headers["Cache-Control"] = "public, max-age=60"
        return response
