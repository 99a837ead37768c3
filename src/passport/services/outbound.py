"""Where Passport itself may send requests: public addresses only, unless allowed.

OpenID Connect Back-Channel Logout 1.0 §2.2 has Passport POST a logout token to the
``backchannel_logout_uri`` that an application registered.  Registered by an
``apps:write`` delegate, such an address could point Passport at its own machine or
network (``http://127.0.0.1:6379/``, a cloud metadata service) and, through the
delivery's outcome, let that delegate probe ports there (server-side request
forgery).  So Passport sends only to https URLs whose host is public: not loopback,
link-local, private, shared (CGNAT), reserved or multicast.

Two checks: at registration a literal IP address (also the forms ``127.1``,
``2130706433`` and ``0x7f.1`` that the resolver reads as IPv4, and IPv6 addresses
carrying an IPv4 one) and the ``localhost`` names are refused (no DNS lookup there);
at delivery every address the host name resolves to is checked, and nothing is sent
when one is not public.  The operator may allow private targets
(``PASSPORT_BACKCHANNEL_ALLOW_PRIVATE``): the example application of the README runs
on ``http://127.0.0.1:5000``.  Plain functions, no HTTP.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import timedelta

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How often a back-channel logout notification is tried before it is given up
#: (:mod:`passport.oidc.backchannel` delivers, ``listings.backchannel_status`` reports).
LOGOUT_MAX_ATTEMPTS = 12


def logout_backoff(attempts: int) -> timedelta:
    """How long a notification waits after its ``attempts``-th failed delivery: doubling,
    at most an hour.  Its failed attempt was made this long before its next one."""
    return timedelta(seconds=min(3600, 2 ** min(attempts, 12)))


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# IPv4-compatible (RFC 4291 §2.5.5.1, deprecated: ::127.0.0.1) and IPv4-translated
# (RFC 2765 §2.1: ::ffff:0:127.0.0.1) addresses carry an IPv4 address in their last 32 bits.
_CARRIERS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("::ffff:0:0:0/96"))


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or any(address in network for network in _CARRIERS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: Address) -> bool:
    """A globally routable unicast address (IANA special-purpose registries)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return is_public(inner)
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> Address | None:
    """``host`` as an IP address when the resolver would read it as one, else None."""
    host = host.rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:  # inet_aton's forms, which getaddrinfo accepts too: 127.1, 2130706433, 0x7f.1
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_problem(host: str) -> str | None:
    """Why ``host`` (a URL's host, no DNS lookup) is no public target, or None."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761 §6.3
        return "a loopback name"
    literal = literal_address(name)
    if literal is not None and not is_public(literal):
        return "not a public address"
    return None


def resolution_problem(host: str, port: int) -> str | None:
    """Why a request to ``host`` must not be sent, after resolving it, or None."""
    problem = host_problem(host)
    if problem is not None:
        return problem
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return "the host name does not resolve"
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            return "the host name resolves to an unreadable address"
        if not is_public(address):
            return "the host name resolves to a non-public address"
    return None
