"""The least work a session check can do, served exactly like Passport: the baseline
that ``Account/status`` is measured against.

Reads the cookie, hashes it (SHA-256, as Passport stores it) and makes one
Redis GET (``BENCH_REDIS_URL`` set) or one primary-key SELECT on the same
database and driver (``BENCH_DATABASE_URL``), then answers a fixed JSON body.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any

import redis
from sqlalchemy import create_engine
from sqlalchemy import text

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")
client = redis.Redis.from_url(REDIS_URL) if REDIS_URL else None
engine = create_engine(DATABASE_URL, pool_size=8) if DATABASE_URL and not client else None
local = threading.local()
QUERY = text("SELECT user_id, expires_at FROM login_sessions WHERE id_hash = :h")


def _connection() -> Any:
    conn = getattr(local, "conn", None)
    if conn is None:
        assert engine is not None
        conn = local.conn = engine.connect()
    return conn


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
    token = cookie["passport_session"].value if "passport_session" in cookie else ""
    digest = hashlib.sha256(token.encode()).hexdigest()
    if client is not None:
        found = client.get(f"passport:session:{digest}") is not None
    else:
        conn = _connection()
        found = conn.execute(QUERY, {"h": digest}).first() is not None
        conn.rollback()
    body = b'{"LoggedIn": true}' if found else b'{"LoggedIn": false}'
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
