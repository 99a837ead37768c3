"""Who is calling from where: client address behind proxies, and origin policy.

* ``X-Forwarded-For``/``-Proto`` are believed only when the direct peer is a
  configured trusted proxy; the client is the right-most untrusted address.
* Cookie-authenticated writes (CSRF, ASVS 5 3.5.x): the request's ``Origin``
  (or the origin of its ``Referer``) must be Passport itself or an origin that
  an application registered.  A cross-site write without either header is
  refused too; non-browser clients simply send ``Origin``.
* CORS with credentials (the Passport API) echoes only registered origins, never
  ``*``, never ``null``, and always says ``Vary: Origin``.
* CORS without credentials (the OpenID Connect endpoints): a route's
  :class:`CorsPolicy` — any origin (``*``) for public documents, registered origins
  for the endpoints that browser applications call with a token or a code.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from werkzeug import Request

from passport.config import Settings
from passport.services.applications import normalise_origin


@functools.lru_cache(maxsize=1024)
def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    """Whether ``address`` is in one of the ``trusted`` networks (a pure function of
    both, remembered: a proxy's few addresses are asked about on every request)."""
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(trusted))


@functools.lru_cache(maxsize=8)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The ``trusted_proxies`` setting parsed once (it is read on every proxied request,
    forward-auth's above all); an entry that is no network is skipped, as before."""
    networks = []
    for entry in trusted:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def from_trusted_proxy(request: Request, settings: Settings) -> bool:
    """Whether the direct peer is one of the configured ``trusted_proxies``."""
    return _is_trusted(request.remote_addr or "", settings.trusted_proxies)


def client_ip(request: Request, settings: Settings) -> str:
    peer = request.remote_addr or ""
    if not _is_trusted(peer, settings.trusted_proxies):
        return peer
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _is_trusted(address, settings.trusted_proxies):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return peer
    return peer


def scheme(request: Request, settings: Settings) -> str:
    if _is_trusted(request.remote_addr or "", settings.trusted_proxies):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            return proto
    return request.scheme


def own_origin(request: Request, settings: Settings) -> str:
    """Passport's origin: the configured issuer; the request's own only where none is known."""
    if settings.issuer:
        return settings.issuer
    return normalise_origin(f"{scheme(request, settings)}://{request.host}") or ""


def request_origin(request: Request) -> str | None:
    """The origin a browser says the request comes from: ``Origin``, else ``Referer``'s."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return normalise_origin(origin) or "null"
    referer = request.headers.get("Referer")
    if referer:
        return normalise_origin(referer) or "null"
    return None


def referer_origin(request: Request) -> str | None:
    referer = request.headers.get("Referer")
    return normalise_origin(referer) if referer else None


@dataclass(frozen=True)
class CorsPolicy:
    """Which cross-origin pages may read a route's answers (Fetch standard, "CORS
    protocol"), declared on the route (:class:`passport.web.routing.Route`) and applied
    by the dispatcher alone (:meth:`passport.app.PassportApp._dispatch`).

    Never with credentials: the routes that carry a policy read no cookie — a client
    authenticates with its secret or a PKCE verifier, a resource request with its
    Bearer token — so ``Access-Control-Allow-Credentials`` is never sent, and with it
    a page could not make the browser attach Passport's session cookie anyway.  For
    the same reason an actual request from an origin the policy does not allow is not
    refused: it is answered as to any other client (which could send it without a
    browser), only without ``Access-Control-Allow-Origin``, so the page cannot read it.

    ``any_origin``: ``Access-Control-Allow-Origin: *`` for every origin, ``null``
    included — public documents (discovery, the JWK Set) that any page may read.
    Otherwise only origins registered by an application (``Application.allowed_origins``)
    are echoed, never ``null`` (an opaque origin — a sandboxed frame, a ``file:`` page —
    names no application), and every answer says ``Vary: Origin``, since it depends on
    it (Fetch §3.2.6 "CORS protocol and HTTP caches").
    """

    any_origin: bool = False
    # What a preflight allows a page to send: the Bearer token or Basic credentials
    # (``Authorization``) and a form or JSON body (``Content-Type``).  No DPoP.
    allow_headers: tuple[str, ...] = ("Authorization", "Content-Type")
    # Response headers a page may read beyond the safelisted ones: a resource's
    # ``WWW-Authenticate`` challenge (RFC 6750 §3), which clients such as oauth4webapi
    # parse to tell invalid_token from insufficient_scope.
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600

    def allow_origin(self, origin: str | None, registered: frozenset[str]) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None
        when that origin may not read the answer (or the request named none)."""
        if origin is None:
            return None
        if self.any_origin:
            return "*"
        # The header must equal the browser's serialisation of the origin byte for byte
        # (Fetch, "CORS check"); registered origins are kept in that form.
        return origin if origin != "null" and origin in registered else None


# Discovery and the JWK Set: any page may read them.
PUBLIC_CORS = CorsPolicy(any_origin=True)
# Token, userinfo, revocation: the pages of registered applications.
REGISTERED_CORS = CorsPolicy(expose_headers=("WWW-Authenticate",))
