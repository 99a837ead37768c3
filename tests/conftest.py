"""Fixtures: a fresh database on each backend, a Passport app over it, a live server.

Each test run creates its own MariaDB and PostgreSQL databases and a
least-privilege user with exactly the SQL in ``docs/sql/`` (names and password
substituted), migrates them as that user, and drops them at the end.  Between
tests the tables are emptied (the seeded ``Passport`` application stays).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update

from passport.app import PassportApp
from passport.config import Settings
from passport.config import load_settings
from passport.storage import migrate
from passport.storage.db import create_db_engine
from passport.storage.models import Application
from passport.storage.models import Permission
from provision import Backend
from provision import create_mariadb
from provision import create_postgresql

from support import FakeClock
from support import Harness
from support import PassportClient

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "docs" / "sql"
# Each concurrent test run (a developer, a helper, CI) takes its own Redis database: tests
# flush it between cases.
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('PASSPORT_TEST_REDIS_DB', '13')}"
BACKENDS = ("sqlite", "mariadb", "postgresql")


SERVER_BACKENDS = ("mariadb", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="development loop (`make test-fast`): SQLite and the database session store "
        "only; no `passport serve` process, MariaDB, PostgreSQL or Redis",
    )


def _needs_more_than_sqlite(item: pytest.Item) -> bool:
    """Whether a test needs a server process, a database server or Redis."""
    if item.get_closest_marker("live") or "live_server" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    values: list[object] = []
    for value in callspec.params.values() if callspec else ():
        values.extend(value if isinstance(value, tuple) else (value,))
    return any(v in (*SERVER_BACKENDS, "redis") for v in values if isinstance(v, str))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return  # `make test`: everything
    deselected = [item for item in items if _needs_more_than_sqlite(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _needs_more_than_sqlite(item)]


def product_engine(url: str) -> Engine:
    """The engine `passport db upgrade` and `passport serve` build for ``url`` (on SQLite:
    WAL, foreign keys on), so that tests migrate and read databases the product's way."""
    return create_db_engine(make_settings(url))


def migrate_like_the_product(url: str, revision: str = "head") -> None:
    """Migrate ``url`` exactly as `passport db upgrade` does: never ``create_all``."""
    engine = product_engine(url)
    try:
        migrate.upgrade(engine, revision)
    finally:
        engine.dispose()


class _SqliteOnly(dict[str, Backend]):
    """The backends of ``--fast``: a test that asks for a database server is skipped."""

    def __missing__(self, name: str) -> Backend:
        pytest.skip(f"needs {name} (not in the fast loop)")


@pytest.fixture(scope="session")
def backends(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Backend]]:
    """A fresh, migrated database on each backend (SQLite only with ``--fast``)."""
    created: dict[str, Backend] = _SqliteOnly() if request.config.getoption("--fast") else {}
    tag = secrets.token_hex(4)
    password = secrets.token_urlsafe(18)
    sqlite_file = tmp_path_factory.mktemp("sqlite") / "passport.sqlite3"
    created["sqlite"] = Backend("sqlite", f"sqlite:///{sqlite_file}", lambda: None)
    try:
        if not request.config.getoption("--fast"):
            created["mariadb"] = create_mariadb(f"passport_t{tag}", password)
            created["postgresql"] = create_postgresql(f"passport_t{tag}", password)
        for backend in created.values():
            migrate_like_the_product(backend.url)
            _SEEDED[backend.url] = _seeded_passport(backend.url)
        yield created
    finally:
        for backend in created.values():
            backend.drop()


# Passport's own application and permissions as the migrations seeded them, per database:
# every test starts from them again (a test acting as an administrator may change Passport
# itself: its origins, its permissions).
_SEEDED: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}


