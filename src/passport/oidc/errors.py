"""Typed OAuth 2.0 errors and their one JSON rendering.

Each class is one ``error`` code of the specifications, with the HTTP status it is
answered with when it goes back as a JSON body (the token, introspection, revocation
and userinfo endpoints).  At the authorization endpoint the same codes go back to the
client in the redirect (RFC 6749 §4.1.2.1), never as a status: see
:meth:`passport.oidc.authorization.AuthorizationEndpoint.back`.

* RFC 6749 §5.2 (token endpoint): ``invalid_request``, ``invalid_client`` (401 with
  ``WWW-Authenticate``), ``invalid_grant``, ``unauthorized_client``,
  ``unsupported_grant_type``, ``invalid_scope``;
* RFC 6749 §4.1.2.1 (authorization endpoint): ``access_denied``,
  ``unsupported_response_type``, and ``invalid_request``/``invalid_scope``;
* OpenID Connect Core §3.1.2.6: ``login_required``, ``consent_required``,
  ``request_not_supported``, ``request_uri_not_supported`` (§6);
* RFC 8707 §2 (resource indicators): ``invalid_target``, at both endpoints;
* RFC 6750 §3.1 (protected resources): ``invalid_token`` (401) and
  ``insufficient_scope`` (403), each with a ``Bearer`` challenge; no token at all is a
  bare ``Bearer`` challenge without an error code (:func:`bearer_challenge`).

A domain :class:`~passport.errors.ClientError` raised while reading a request (a
repeated parameter, a value too long, a body too large) becomes ``invalid_request``
with the status of the one table in :mod:`passport.web.errors` (400, 413, 415…).
"""

from __future__ import annotations

import json
from typing import Any
from typing import ClassVar

from werkzeug import Response

from passport.errors import ClientError
from passport.services.audit import AuditRecord
from passport.web.errors import WebError
from passport.web.errors import headers_of
from passport.web.errors import status_of


class OAuthError(Exception):
    """An OAuth error response: ``error`` (the code), ``error_description``, a status."""

    error: ClassVar[str] = "invalid_request"
    status: int = 400

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value that goes with a 401 (RFC 9110 §11.6.1)."""
        return None


class InvalidRequest(OAuthError):
    """RFC 6749 §5.2 / §4.1.2.1: a parameter missing, repeated, malformed or too long."""

    error = "invalid_request"

    @classmethod
    def of(cls, exc: ClientError) -> InvalidRequest:
        """The domain error of a malformed request, with its own HTTP status (413, 415…)."""
        return cls(exc.message, status=status_of(exc), headers=headers_of(exc))


class InvalidClient(OAuthError):
    """RFC 6749 §5.2: client authentication failed — 401 with a ``Basic`` challenge,
    since the client may authenticate with the ``Authorization`` header (§2.3.1)."""

    error = "invalid_client"
    status = 401

    def __init__(self, description: str = "Client authentication failed.") -> None:
        super().__init__(description)

    def challenge(self) -> str | None:
        return 'Basic realm="passport"'


class InvalidGrant(OAuthError):
    """RFC 6749 §5.2: the code or refresh token is invalid, expired, used or not this
    client's, or ``redirect_uri``/``code_verifier`` do not match."""

    error = "invalid_grant"


class ReusedGrant(InvalidGrant):
    """An authorization code or refresh token presented again after it was used: answered
    ``invalid_grant``, and what it issued is revoked (RFC 6749 §4.1.2 for codes; RFC 9700
    §4.14.2 for refresh tokens, after the grace window).  ``family`` names a refresh
    token family, ``code_hash`` the code whose tokens go."""

    def __init__(
        self, description: str, *, family: str | None = None, code_hash: str | None = None
    ) -> None:
        super().__init__(description)
        self.family, self.code_hash = family, code_hash


class NotAdmitted(InvalidGrant):
    """The user may not sign in to this application now
    (:func:`passport.services.access.admission`): ``invalid_grant`` (RFC 6749 §5.2: the
    grant "was issued to another client" or is otherwise no longer valid), with the
    refusal's audit record (kept although the request is rolled back) and, for a
    refresh token, the family to revoke — as for a reused one, the tokens it issued go."""

    def __init__(self, description: str, *, record: AuditRecord, family: str | None = None) -> None:
        super().__init__(description)
        self.record, self.family = record, family


