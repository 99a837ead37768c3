"""The Passport WSGI application: routing, the request life cycle, the last-resort handler.

Life of an API request::

    size limits -> route -> callback check -> endpoint lookup -> HTTP method
    -> body parsing -> origin (CSRF) check -> bind parameters -> controller
    -> commit or roll back -> queued audit / after-actions -> envelope
    -> CORS + security headers -> one access-log line

Whatever happens, the client gets an envelope: a :class:`ClientError` becomes
a ClientException with its status, a lost database a 503, and anything else a
500 whose message carries only a short error id that is also in the log.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

import redis
import redis.exceptions
from werkzeug import Request
from werkzeug import Response
from werkzeug.exceptions import HTTPException

from passport import metrics
from passport.composition import Services
from passport.composition import utcnow
from passport.config import Settings
from passport.errors import ClientError
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import ServiceUnavailable
from passport.logsetup import code_location
from passport.oidc.provider import Provider
from passport.services import health
from passport.services.applications import registered_origins
from passport.services.kek import KeyConfigurationError
from passport.web import binding
from passport.web import metrics as web_metrics
from passport.web import openapi
from passport.web import origins
from passport.web.context import RequestContext
from passport.web.envelope import Envelope
from passport.web.envelope import client_error
from passport.web.envelope import render
from passport.web.envelope import valid_callback
from passport.web.errors import WebError
from passport.web.errors import headers_of
from passport.web.errors import status_of
from passport.web.origins import CorsPolicy
from passport.web.registry import Endpoint
from passport.web.registry import Registry
from passport.web.routing import Handler
from passport.web.routing import Route
from passport.web.routing import Router

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment

log = logging.getLogger("passport")
access_log = logging.getLogger("passport.access")

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (*health.UNREACHABLE, ServiceUnavailable)
ENDPOINT_KEY = "passport.endpoint"
_HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ORIGIN_CACHE_SECONDS = 2.0


def _vary_on_origin(response: Response) -> None:
    """``Vary: Origin`` added to the response's ``Vary`` (RFC 9110 §12.5.5), without
    werkzeug's ``response.vary`` (a parsed header set: a tenth of a cheap answer)."""
    current = response.headers.get("Vary")
    if not current:
        response.headers["Vary"] = "Origin"
    elif "origin" not in (part.strip().lower() for part in current.split(",")):
        response.headers["Vary"] = current + ", Origin"


def _safe_path(path: str) -> str:
    return "".join(c if c.isprintable() and c != " " else "?" for c in path[:200])


Middleware = Callable[[Request, Handler], Response]


def _envelope_refusal(request: Request, error: WebError) -> Response:
    """How the Passport API and the operational URLs answer a refusal of the router."""
    return client_error(error)


def _chain(middleware: Middleware, call_next: Handler) -> Handler:
    return lambda request: middleware(request, call_next)


def _no_handler(request: Request) -> Response:
    raise AssertionError("the API route is dispatched by PassportApp.api")