def _seeded_passport(url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    applications, permissions = Application.__table__, Permission.__table__
    engine = create_engine(url)
    with engine.connect() as conn:
        app = dict(
            conn.execute(select(applications).where(applications.c.id == 1)).mappings().one()
        )
        rows = conn.execute(select(permissions).where(permissions.c.application_id == 1))
        seeded = (app, [dict(row) for row in rows.mappings()])
    engine.dispose()
    return seeded


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in (
            "pending_authorizations",
            "logout_notifications",
            "oauth_tokens",
            "oauth_codes",
            "consents",
            "signing_keys",
            "user_permissions",
            "group_permissions",
            "group_members",
            "groups",
            "login_sessions",
            "throttle_counters",
            "audit_events",
            "users",
        ):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(text("DELETE FROM permissions WHERE application_id <> 1"))
        conn.execute(text("DELETE FROM applications WHERE id <> 1"))
        if url in _SEEDED:
            app, permissions = _SEEDED[url]
            conn.execute(
                update(Application.__table__)
                .where(Application.__table__.c.id == 1)
                .values({k: v for k, v in app.items() if k != "id"})
            )
            conn.execute(text("DELETE FROM permissions"))
            conn.execute(insert(Permission.__table__), permissions)
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.flushdb()
    client.close()


def make_settings(url: str, **overrides: Any) -> Settings:
    # The test client's requests go to http://localhost: that is the deployment's public URL.
    overrides.setdefault("public_url", "http://localhost")
    return load_settings(environ={}, overrides={"database_url": url, **overrides})


def build(
    backends: dict[str, Backend],
    backend: str,
    store: str,
    clock: FakeClock,
    redis_client: redis.Redis | None,
    **overrides: Any,
) -> Harness:
    if backend not in backends:
        pytest.skip(f"{backend} is not part of a --fast run")
    url = backends[backend].url
    _empty_tables(url)
    client = None
    if store == "redis":
        assert redis_client is not None
        redis_client.flushdb()
        client = redis_client
    settings = make_settings(url, **overrides)
    app = PassportApp(settings, clock=clock, redis_client=client)
    return Harness(app, PassportClient(app), settings, backend, store, clock)


@pytest.fixture(params=BACKENDS)
def harness(
    request: pytest.FixtureRequest,
    backends: dict[str, Backend],
    clock: FakeClock,
) -> Iterator[Harness]:
    """Passport on each database, with the database session store."""
    h = build(backends, request.param, "db", clock, None)
    yield h
    h.app.services.db.dispose()


def _redis_for(request: pytest.FixtureRequest, store: str) -> redis.Redis | None:
    """Redis for the Redis session store only: a ``--fast`` run needs no Redis server."""
    if store != "redis":
        return None
    if request.config.getoption("--fast"):
        pytest.skip("Redis is not part of a --fast run")
    client: redis.Redis = request.getfixturevalue("redis_client")
    return client


STORE_COMBOS = [
    ("sqlite", "db"),
    ("sqlite", "redis"),
    ("mariadb", "db"),
    ("mariadb", "redis"),
    ("postgresql", "db"),
    ("postgresql", "redis"),
]


@pytest.fixture(params=STORE_COMBOS, ids=[f"{b}-{s}" for b, s in STORE_COMBOS])
def accounts(
    request: pytest.FixtureRequest,
    backends: dict[str, Backend],
    clock: FakeClock,
) -> Iterator[Harness]:
    """Passport on each database with each session store (database, Redis)."""
    backend, store = request.param
    h = build(backends, backend, store, clock, _redis_for(request, store))
    yield h
    h.app.services.db.dispose()


@pytest.fixture
def factory(
    request: pytest.FixtureRequest, backends: dict[str, Backend], clock: FakeClock
) -> Iterator[Any]:
    """Build a Harness with custom settings: ``factory("sqlite", "db", password_min_length=15)``."""
    built: list[Harness] = []

    def make(backend: str = "sqlite", store: str = "db", **overrides: Any) -> Harness:
        h = build(backends, backend, store, clock, _redis_for(request, store), **overrides)
        built.append(h)
        return h

    yield make
    for h in built:
        h.app.services.db.dispose()


# -- live servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    tmp_path: Path, database_url: str, *extra_args: str, env: dict[str, str] | None = None
) -> LiveServer:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    # Each test server is its own deployment: its public URL (the issuer) is where it listens.
    environment = (
        {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        | {"PASSPORT_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        | (env or {})
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "passport",
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
            *extra_args,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"passport serve exited: {log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, process, log)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"passport serve did not start: {log.read_text()}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Any]:
    started: list[LiveServer] = []

    def start(database_url: str, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
        server = start_server(tmp_path, database_url, *extra, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PASSPORT_* setting of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("PASSPORT_"):
            monkeypatch.delenv(key)
