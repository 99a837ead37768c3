"""What every protocol endpoint and hosted page is built from: the process's
:class:`~passport.composition.Services` and the factory of request scopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.oidc.tokens import Tokens
from passport.web import origins
from passport.web.context import RequestContext

if TYPE_CHECKING:
    from passport.composition import Services

ContextFactory = Callable[..., RequestContext]


class Part:
    """An endpoint or a page: it answers inside a request scope (``context``) and
    reaches the database, keys and stores through ``services``."""

    def __init__(self, services: Services, context: ContextFactory) -> None:
        self.services = services
        self.settings = services.settings
        self._context = context

    def context(self, request: Request, *, write: bool) -> RequestContext:
        """The scope of this request: its transaction, who is signed in, cookies."""
        return self._context(request, write=write)

    def issuer(self) -> str:
        """The configured issuer (never the request's Host); 503 until there is one."""
        return self.services.issuer

    def tokens(self) -> Tokens:
        return self.services.tokens()

    def secure(self, request: Request) -> bool:
        """Whether cookies set for this request are ``Secure``."""
        return self.settings.secure_cookies or origins.scheme(request, self.settings) == "https"

    def same_origin(self, request: Request) -> bool:
        """A form post says it comes from Passport itself, or says nothing (OWASP ASVS
        V3.5: the CSRF token is the main defence; this is the second)."""
        origin = origins.request_origin(request)
        return origin is None or origin == origins.own_origin(request, self.settings)


def redirect(location: str) -> Response:
    response = Response(status=302)
    response.headers["Location"] = location
    return response


def with_query(uri: str, params: dict[str, str]) -> str:
    """``uri`` with ``params`` added to its query (RFC 6749 §3.1.2: keep the query the
    client registered)."""
    return uri + ("&" if "?" in uri else "?") + urlencode(params)