class PassportApp:
    """One per process; safe to share between the threads of a WSGI server."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Services | None = None,
        registry: Registry | None = None,
        clock: Callable[[], datetime] = utcnow,
        redis_client: redis.Redis | None = None,
    ) -> None:
        if registry is None:
            from passport.api import API

            registry = API
        self.settings = settings
        self.services = services or Services(settings, clock=clock, redis_client=redis_client)
        self.registry = registry
        self._origins: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._origins_lock = threading.Lock()
        self._openapi: str | None = None
        self.oidc = Provider(self.services, self.context)
        self._api_route = Route(
            "/<Controller>/<method>", frozenset(), _no_handler, _envelope_refusal, "api"
        )
        self.router = Router(self._routes(), api=self._api_route)
        self._pipeline = self._build_pipeline()
        self._security_headers = _SECURITY_HEADERS + ((_HSTS,) if settings.secure_cookies else ())

    # -- WSGI -------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        request.max_content_length = self.settings.max_body_bytes
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
        try:
            response = self.handle(request)
        except Exception as exc:  # the last resort: never an unhandled error
            response = self._unexpected(exc)
        headers = self._final_headers(request, response, request_id)
        elapsed = time.perf_counter() - started
        status = response.status_code
        metrics.observe(environ.get(ENDPOINT_KEY, "other"), status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "%s %s %d %.1fms rid=%s",
                request.method,
                _safe_path(request.path),
                status,
                elapsed * 1000,
                request_id,
            )
        # Straight to the server: werkzeug's generic response path costs more than the
        # whole of a session check, and our responses are always complete bodies.
        start_response(response.status, headers)
        return [] if request.method == "HEAD" else response.iter_encoded()

    def _final_headers(
        self, request: Request, response: Response, request_id: str
    ) -> list[tuple[str, str]]:
        """The response's headers plus the security headers every answer carries."""
        headers = response.headers.to_wsgi_list()
        present = {name.lower() for name, _ in headers}
        for name, value in self._security_headers:
            if name.lower() not in present:
                headers.append((name, value))
        if (
            "strict-transport-security" not in present
            and not self.settings.secure_cookies
            and origins.scheme(request, self.settings) == "https"
        ):
            headers.append(_HSTS)
        headers.append(("X-Request-ID", request_id))
        return headers

    def _unexpected(self, exc: BaseException) -> Response:
        if isinstance(exc, UNAVAILABLE_ERRORS):
            return self._unavailable(exc)
        error_id = secrets.token_hex(4)
        log.error(
            "error_id=%s unexpected %s at %s", error_id, type(exc).__name__, code_location(exc)
        )
        return render(
            Envelope(server_errors=[f"An unexpected error occurred (error id {error_id})."]), 500
        )

    def _unavailable(self, exc: BaseException) -> Response:
        message = (
            exc.message
            if isinstance(exc, ServiceUnavailable)
            else "The database is unreachable; retry later."
        )
        log.warning("unavailable: %s at %s", type(exc).__name__, code_location(exc))
        retry = str(ServiceUnavailable.retry_after)
        return render(Envelope(server_errors=[message]), 503, headers={"Retry-After": retry})

    # -- the middleware stack and the one routing map ------------------------------
    def _build_pipeline(self) -> Handler:
        """The handler of every request: middleware, outermost first, then the router.

        Each middleware takes the request and the rest of the stack; it may answer by
        itself (a refusal) or call on.  What every answer needs whatever happened — the
        request id, the access log, metrics, the security headers and the last-resort
        handler — is the WSGI entry point's (:meth:`__call__`), around all of this.
        """
        stack: list[Middleware] = [self._limit_sizes, self._trusted_host]
        handler: Handler = self._dispatch
        for middleware in reversed(stack):
            handler = _chain(middleware, handler)
        return handler

    def handle(self, request: Request) -> Response:
        return self._pipeline(request)

    def _limit_sizes(self, request: Request, call_next: Handler) -> Response:
        """Size limits (RFC 9110 §15.5.15 414, §15.5.14 413): the query string here, the
        body as it is read (``max_content_length``)."""
        request.max_content_length = self.settings.max_body_bytes
        if len(request.environ.get("QUERY_STRING", "")) > self.settings.max_query_bytes:
            return client_error(WebError("The query string is too long.", source="url", number=414))
        return call_next(request)

    def _trusted_host(self, request: Request, call_next: Handler) -> Response:
        misdirected = self._misdirected(request)
        return misdirected if misdirected is not None else call_next(request)

    def _dispatch(self, request: Request) -> Response:
        route, found = self.router.match(request)
        request.environ[ENDPOINT_KEY] = route.label if route is not None else "other"
        if route is None:
            assert isinstance(found, WebError)
            return client_error(found)
        if route is self._api_route and not isinstance(found, WebError):
            controller = found.get("controller") or "Service"
            return self.api(request, controller, found.get("method") or "Index")
        response = self._answer(request, route, found)
        if route.cors is not None:
            self._route_cors(request, route, route.cors, response)
        return response

    def _answer(self, request: Request, route: Route, found: dict[str, str] | WebError) -> Response:
        if isinstance(found, WebError):
            return route.refuse(request, found)
        if route.cors is not None and request.method == "OPTIONS":
            return self._route_preflight(request, route, route.cors)
        try:
            return route.handler(request)
        except KeyConfigurationError as exc:
            return render(Envelope(server_errors=[str(exc)]), 503)

    # -- CORS of the routes that declare it (the OpenID Connect endpoints) ----------
    def _route_preflight(self, request: Request, route: Route, policy: CorsPolicy) -> Response:
        """``OPTIONS`` on a route with a CORS policy (Fetch standard, "CORS-preflight
        request"): 204 for an origin the policy allows and a method the route accepts,
        403 in the route's error format otherwise.  The allow-headers go on in
        :meth:`_route_cors`, with the rest.  Without ``Origin`` it is a plain OPTIONS
        (RFC 9110 §9.3.7): 204 with ``Allow``."""
        origin = request.headers.get("Origin")
        accepted = self.router.accepted(route)
        if origin is None:
            return Response(status=204, headers={"Allow": ", ".join(sorted(accepted))})
        wanted = request.headers.get("Access-Control-Request-Method", "").upper()
        if policy.allow_origin(origin, self._cors_origins(policy)) is None or (
            wanted and wanted not in accepted - {"OPTIONS"}
        ):
            return route.refuse(
                request,
                WebError(
                    "This origin may not call this endpoint from a browser: register it "
                    "as an allowed origin of the application.",
                    source="Origin",
                    value=origin[:200],
                    number=403,
                ),
            )
        return Response(status=204)

    def _route_cors(
        self, request: Request, route: Route, policy: CorsPolicy, response: Response
    ) -> None:
        """The CORS headers of every answer of a route with a policy — the handler's, a
        refusal of the router, a preflight.  Never ``Access-Control-Allow-Credentials``
        (:class:`~passport.web.origins.CorsPolicy` says why)."""
        if not policy.any_origin:
            _vary_on_origin(response)
        preflight = request.method == "OPTIONS"
        if preflight and response.status_code != 204:
            return  # a refused preflight says nothing a page could take for consent
        allowed = policy.allow_origin(request.headers.get("Origin"), self._cors_origins(policy))
        if allowed is None:
            return
        response.headers["Access-Control-Allow-Origin"] = allowed
        if preflight:
            response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(route.methods))
            response.headers["Access-Control-Allow-Headers"] = ", ".join(policy.allow_headers)
            response.headers["Access-Control-Max-Age"] = str(policy.max_age)
        elif policy.expose_headers:
            response.headers["Access-Control-Expose-Headers"] = ", ".join(policy.expose_headers)

    def _cors_origins(self, policy: CorsPolicy) -> frozenset[str]:
        """The registered origins, when the policy needs them (no query for ``*``)."""
        return frozenset() if policy.any_origin else self.registered_origins()

    def _routes(self) -> list[Route]:
        """Operational URLs; the protocol endpoints and pages come from the provider."""

        def operational(path: str, handler: Handler) -> Route:
            return Route(path, frozenset({"GET"}), handler, _envelope_refusal, path)

        return [
            *self.oidc.routes(),
            operational("/healthz", self._healthz),
            operational("/readyz", lambda request: self.readiness()),
            operational("/openapi.json", self._openapi_document),
            operational("/metrics", self._metrics),
        ]

    def _healthz(self, request: Request) -> Response:
        return render(Envelope(success=True, data={"Status": "alive"}), 200)

    def _metrics(self, request: Request) -> Response:
        return web_metrics.exposition(
            request,
            self.settings.metrics_token,
            origins.client_ip(request, self.settings),
            self._refresh_gauges,
        )

    def _openapi_document(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = json.dumps(openapi.build(self.registry, self.settings.public_url))
        return Response(self._openapi, content_type="application/json; charset=utf-8")

    def _misdirected(self, request: Request) -> Response | None:
        """Without ``public_url`` (SQLite development) Passport is its served address, the
        issuer: a request that names another host (``Host: evil.example``, or ``localhost``
        for ``127.0.0.1``) would get cookies and pages for a name the configuration never
        gave (OpenID Connect Core §2: ``iss`` is exactly the issuer).  GET and HEAD are sent
        to the same path on the issuer; anything else is refused (421, RFC 9110 §15.5.20).
        ``/healthz`` answers whatever the name, for probes."""
        issuer = self.settings.issuer
        if self.settings.public_url or issuer is None or request.path == "/healthz":
            return None
        served = urlsplit(issuer)
        host = request.host.lower()
        if host == served.netloc or (served.port == 80 and host == served.hostname):
            return None
        if request.method in ("GET", "HEAD"):
            query = request.environ.get("QUERY_STRING", "")
            location = issuer + quote(request.path) + (f"?{query}" if query else "")
            return Response(status=307, headers={"Location": location})
        return client_error(
            WebError(
                f"This Passport answers at {issuer} only; set PASSPORT_PUBLIC_URL to serve "
                "it under another name.",
                source="Host",
                value=host[:100],
                number=400,
                status=421,
            )
        )

    def _refresh_gauges(self) -> None:
        pool = self.services.db.engine.pool
        metrics.DB_POOL_IN_USE.set(getattr(pool, "checkedout", lambda: 0)())
        metrics.DB_POOL_SIZE.set(getattr(pool, "size", lambda: 0)())
        try:
            metrics.ACTIVE_SESSIONS.set(self.services.sessions.count_active(self.services.clock()))
        except UNAVAILABLE_ERRORS:
            pass

    def readiness(self) -> Response:
        """``/readyz``: 503 while a part does not answer or the schema is behind
        (:func:`passport.services.health.readiness`, also the console's health screen)."""
        state = health.readiness(self.services.db, self.services.redis)
        if state.failure is not None:
            return self._unavailable(state.failure)
        if not state.schema_current:
            return render(
                Envelope(
                    server_errors=["The database schema is not current; run `passport db upgrade`."]
                ),
                503,
                headers={"Retry-After": str(ServiceUnavailable.retry_after)},
            )
        return render(Envelope(success=True, data={"Status": "ready"}), 200)

    # -- the Passport API ---------------------------------------------------------
    def context(
        self, request: Request, *, write: bool, sessions_allowed: bool = True
    ) -> RequestContext:
        """The scope of one request: its transaction, who is logged in, its audit records."""
        return RequestContext(
            self.services,
            request,
            client_ip=origins.client_ip(request, self.settings),
            write=write,
            sessions_allowed=sessions_allowed,
            origins_changed=self.forget_origins,
        )

    def registered_origins(self) -> frozenset[str]:
        """Origins registered by applications, cached for a couple of seconds."""
        stamp, cached = self._origins
        if time.monotonic() - stamp < _ORIGIN_CACHE_SECONDS:
            return cached
        with self._origins_lock:
            with self.services.db.session() as db:
                fresh = registered_origins(db)
            self._origins = (time.monotonic(), fresh)
            return fresh

    def forget_origins(self) -> None:
        """Drop the cached registered origins (after they changed in this process)."""
        self._origins = (0.0, frozenset())

    def api(self, request: Request, controller: str, method: str) -> Response:
        try:
            query = binding.parse_pairs(request.environ.get("QUERY_STRING", ""), "query string")
        except ClientError as error:
            return client_error(error)
        callback = query.get("callback")
        if callback is not None and not valid_callback(callback):
            return client_error(
                Invalid(
                    "The callback must be a JavaScript identifier (dotted, at most 64 characters).",
                    source="callback",
                    value=callback[:100],
                )
            )
        endpoint = self.registry.find(controller, method)
        request.environ[ENDPOINT_KEY] = endpoint.path if endpoint else "other"
        if endpoint is None:
            name = f"{controller}/{method}"
            return client_error(
                WebError(f"No method '{name}' found.", source="url", value=name, number=404),
                callback=callback,
            )
        if callback is not None and (not endpoint.jsonp or request.method not in ("GET", "HEAD")):
            return client_error(
                Invalid(
                    "JSONP is only available for read-only methods that allow it.",
                    source="callback",
                    value=callback,
                )
            )
        response = self._api_call(request, endpoint, query, callback)
        if callback is None:
            self._cors(request, response, endpoint)
        return response

    def _cors(self, request: Request, response: Response, endpoint: Endpoint) -> None:
        """CORS with credentials (Fetch standard, CORS protocol): registered origins only,
        and only on methods marked ``cross_origin`` — never on the administration API."""
        _vary_on_origin(response)
        origin = request.headers.get("Origin")
        if (
            endpoint.cross_origin
            and origin
            and origin != "null"
            and origin.lower() in self.registered_origins()
        ):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            if request.method == "OPTIONS":
                allowed = sorted(endpoint.http_methods - {"HEAD"})
                response.headers["Access-Control-Allow-Methods"] = ", ".join(allowed)
                response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Requested-With"
                response.headers["Access-Control-Max-Age"] = "600"

    def _preflight(self, request: Request, endpoint: Endpoint) -> Response:
        origin = request.headers.get("Origin") or ""
        wanted = request.headers.get("Access-Control-Request-Method", "").upper()
        if (
            not endpoint.cross_origin
            or origin.lower() not in self.registered_origins()
            or (wanted and wanted not in endpoint.http_methods)
        ):
            return client_error(
                Forbidden(
                    "This origin may not call this method.",
                    source="Origin",
                    value=origin[:200] or None,
                )
            )
        return Response(status=204)

    def _origin_allowed(self, origin: str, request: Request, endpoint: Endpoint) -> bool:
        """Passport's own pages may call any method; a registered application's pages only
        the methods marked ``cross_origin`` (see :func:`passport.web.registry.expose`)."""
        return origin == origins.own_origin(request, self.settings) or (
            endpoint.cross_origin and origin in self.registered_origins()
        )

    def _api_call(
        self, request: Request, endpoint: Endpoint, query: dict[str, str], callback: str | None
    ) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request, endpoint)
        if request.method not in endpoint.http_methods:
            allow = ", ".join(sorted(endpoint.http_methods | {"OPTIONS"}))
            return client_error(
                WebError(
                    f"Method {request.method} is not allowed here; use {allow}.",
                    source="method",
                    value=request.method[:16],
                    number=405,
                    headers={"Allow": allow},
                )
            )
        cookie = request.cookies.get(self.settings.session_cookie_name)
        try:
            body: dict[str, Any] = {}
            if not endpoint.read_only:
                # CSRF (OWASP ASVS 5 3.5.x): a write says where it comes from, and that
                # place may call this method; a cookie without Origin/Referer is refused.
                origin = origins.request_origin(request)
                if (origin is not None and not self._origin_allowed(origin, request, endpoint)) or (
                    origin is None and cookie
                ):
                    raise Forbidden(
                        "Cross-site request refused: the Origin is not Passport or a "
                        "registered application."
                        if endpoint.cross_origin
                        else "Cross-site request refused: this method answers Passport's own "
                        "pages only.",
                        source="Origin",
                        value=origin,
                    )
                if (request.content_length or 0) > self.settings.max_body_bytes:
                    raise WebError("The request body is too large.", source="body", number=413)
                body = binding.parse_body(request)
            kwargs = binding.bind(endpoint, query, body)
        except ClientError as error:
            return client_error(error, callback=callback)
        except HTTPException as exc:  # werkzeug's RequestEntityTooLarge on a streamed body
            return client_error(
                WebError("The request body is too large.", source="body", number=exc.code or 413)
            )

        sessions_allowed = True
        if callback is not None:
            referer = origins.referer_origin(request)
            sessions_allowed = referer is not None and self._origin_allowed(
                referer, request, endpoint
            )
        ctx = self.context(request, write=not endpoint.read_only, sessions_allowed=sessions_allowed)

        def call_endpoint() -> Response:
            envelope = Envelope()
            try:
                controller = endpoint.cls(ctx)
                if endpoint.right is not None:
                    controller.authorize(endpoint.right)
                envelope.data = endpoint.func(controller, **kwargs)
            except ClientError as error:
                ctx.refuse()
                envelope.logged_in = ctx.logged_in
                envelope.client_errors.append(error)
                return render(
                    envelope, status_of(error), callback=callback, headers=headers_of(error)
                )
            envelope.success = True
            envelope.logged_in = ctx.logged_in
            return render(envelope, 200, callback=callback)

        try:
            return ctx.respond(call_endpoint)
        except UNAVAILABLE_ERRORS as exc:
            return self._unavailable(exc)


def create_app(settings: Settings, **kwargs: Any) -> PassportApp:
    return PassportApp(settings, **kwargs)
