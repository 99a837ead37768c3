"""The one strict parameter reader of the protocol endpoints and the hosted pages.

Built on :func:`passport.web.binding.parse_pairs` and
:func:`~passport.web.binding.parse_body` (UTF-8 only, names lower-cased, a name
repeated within the URL or within the body refused).  On top of them, the policy:

* a parameter given more than once — twice in one place, or once in the URL and once
  in the body of a POST that reads both — is **refused**: RFC 6749 §3.1 and §3.2
  ("Request and response parameters MUST NOT be included more than once"); the one
  exception is ``resource``, which RFC 8707 §2 makes repeatable (:data:`REPEATABLE`,
  every value in :meth:`Params.every`) — still not in both the URL and the body;
* a value that is not a string (a JSON body's number, object, array, ``true`` or
  ``null``) is **refused**: OAuth parameters are strings (RFC 6749 Appendix A), and a
  value dropped silently would make the request mean something its sender did not say;
* a value longer than :data:`MAX_PARAMETER_LENGTH` is **refused**, never cut;
* a secret in the URL is **refused** whatever the method: a secret, code or token in
  a URL ends up in logs, histories and ``Referer`` headers (RFC 6749 §3.2 and §2.3.1,
  RFC 9700 §4.3.2, and the ``access_token`` query parameter RFC 6750 §2.3 advises
  against); on a hosted page a username or password.

A refusal is a :class:`~passport.errors.ClientError` (``Invalid``, ``WrongLength``,
``WebError`` 413/415): the protocol endpoints answer it ``invalid_request``
(:meth:`passport.oidc.errors.InvalidRequest.of`), the pages with their error page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from werkzeug import Request

from passport.config import Settings
from passport.errors import ClientError
from passport.errors import Invalid
from passport.errors import WrongLength
from passport.web import binding
from passport.web.errors import WebError

# Longest parameter value read at all; longer ones are refused, never cut or dropped.
MAX_PARAMETER_LENGTH = 8192
# Never accepted in a URL of the token, introspection, revocation or userinfo endpoint.
OAUTH_SECRETS = frozenset(
    {
        "client_secret",
        "client_assertion",
        "code",
        "code_verifier",
        "device_code",
        "refresh_token",
        "token",
        "access_token",
        "password",
    }
)
# Never accepted in a URL of a hosted page (names as binding lower-cases them).
FORM_SECRETS = frozenset({"username", "password", "oldpassword", "newpassword"})
# RFC 8707 §2: "Multiple resource parameters MAY be used to indicate that the requested
# token is intended to be used at multiple resources."
REPEATABLE = ("resource",)


class Params(dict[str, str]):
    """The parameters, one value each (a repeatable one's first value); every value of a
    repeatable parameter is in :meth:`every`."""

    def __init__(self, values: dict[str, str], repeated: dict[str, list[str]]) -> None:
        super().__init__(values)
        self.repeated = repeated

    def every(self, name: str) -> list[str]:
        """All values of the repeatable parameter ``name``, in the order sent."""
        return list(self.repeated.get(name, ()))


def read(
    request: Request,
    settings: Settings,
    *,
    query: bool,
    body: bool,
    refuse_in_query: frozenset[str] = frozenset(),
) -> Params:
    """The request's parameters: the URL's if ``query``, the POST body's if ``body``.

    Raises :class:`~passport.errors.ClientError` for anything the policy of this module
    refuses; the result holds strings only, each at most :data:`MAX_PARAMETER_LENGTH`.
    """
    query_repeats: dict[str, list[str]] = {name: [] for name in REPEATABLE}
    body_repeats: dict[str, list[str]] = {name: [] for name in REPEATABLE}
    in_query = binding.parse_pairs(
        request.environ.get("QUERY_STRING", ""), "query string", query_repeats
    )
    leaked = sorted(name for name in in_query if name in refuse_in_query)
    if leaked:
        raise ClientError(
            f"'{leaked[0]}' must be sent in a POST body, never in the URL.", source=leaked[0]
        )
    values: dict[str, Any] = dict(in_query) if query else {}
    repeated = query_repeats if query else {name: [] for name in REPEATABLE}
    if body and request.method == "POST":
        if (request.content_length or 0) > settings.max_body_bytes:
            raise WebError("The request body is too large.", source="body", number=413)
        for name, value in binding.parse_body(request, body_repeats).items():
            if name in values:
                raise Invalid(
                    f"Parameter '{name[:64]}' is given more than once (URL and body).",
                    source=name[:64],
                )
            values[name] = value
            if name in repeated:
                repeated[name] = body_repeats[name]
    every = [(name, v) for name, vs in repeated.items() for v in vs]
    for name, value in [*values.items(), *every]:
        if not isinstance(value, str):
            raise Invalid(f"The parameter '{name[:64]}' must be a string.", source=name[:64])
        if len(value) > MAX_PARAMETER_LENGTH:
            raise WrongLength(f"The parameter '{name[:64]}' is too long.", source=name[:64])
        if "\x00" in value:  # as the API's binding: no database stores it alike
            raise Invalid(
                f"The parameter '{name[:64]}' must not contain NUL characters.",
                source=name[:64],
            )
    return Params(values, repeated)


def every(params: Mapping[str, str], name: str) -> list[str]:
    """Every value of the repeatable parameter ``name`` (:data:`REPEATABLE`): all of them
    when ``params`` was read here, else its one value (parameters kept elsewhere)."""
    if isinstance(params, Params):
        return params.every(name)
    value = params.get(name)
    return [value] if value else []


def protocol(request: Request, settings: Settings) -> Params:
    """Token, introspection, revocation and userinfo: the POST body only (RFC 6749 §3.2,
    §4.1.3: parameters in the entity-body; OIDC Core §5.3.1), no credential in the URL."""
    return read(request, settings, query=False, body=True, refuse_in_query=OAUTH_SECRETS)


def authorization(request: Request, settings: Settings) -> Params:
    """The authorization endpoint: its URL (GET), or its URL and form body (POST, OIDC
    Core §3.1.2.1) — a name in both is a repeated parameter (RFC 6749 §3.1)."""
    return read(request, settings, query=True, body=True)


def page(request: Request, settings: Settings) -> Params:
    """Hosted pages: a GET reads its URL, a POST its form only; never a credential in
    the URL."""
    post = request.method == "POST"
    return read(request, settings, query=not post, body=post, refuse_in_query=FORM_SECRETS)
