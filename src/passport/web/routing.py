"""The one routing map: every URL Passport answers, with the HTTP methods it accepts.

Protocol endpoints and hosted pages (:meth:`passport.oidc.provider.Provider.routes`),
the operational URLs (``/healthz``, ``/readyz``, ``/openapi.json``, ``/metrics``) and
the Passport API (``/<Controller>/<method>``, looked up case-insensitively in
:mod:`passport.web.registry`) are matched by one :class:`Router`.  A
method a route does not accept is answered 405 with ``Allow`` (RFC 9110 §15.5.6) in
the format of the route's family (``Route.refuse``): an envelope, an OAuth error or
an HTML page.  A route with a CORS policy (``Route.cors``) also accepts ``OPTIONS``,
the CORS preflight, which the dispatcher answers from the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass

from werkzeug import Request
from werkzeug import Response

from passport.web.errors import WebError
from passport.web.origins import CorsPolicy

Handler = Callable[[Request], Response]
Refusal = Callable[[Request, WebError], Response]


@dataclass(frozen=True)
class Route:
    """One URL: its handler, the methods it accepts, how its family answers a refusal,
    and which cross-origin pages may read its answers (None: no CORS at all)."""

    path: str
    methods: frozenset[str]
    handler: Handler
    refuse: Refusal
    name: str = ""
    cors: CorsPolicy | None = None

    @property
    def label(self) -> str:
        """The bounded metrics label of this route (never a raw URL)."""
        return self.name or self.path


class Router:
    """Matches a request to a :class:`Route`: the fixed URLs by a dictionary, then the
    API's ``/<Controller>[/<method>]`` (its arguments ``controller`` and ``method``).

    Fixed URLs come first and keep their paths whatever the method — ``GET
    /oauth2/token`` is the token endpoint refusing GET (405), never an API method named
    ``oauth2/token``.  A trailing slash is ignored.
    """

    def __init__(self, routes: Iterable[Route], api: Route) -> None:
        self._routes = {route.path: route for route in routes}
        self._api = api

    @staticmethod
    def accepted(route: Route) -> frozenset[str]:
        """The methods ``route`` answers: HEAD wherever GET is (RFC 9110 §9.3.2), and
        OPTIONS where a CORS policy answers preflights (Fetch, "CORS-preflight
        request")."""
        accepted = route.methods | {"HEAD"} if "GET" in route.methods else route.methods
        return accepted | {"OPTIONS"} if route.cors is not None else accepted

    def match(self, request: Request) -> tuple[Route | None, dict[str, str] | WebError]:
        """The route and its arguments, or the refusal (404, or 405 with the route whose
        family answers it)."""
        if _encoded_separator(request):
            shown = request.path.strip("/")[:200]
            return None, WebError(
                f"No method '{shown}' found.", source="url", value=shown, number=404
            )
        path = request.path.rstrip("/") or "/"
        route = self._routes.get(path)
        if route is not None:
            accepted = self.accepted(route)
            if request.method in accepted:
                return route, {}
            allowed = ", ".join(sorted(accepted))
            return route, WebError(
                f"Method {request.method[:16]} is not allowed here; use {allowed}.",
                source="method",
                value=request.method[:16],
                number=405,
                headers={"Allow": allowed},
            )
        parts = request.path.strip("/").split("/")
        if len(parts) > 2 or (len(parts) == 2 and "" in parts):
            shown = request.path.strip("/")[:200]
            return None, WebError(
                f"No method '{shown}' found.", source="url", value=shown, number=404
            )
        arguments = {"controller": parts[0]}
        if len(parts) == 2:
            arguments["method"] = parts[1]
        return self._api, arguments


def _encoded_separator(request: Request) -> bool:
    """Whether the path as sent spells a ``/`` or ``\\`` percent-encoded (``%2F``,
    ``%5C``).  The WSGI path is decoded, so ``/Users%2Flist`` would reach ``Users/list``
    — a route a proxy in front of Passport never saw named (RFC 3986 §2.2: an encoded
    reserved character is data, not a separator).  Servers that pass the raw request
    target (``RAW_URI``/``REQUEST_URI``: gunicorn, Werkzeug) let Passport refuse it;
    Granian passes only the decoded path, so behind it the proxy must not route on
    encoded separators either (docs/architecture.md)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    target = raw.split("?", 1)[0].lower()
    return "%2f" in target or "%5c" in target
