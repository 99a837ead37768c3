"""Who is calling from where: client address behind proxies, and origin policy.

* ``X-Forwarded-For``/``-Proto`` are believed only when the direct peer is a
  configured trusted proxy; the client is the right-most untrusted address.
* Cookie-authenticated writes (CSRF, ASVS 5 3.5.x): the request's ``Origin``
  (or the origin of its ``Referer``) must be Passport itself or an origin that
  an application registered.  A cross-site write without either header is
  refused too; non-browser clients simply send ``Origin``.
* CORS with credentials echoes only registered origins, never ``*``, never
  ``null``, and always says ``Vary: Origin``.
"""

from __future__ import annotations

import ipaddress

from werkzeug import Request

from passport.config import Settings
from passport.services.applications import normalise_origin


def _is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in trusted:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


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
