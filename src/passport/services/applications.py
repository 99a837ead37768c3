"""Applications: lookup by name and the origins they registered."""

from __future__ import annotations

import unicodedata
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.storage.models import Application


def name_key(name: str) -> str:
    """Canonical form for "unique in any letter case": NFKC, casefold, NFKC."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def lock_for_counting(db: Session, application_id: int) -> None:
    """Lock the application's row until the transaction ends, so that a count of its
    live rows followed by an insert (the caps on pushed requests and device
    authorizations) runs one request at a time per client: without it, concurrent
    requests on PostgreSQL or MariaDB all count the same room and overshoot the cap.
    SQLite's write transactions are serial already (SQLAlchemy leaves ``FOR UPDATE``
    out there)."""
    db.execute(select(Application.id).where(Application.id == application_id).with_for_update())


def find_by_name(db: Session, name: str) -> Application | None:
    return db.scalars(select(Application).where(Application.name_key == name_key(name))).first()


_ID_BY_KEY = select(Application.id, Application.name).where(
    Application.name_key == bindparam("key")
)


class AppRef(NamedTuple):
    id: int
    name: str


def lookup(db: Session | Connection, name: str) -> AppRef | None:
    """Id and name of the application called ``name``: one Core SELECT (a hot path)."""
    row = db.execute(_ID_BY_KEY, {"key": name_key(name)}).first()
    return AppRef(row[0], row[1]) if row is not None else None


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case, or None when ``value`` is not an origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        return None  # port 0 is reserved (RFC 6335 §6): no page is served from it
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port not in (None, default) else ""
    return f"{parts.scheme}://{host}{suffix}"


def registered_origins(db: Session) -> frozenset[str]:
    """Every origin that some enabled application registered, normalised: a disabled
    application's pages get no CORS and pass no CSRF check."""
    origins: set[str] = set()
    enabled = select(Application.allowed_origins).where(Application.enabled.is_(True))
    for listed in db.scalars(enabled).all():
        for origin in listed:
            normal = normalise_origin(origin)
            if normal:
                origins.add(normal)
    return frozenset(origins)
