"""Application credentials: client ids, secrets shown once and kept hashed, rotation.

Client secrets are 256 random bits, so a single SHA-256 is enough to keep them
safe at rest (no password-style stretching needed); comparisons are constant-time.
During a rotation the previous secret keeps working until its overlap ends.

What a successful authentication found may be kept per process (:class:`ClientCache`):
machine clients authenticate on every token and introspection request, and reading
their application is most of such a request's work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from urllib.parse import unquote_to_bytes

from sqlalchemy import Connection
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.storage.db import APPLICATION_GENERATION
from passport.storage.db import Database
from passport.storage.models import Application
from passport.storage.models import ApplicationResource
from passport.storage.models import ApplicationResourceClient


def new_client_id() -> str:
    return secrets.token_urlsafe(16)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256$" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_stamp(app: Application) -> str:
    """A version stamp of the application's current client credential, for a form to
    say which credential it was shown for (the console's "new secret" form: posted
    again by a reload, it must not rotate a second time).  Changes with every new
    secret; not the hash itself, and of no use to guess the secret (a digest of a
    digest of 256 random bits, cut to 64 bits)."""
    material = "passport-secret-stamp:" + (app.client_id or "") + ":" + (app.secret_hash or "")
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _matches(stored: str | None, secret: str) -> bool:
    return stored is not None and hmac.compare_digest(stored, hash_secret(secret))


def issue_credentials(app: Application) -> str:
    """Give ``app`` a client id (if it has none) and a fresh secret; return the secret."""
    if app.client_id is None:
        app.client_id = new_client_id()
    secret = new_secret()
    app.secret_hash = hash_secret(secret)
    return secret


def rotate_secret(app: Application, now: datetime, overlap_seconds: int) -> str:
    secret = new_secret()
    if overlap_seconds > 0 and app.secret_hash:
        app.previous_secret_hash = app.secret_hash
        app.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    else:
        app.previous_secret_hash = None
        app.previous_secret_expires_at = None
    app.secret_hash = hash_secret(secret)
    return secret


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    secret: str


def parse_basic(header: str | None) -> BasicCredentials | None:
    """``Authorization: Basic base64(id:secret)`` (RFC 7617), or None.

    RFC 6749 §2.3.1: the client id and the secret are each encoded with
    ``application/x-www-form-urlencoded`` (Appendix B) *before* they are joined with
    ``:`` and base64-encoded, so the header is split on its first ``:`` and then each
    part is form-decoded (``+`` is a space, ``%XX`` a byte; the bytes strict UTF-8).
    Conforming clients (openid-client, oauth4webapi, Spring, Nimbus) escape every
    character but ASCII letters and digits — a Passport secret's ``-`` and ``_``
    arrive as ``%2D`` and ``%5F``.

    Lenient clients that send the id and secret as they are keep working: Passport's
    client ids and secrets are ``secrets.token_urlsafe`` (``A-Z a-z 0-9 - _``), which
    contain neither ``%`` nor ``+``, and on such a string form-decoding changes
    nothing — the raw and the encoded spelling name the same credentials, so
    decoding is never ambiguous for what Passport issues.  The cost falls only on a
    credential that holds ``%`` or ``+`` itself (none that Passport issues): sent
    unencoded it decodes to something else and fails, as RFC 6749 says it must.
    A malformed escape (``%`` without two hex digits) or bytes that are not UTF-8
    authenticate nobody.
    """
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if len(decoded) > 512:
        return None
    encoded_id, sep, encoded_secret = decoded.partition(":")
    client_id, secret = _form_decode(encoded_id), _form_decode(encoded_secret)
    if not sep or not client_id or not secret:
        return None
    return BasicCredentials(client_id, secret)


_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _form_decode(value: str) -> str | None:
    """``application/x-www-form-urlencoded`` decoding of one value (RFC 6749 Appendix B,
    the WHATWG URL standard's parser): ``+`` is a space, ``%XX`` a byte, the result
    strict UTF-8.  None for a ``%`` not followed by two hex digits, or bytes that are
    not UTF-8 — where a lenient decoder would keep the ``%`` or substitute U+FFFD and
    so turn two different headers into one credential."""
    if _MALFORMED_ESCAPE.search(value):
        return None
    try:
        return unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def authenticate(db: Session, credentials: BasicCredentials, now: datetime) -> Application | None:
    """The enabled, confidential application these credentials belong to, or None."""
    app = db.scalars(
        select(Application).where(Application.client_id == credentials.client_id)
    ).first()
    # Compared again here: MariaDB's collation matches ids that differ in letter case or
    # trailing spaces, and a client id is exactly what was issued.
    if app is None or app.client_id != credentials.client_id:
        hmac.compare_digest(hash_secret(credentials.secret), hash_secret("x"))  # same work
        return None
    current = _matches(app.secret_hash, credentials.secret)
    previous = (
        app.previous_secret_expires_at is not None
        and now < app.previous_secret_expires_at
        and _matches(app.previous_secret_hash, credentials.secret)
    )
    if not (current or previous) or not app.enabled or not app.confidential:
        return None
    return app


# A snapshot (the clients and resource servers read under one generation) is used for at
# most this long (seconds), even if no change is seen: the backstop for an application row
# edited by hand in SQL, which does not move the generation
# (passport.storage.db.bump_application_generation).
CACHE_MAX_AGE = 30.0
CACHE_SIZE = 1024  # client authentications kept per snapshot; beyond, the oldest go


@dataclass(frozen=True)
class Client:
    """What the machine endpoints (the client credentials grant, introspection) need to
    know of an authenticated application: plain values, safe to share between threads."""

    id: int
    client_id: str
    confidential: bool
    scopes: tuple[str, ...]
    access_token_format: str
    id_token_signed_response_alg: str | None
    # Its own RFC 8707 resource identifiers (when it is also a resource server).
    resources: tuple[str, ...]

    @classmethod
    def of(cls, app: Application) -> Client:
        return cls(
            id=app.id,
            client_id=app.client_id or "",
            confidential=app.confidential,
            scopes=tuple(app.scopes),
            access_token_format=app.access_token_format,
            id_token_signed_response_alg=app.id_token_signed_response_alg,
            resources=tuple(app.resources),
        )


@dataclass(frozen=True)
class ResourceServer:
    """An application that registered an RFC 8707 resource identifier."""

    id: int
    enabled: bool
    # The applications (ids) it lets get client credentials tokens for its identifiers.
    clients: frozenset[int]


@dataclass(frozen=True)
class _Known:
    client: Client
    # When the secret used was the previous one (a rotation's overlap): when it stops.
    valid_until: datetime | None


class Snapshot:
    """The clients authenticated and the resource servers read while
    ``application_generation`` had one value: valid exactly as long as it keeps it."""

    def __init__(self, database: Database, generation: int | None) -> None:
        self.database = database
        self.generation = generation
        self.created = time.monotonic()
        self._clients: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._servers: dict[str, ResourceServer] | None = None
        self._lock = threading.Lock()

    @property
    def caching(self) -> bool:
        return self.generation is not None

    def authenticate(
        self, db: Session, credentials: BasicCredentials, now: datetime
    ) -> Client | None:
        """:func:`authenticate`, answered from this snapshot when these very credentials
        succeeded under it (and a previous secret's overlap has not ended since)."""
        key = (credentials.client_id, hash_secret(credentials.secret))
        with self._lock:
            known = self._clients.get(key)
        if known is not None and (known.valid_until is None or now < known.valid_until):
            return known.client
        app = authenticate(db, credentials, now)
        if app is None:
            return None
        client = Client.of(app)
        if self.caching:
            current = _matches(app.secret_hash, credentials.secret)
            entry = _Known(client, None if current else app.previous_secret_expires_at)
            with self._lock:
                self._clients[key] = entry
                while len(self._clients) > CACHE_SIZE:
                    self._clients.popitem(last=False)
        return client

    def resource_server(self, uri: str) -> ResourceServer | None:
        """The application that registered resource identifier ``uri``, if any."""
        servers = self._servers
        if servers is None:
            servers = self._load_servers()
            if self.caching:
                self._servers = servers
        return servers.get(uri)

    def _load_servers(self) -> dict[str, ResourceServer]:
        with self.database.hot_read() as conn:
            listed: dict[int, set[int]] = {}
            for api_id, client_app_id in conn.execute(
                select(ApplicationResourceClient.api_id, ApplicationResourceClient.client_app_id)
            ):
                listed.setdefault(api_id, set()).add(client_app_id)
            return {
                uri: ResourceServer(app_id, bool(enabled), frozenset(listed.get(app_id, ())))
                for uri, app_id, enabled in conn.execute(
                    select(ApplicationResource.uri, Application.id, Application.enabled).join(
                        Application, Application.id == ApplicationResource.application_id
                    )
                )
            }


class ClientCache:
    """What client authentications found, and who serves which resource identifier, kept
    per process in a :class:`Snapshot` per value of ``application_generation``.

    Client authentication entries are keyed by the client id and the SHA-256 of the
    secret presented — the form the secret has at rest, so the cache holds no more than
    the database does, and a wrong secret is never a hit.  Failures are never cached.

    A request either reads the generation first (:meth:`current`: one primary-key read,
    autocommit, on the per-thread hot connection) and uses the snapshot of that value,
    or uses the latest snapshot and checks the generation in the statement that acts
    (:meth:`latest`); the value is read *before* anything it covers, so what a snapshot
    holds is never older than its generation.  Any change to any application —
    disabling it, rotating or revoking its secret, changing its scopes, resources,
    resource clients or token format, deleting it — commits a new value
    (:func:`passport.storage.db.bump_application_generation`), so every process sees
    the change at its next request, exactly as without a cache.
    A secret accepted during a rotation's overlap is accepted from the cache only until
    the overlap ends.  A snapshot lives at most :data:`CACHE_MAX_AGE` seconds."""

    def __init__(self, database: Database, *, max_age: float = CACHE_MAX_AGE) -> None:
        self.database = database
        self.max_age = max_age
        self._snapshot = Snapshot(database, None)
        self._lock = threading.Lock()

    def latest(self) -> Snapshot:
        """The snapshot in use, without reading the generation: for a request that
        checks the generation in the very statement that acts on what the snapshot said
        (a guarded INSERT, a read that returns the generation beside the token), and
        takes :meth:`current` and starts again when it moved.  A snapshot past its
        maximum age, or one that never read a generation, is replaced now."""
        snapshot = self._snapshot
        if snapshot.generation is None or time.monotonic() - snapshot.created >= self.max_age:
            return self.current()
        return snapshot

    def current(self) -> Snapshot:
        """The snapshot of the generation read now (one primary-key read)."""
        generation = self.database.application_generation()
        snapshot = self._snapshot
        if (
            generation is None
            or snapshot.generation != generation
            or time.monotonic() - snapshot.created >= self.max_age
        ):
            snapshot = Snapshot(self.database, generation)
            with self._lock:
                self._snapshot = snapshot
        return snapshot

    @contextmanager
    def locked(self) -> Iterator[tuple[Connection, Session, Snapshot]]:
        """A transaction that holds ``application_generation`` share-locked (``FOR
        SHARE``; on SQLite the write lock), with a session on the same connection and a
        snapshot of that generation that only this request uses.  No change to the
        applications can commit meanwhile (a change bumps the row first), so what is
        decided in it is current when it is written: the last resort of a request whose
        snapshot went stale again and again, instead of a refusal."""
        with self.database.write_engine.connect() as conn, conn.begin():
            generation = conn.execute(APPLICATION_GENERATION.with_for_update(read=True)).scalar()
            snapshot = Snapshot(self.database, None if generation is None else int(generation))
            with Session(bind=conn) as session:
                yield conn, session, snapshot
