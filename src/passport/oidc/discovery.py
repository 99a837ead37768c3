"""Discovery and keys: OpenID Connect Discovery 1.0 §3/§4
(``/.well-known/openid-configuration``), OAuth 2.0 Authorization Server Metadata
(RFC 8414 §3, ``/.well-known/oauth-authorization-server``) and the JWK Set
(``/.well-known/jwks.json``, RFC 7517 §5) of :mod:`passport.oidc.keys`.

Both metadata URLs answer the same document (:meth:`DiscoveryEndpoint.metadata`):
RFC 8414 §2 defines the OAuth members and registers Discovery's (§7.1.2), so one
document is valid at both and the two cannot drift apart.  Each member says what
Passport really does — a member left out has its specification's default, and
where that default would be wrong (``request_uri_parameter_supported`` defaults
to true) it is written out.

Every URL published here is built from the configured issuer, never from the
request's ``Host`` (Discovery §4.3, RFC 8414 §3.3: ``issuer`` must equal the one the
document was fetched under, and must not be chosen by whoever sends the request).
The issuer is an origin (no path), so RFC 8414 §3.1's well-known URI is at the root.
"""

from __future__ import annotations

from typing import Any

from werkzeug import Request
from werkzeug import Response

from passport.config import SIGNING_ALGS
from passport.oidc.authorization import RESPONSE_MODES
from passport.oidc.authorization import SCOPES
from passport.oidc.base import Part
from passport.oidc.device import GRANT_TYPE as DEVICE_GRANT_TYPE
from passport.oidc.errors import json_response
from passport.services.factors import ACR_VALUES_SUPPORTED


class DiscoveryEndpoint(Part):
    def metadata(self) -> dict[str, Any]:
        """The provider's metadata (Discovery §3, RFC 8414 §2)."""
        issuer = self.issuer()
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth2/authorize",
            "token_endpoint": f"{issuer}/oauth2/token",
            # RFC 9126 §5: where clients push authorization requests (par.py), and
            # whether the server accepts no other (``require_par``; an application may
            # require it alone, §6, which its own registration says).
            "pushed_authorization_request_endpoint": f"{issuer}/oauth2/par",
            "require_pushed_authorization_requests": self.settings.require_par,
            "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "device_authorization_endpoint": f"{issuer}/oauth2/device_authorization",  # RFC 8628 §4
            "end_session_endpoint": f"{issuer}/logout",
            "response_types_supported": ["code"],
            # OAuth 2.0 Form Post Response Mode §2 beside the code flow's query.
            "response_modes_supported": list(RESPONSE_MODES),
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                DEVICE_GRANT_TYPE,  # RFC 8628 §3.4, for applications allowed it
            ],
            "subject_types_supported": ["public"],
            # Core §15.1 / Discovery §3: RS256 MUST be among them; a key of each is kept
            # (keys.py) and each application chooses (id_token_signed_response_alg).
            "id_token_signing_alg_values_supported": list(SIGNING_ALGS),
            # client_auth.py (RFC 6749 §2.3.1); ``none`` for public clients.
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            # RFC 7662 §2.1: only an authenticated confidential client introspects.
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": ["S256"],  # RFC 7636 §4.2; never plain
            "scopes_supported": sorted(SCOPES),  # offline_access among them (Core §11)
            # The claims tokens.py can supply (ID token and userinfo).  No ``updated_at``:
            # Passport keeps no time of a profile change (Core §5.1).
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
                "acr",
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
            # OIDC Core §2 ``acr``: the classes of sign-in Passport tells apart and a
            # request's ``acr_values`` may ask for (services/factors.py: password,
            # multi-factor, phishing-resistant — OpenID EAP ACR Values 1.0 ``phr``).
            "acr_values_supported": list(ACR_VALUES_SUPPORTED),
            # Discovery §3: request_uri_parameter_supported defaults to true — say no
            # (OIDC Core §6: both are refused, request(_uri)_not_supported).  The
            # request_uri of RFC 9126 §4 is the PAR endpoint's own, announced above:
            # this member is about Request Objects by reference, which stay refused.
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            # Back-Channel Logout 1.0 §2.1: logout tokens, with ``sid`` (also in ID
            # tokens).  Front-Channel Logout is not implemented: not announced.
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            # RFC 9207 §3: every authorization response carries ``iss``.
            "authorization_response_iss_parameter_supported": True,
        }

    def discovery(self, request: Request) -> Response:
        """``/.well-known/openid-configuration`` (Discovery §4)."""
        return json_response(self.metadata())

    def as_metadata(self, request: Request) -> Response:
        """``/.well-known/oauth-authorization-server`` (RFC 8414 §3): the same document,
        ``issuer`` equal to the issuer (§3.3) as in Discovery's."""
        return json_response(self.metadata())

    def jwks(self, request: Request) -> Response:
        self.services.keys.require()
        response = json_response({"keys": self.services.keys.published(self.services.clock())})
        response.headers["Cache-Control"] = "public, max-age=60"
        return response
