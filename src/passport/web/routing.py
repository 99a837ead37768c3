"""The one routing map: every URL Passport answers, with the HTTP methods it accepts.

Protocol endpoints and hosted pages (:meth:`passport.oidc.provider.Provider.routes`),
the operational URLs (``/healthz``, ``/readyz``, ``/openapi.json``, ``/metrics``) and
the Passport API (``/<Controller>/<method>``, looked up case-insensitively in
:mod:`passport.web.registry`) are rules of one :class:`werkzeug.routing.Map`.  A
method a route does not accept is answered 405 with ``Allow`` (RFC 9110 §15.5.6) in
the format of the route's family (``Route.refuse``): an envelope, an OAuth error or
an HTML page.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass

from werkzeug import Request
from werkzeug import Response
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map
from werkzeug.routing import Rule

from passport.web.errors import WebError

Handler = Callable[[Request], Response]
Refusal = Callable[[Request, WebError], Response]


@dataclass(frozen=True)
class Route:
    """One URL: its handler, the methods it accepts, how its family answers a refusal."""

    path: str
    methods: frozenset[str]
    handler: Handler
    refuse: Refusal
    name: str = ""

    @property
    def label(self) -> str:
        """The bounded metrics label of this route (never a raw URL)."""
        return self.name or self.path


class Router:
    """Matches a request to a :class:`Route`; the API's rules carry ``controller``/``method``."""

    def __init__(self, routes: Iterable[Route], api: Route) -> None:
        self._routes = {route.path: route for route in routes}
        self._api = api
        rules = [
            Rule(path, endpoint=path, methods=sorted(route.methods))
            for path, route in self._routes.items()
        ]
        rules += [
            Rule("/", endpoint="api"),
            Rule("/<controller>", endpoint="api"),
            Rule("/<controller>/<method>", endpoint="api"),
        ]
        self._map = Map(rules, strict_slashes=False, merge_slashes=False)

    def match(self, request: Request) -> tuple[Route | None, dict[str, str] | WebError]:
        """The route and its arguments, or the refusal (404, or 405 with the route whose
        family answers it)."""
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match(request.path, method=request.method)
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(set(exc.valid_methods or ())))
            route = self._routes.get(request.path.rstrip("/") or "/")
            return route, WebError(
                f"Method {request.method[:16]} is not allowed here; use {allowed}.",
                source="method",
                value=request.method[:16],
                number=405,
                headers={"Allow": allowed},
            )
        except NotFound:
            path = request.path.strip("/")[:200]
            return None, WebError(
                f"No method '{path}' found.", source="url", value=path, number=404
            )
        route = self._api if endpoint == "api" else self._routes[endpoint]
        return route, {name: str(value) for name, value in arguments.items()}