class UnauthorizedClient(OAuthError):
    """RFC 6749 §5.2: this client may not use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """RFC 6749 §5.2."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """RFC 6749 §5.2 / §4.1.2.1 / §3.3: unknown, unregistered, too long or wider."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 §2: "The requested resource is invalid, missing, unknown, or malformed" —
    at the token endpoint (400) and, redirected, at the authorization endpoint."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    """RFC 6749 §4.1.2.1: the user said no."""

    error = "access_denied"


class UnsupportedResponseType(OAuthError):
    """RFC 6749 §4.1.2.1: only ``code``."""

    error = "unsupported_response_type"


class LoginRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and nobody (fresh enough) signed in."""

    error = "login_required"


class InteractionRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none``, and the sign-in must go on with the
    user (a second factor the application's policy or ``acr_values`` asks for)."""

    error = "interaction_required"


class ConsentRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and the user has not allowed it."""

    error = "consent_required"


class RequestNotSupported(OAuthError):
    """OpenID Connect Core §3.1.2.6 / §6.1: a ``request`` (a Request Object) was sent, and
    Passport does not read Request Objects — refused rather than ignored, because the
    object may say something the plain parameters do not."""

    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    """OpenID Connect Core §3.1.2.6 / §6.2: a ``request_uri`` was sent; Passport fetches
    no Request Objects (and so never makes a request to an address a client names)."""

    error = "request_uri_not_supported"


class BearerError(OAuthError):
    """An error of a protected resource (RFC 6750 §3.1), told in the ``Bearer``
    challenge of ``WWW-Authenticate`` as well as the body, which holds the bare code
    unless there is a description."""

    def __init__(self, description: str = "") -> None:
        super().__init__(description)

    def challenge(self) -> str | None:
        return f'Bearer error="{self.error}"'


class InvalidToken(BearerError):
    """RFC 6750 §3.1: the access token is expired, revoked, malformed or not an access
    token — 401.  A request with no token at all is not this: see
    :func:`bearer_challenge`."""

    error = "invalid_token"
    status = 401


class InsufficientScope(BearerError):
    """RFC 6750 §3.1: the token is valid but does not carry the scope the resource
    needs — 403, and the challenge names that scope (``scope="openid"`` at userinfo,
    OIDC Core §5.3: "the Access Token ... obtained from an OpenID Connect Authentication
    Request", so a token without ``openid`` or without a user, from
    ``client_credentials``, is not enough)."""

    error = "insufficient_scope"
    status = 403

    def __init__(self, scope: str, description: str = "") -> None:
        super().__init__(description)
        self.scope = scope

    def challenge(self) -> str | None:
        return f'Bearer error="{self.error}", scope="{self.scope}"'


def json_response(data: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer of the protocol endpoints: never cached (RFC 6749 §5.1)."""
    response = Response(json.dumps(data), status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def render(error: OAuthError) -> Response:
    """The JSON error body of RFC 6749 §5.2 (RFC 6750 §3.1 for the errors of a protected
    resource, whose body is the bare code when there is no description), and the
    challenge that goes with a 401 (RFC 9110 §11.6.1) or with RFC 6750's 403."""
    data: dict[str, Any] = {"error": error.error}
    if error.description or not isinstance(error, BearerError):
        data["error_description"] = error.description
    response = json_response(data, error.status)
    for name, value in error.headers.items():
        response.headers[name] = value
    challenge = error.challenge()
    if challenge is not None and error.status in (401, 403):
        response.headers["WWW-Authenticate"] = challenge
    return response


def bearer_challenge() -> Response:
    """The answer to a request for a protected resource that carries no access token at
    all: 401 with a bare ``Bearer`` challenge and no error code — RFC 6750 §3.1: "If the
    request lacks any authentication information (e.g., the client was unaware that
    authentication is necessary ...), the resource server SHOULD NOT include an error
    code or other error information."  The body is an empty JSON object, for clients
    that parse every answer as JSON."""
    response = json_response({}, 401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def refusal(request: object, error: WebError) -> Response:
    """How a protocol endpoint answers a refusal of the routing map (405 with ``Allow``,
    404…): an OAuth ``invalid_request`` with that status and its headers."""
    return render(InvalidRequest.of(error))
