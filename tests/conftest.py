"""Fixtures: a fresh database on each backend, a Passport app over it, a live server.

Each test run creates its own MariaDB and PostgreSQL databases and a
least-privilege user with exactly the SQL in ``docs/sql/`` (names and password
substituted), migrates them as that user, and drops them at the end.  Between
tests the tables are emptied (the seeded ``Passport`` application stays).

A backend is created the first time a test asks for it, so a run that selects no
test of MariaDB, PostgreSQL or Redis never touches them.  Every test is marked
with what it needs (``sqlite``, ``mariadb``, ``postgresql``, ``redis``, ``live``,
``browser``), so ``-m "not mariadb"`` or ``-m sqlite`` choose by backend; ``--fast``
(``make test-fast``) is ``-m "not (live or browser or mariadb or postgresql or redis)"``.

Passwords are hashed with argon2id at its smallest cost in the in-process harness
(the cost is not what most tests are about); a test that checks the hash format,
its cost or the hashing queue is marked ``real_hash_cost`` and gets production's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace
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
from passport.composition import Services
from passport.config import Settings
from passport.config import load_settings
from passport.services.passwords import Passwords
from passport.storage import migrate
from passport.storage.db import create_db_engine
from passport.storage.models import Application
from passport.storage.models import Permission
from ports import free_port
from provision import Backend
from provision import create_mariadb
from provision import create_postgresql

from support import FakeClock
from support import Harness
from support import PassportClient

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "docs" / "sql"
# Each concurrent test run (a developer, a helper, CI) takes its own Redis database: tests
# flush it between cases.  Under pytest-xdist each worker (gw0, gw1, …) is a concurrent
# run of its own: it takes database 10 + its number, so workers never flush each other's.


def _redis_database() -> str:
    chosen = os.environ.get("PASSPORT_TEST_REDIS_DB")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        return str((int(chosen or "10") + int(worker[2:])) % 16)
    return chosen or "13"


REDIS_URL = f"redis://127.0.0.1:6379/{_redis_database()}"
BACKENDS = ("sqlite", "mariadb", "postgresql")


SERVER_BACKENDS = ("mariadb", "postgresql")
# What a test may need beyond SQLite, and scale tests; ``--fast`` deselects every one.
FAST_EXCLUDES = ("live", "browser", *SERVER_BACKENDS, "redis", "slow")
FAST_MARKEXPR = "not (" + " or ".join(FAST_EXCLUDES) + ")"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="development loop (`make test-fast`): SQLite and the database session store "
        f"only; no `passport serve` process, MariaDB, PostgreSQL or Redis (-m '{FAST_MARKEXPR}')",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fast"):
        given = config.option.markexpr
        config.option.markexpr = f"({given}) and {FAST_MARKEXPR}" if given else FAST_MARKEXPR


def _needs(item: pytest.Item) -> set[str]:
    """The markers a test earns from what it uses: its backend and session-store
    parameters, a live server, a real browser."""
    needs: set[str] = set()
    fixtures = getattr(item, "fixturenames", ())
    if "live_server" in fixtures or item.get_closest_marker("live"):
        needs.add("live")
    if item.path.name == "test_browser.py":
        needs.add("browser")
    callspec = getattr(item, "callspec", None)
    values: list[object] = []
    for value in callspec.params.values() if callspec else ():
        values.extend(value if isinstance(value, tuple) else (value,))
    for value in values:
        if not isinstance(value, str):
            continue
        for part in value.split("-"):  # "postgresql-redis" combos of the OIDC tests
            if part in (*BACKENDS, "redis"):
                needs.add(part)
    if "factory" in fixtures and not needs & {*BACKENDS}:
        needs.add("sqlite")  # factory() builds on SQLite unless told otherwise
    return needs


# Tests whose subject is the production hash (its format and parameters), marked here
# because their files are not this harness's; new ones use @pytest.mark.real_hash_cost.
# (Tests that set an argon2 parameter, and the live servers, always hash for real.)
REAL_HASH_COST_TESTS = (
    "tests/api/test_account.py::test_register_returns_the_user",
    "tests/cli/test_import.py::test_each_hash_format_logs_in_and_is_upgraded",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted(_needs(item)):
            if not item.get_closest_marker(name):
                item.add_marker(name)
        if item.nodeid.split("[")[0] in REAL_HASH_COST_TESTS:
            item.add_marker("real_hash_cost")


def _selected(config: pytest.Config, marker: str) -> bool:
    """Whether the run's ``-m`` expression lets a test that needs ``marker`` run."""
    expression = config.option.markexpr
    if not expression:
        return True
    from _pytest.mark.expression import Expression

    def only(name: str, /, **_: str | int | bool | None) -> bool:
        return name == marker

    return Expression.compile(expression).evaluate(only)


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


class Backends(dict[str, Backend]):
    """The test run's databases, each created, migrated and seeded on first use; one
    that the run's ``-m`` leaves out (``--fast``: every server) is skipped instead."""

    def __init__(self, config: pytest.Config, sqlite_dir: Path) -> None:
        super().__init__()
        self.config = config
        self.sqlite_dir = sqlite_dir
        self.tag = secrets.token_hex(4)
        self.password = secrets.token_urlsafe(18)

    def __missing__(self, name: str) -> Backend:
        if name not in BACKENDS:
            raise KeyError(name)
        if not _selected(self.config, name):
            pytest.skip(f"needs {name}, which this run leaves out (-m)")
        if name == "sqlite":
            backend = Backend("sqlite", f"sqlite:///{self.sqlite_dir / 'passport.sqlite3'}", _keep)
        elif name == "mariadb":
            backend = create_mariadb(f"passport_t{self.tag}", self.password)
        else:
            backend = create_postgresql(f"passport_t{self.tag}", self.password)
        self[name] = backend
        migrate_like_the_product(backend.url)
        _SEEDED[backend.url] = _seeded_passport(backend.url)
        return backend

    def drop_all(self) -> None:
        for backend in list(self.values()):
            backend.drop()
            _ENGINES.pop(backend.url, None)


def _keep() -> None:
    return None


@pytest.fixture(scope="session")
def backends(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Backend]]:
    """A fresh, migrated database on each backend, created when a test first needs it."""
    created = Backends(request.config, tmp_path_factory.mktemp("sqlite"))
    try:
        yield created
    finally:
        created.drop_all()


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


# One engine per test database for emptying it between tests (building an engine, and
# compiling the seeded rows' statements for it, cost more than the emptying).
_ENGINES: dict[str, Engine] = {}


# The tables emptied between tests, children before parents: these engines do not
# enforce foreign keys on SQLite, so a child row left behind would point nowhere (and
# `passport serve`, which checks, would refuse the database).  The others: Passport's
# seeded application and permissions (restored below), and the schema's bookkeeping.
EMPTIED = (
    "mail_outbox",
    "email_links",
    "invitation_groups",
    "invitations",
    "sign_in_steps",
    "recovery_codes",
    "totp_credentials",
    "webauthn_credentials",
    "device_authorizations",
    "pending_authorizations",
    "pushed_authorization_requests",
    "forward_auth_hosts",
    "application_sign_in_groups",
    "resource_clients",
    "application_resources",
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
)
NOT_EMPTIED = ("applications", "permissions", "application_generation", "alembic_version")


def _empty_tables(url: str) -> None:
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = create_engine(url)
    with engine.begin() as conn:
        for table in EMPTIED:
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
    engine.dispose()  # no connection kept between tests (a test may drop or lock the database)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once, the product's way, for tests to copy."""
    path = tmp_path_factory.mktemp("template") / "passport.sqlite3"
    migrate_like_the_product(f"sqlite:///{path}")
    for leftover in path.parent.glob("passport.sqlite3-*"):  # WAL checkpointed at dispose
        assert leftover.stat().st_size == 0 or leftover.name.endswith("-shm"), leftover
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A freshly migrated SQLite database of this test's own: a copy of the template."""
    copy = tmp_path / "passport.sqlite3"
    shutil.copyfile(sqlite_template, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def services(
    sqlite_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> Iterator[Services]:
    """The composed services over this test's own migrated SQLite database (no HTTP)."""
    settings = make_settings(sqlite_url)
    built = Services(
        settings,
        clock=clock,
        passwords=None if _real_hash_cost(request) else cheap_passwords(settings),
    )
    yield built
    built.close()


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


def cheap_passwords(settings: Settings) -> Passwords:
    """argon2id at its smallest cost (1 pass over 8 KiB), for tests whose subject is not the
    hashing: the same code, the same hash format, a thousandth of the work."""
    return Passwords(replace(settings, argon2_memory_kib=8, argon2_time_cost=1))


def build(
    backends: dict[str, Backend],
    backend: str,
    store: str,
    clock: FakeClock,
    redis_client: redis.Redis | None,
    *,
    real_hash_cost: bool = False,
    **overrides: Any,
) -> Harness:
    """A Passport app over ``backend``'s emptied database.  Its passwords are hashed at the
    smallest cost unless ``real_hash_cost`` (or the test sets an argon2 parameter)."""
    url = backends[backend].url
    _empty_tables(url)
    client = None
    if store == "redis":
        assert redis_client is not None
        redis_client.flushdb()
        client = redis_client
    settings = make_settings(url, **overrides)
    real_hash_cost = real_hash_cost or any(k.startswith("argon2_") for k in overrides)
    services = Services(
        settings,
        clock=clock,
        redis_client=client,
        passwords=None if real_hash_cost else cheap_passwords(settings),
    )
    app = PassportApp(settings, services=services, clock=clock, redis_client=client)
    return Harness(app, PassportClient(app), settings, backend, store, clock)


def _real_hash_cost(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("real_hash_cost") is not None


@pytest.fixture(params=BACKENDS)
def harness(
    request: pytest.FixtureRequest,
    backends: dict[str, Backend],
    clock: FakeClock,
) -> Iterator[Harness]:
    """Passport on each database, with the database session store."""
    h = build(backends, request.param, "db", clock, None, real_hash_cost=_real_hash_cost(request))
    yield h
    h.app.services.db.dispose()


def _redis_for(request: pytest.FixtureRequest, store: str) -> redis.Redis | None:
    """Redis for the Redis session store only: a ``--fast`` run needs no Redis server."""
    if store != "redis":
        return None
    if not _selected(request.config, "redis"):
        pytest.skip("needs Redis, which this run leaves out (-m)")
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
    redis_client = _redis_for(request, store)
    h = build(
        backends, backend, store, clock, redis_client, real_hash_cost=_real_hash_cost(request)
    )
    yield h
    h.app.services.db.dispose()


@pytest.fixture
def factory(
    request: pytest.FixtureRequest, backends: dict[str, Backend], clock: FakeClock
) -> Iterator[Any]:
    """Build a Harness with custom settings: ``factory("sqlite", "db", password_min_length=15)``."""
    built: list[Harness] = []

    def make(backend: str = "sqlite", store: str = "db", **overrides: Any) -> Harness:
        h = build(
            backends,
            backend,
            store,
            clock,
            _redis_for(request, store),
            real_hash_cost=_real_hash_cost(request),
            **overrides,
        )
        built.append(h)
        return h

    yield make
    for h in built:
        h.app.services.db.dispose()


# -- live servers -------------------------------------------------------------------------


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
    tmp_path: Path,
    database_url: str,
    *extra_args: str,
    env: dict[str, str] | None = None,
    public_host: str = "127.0.0.1",
) -> LiveServer:
    """``passport serve`` on a free port of 127.0.0.1.  ``public_host`` names it in its
    public URL (the issuer): ``localhost`` for WebAuthn, whose RP ID must be a domain."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    # Each test server is its own deployment: its public URL (the issuer) is where it listens.
    environment = (
        {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        | {"PASSPORT_PUBLIC_URL": f"http://{public_host}:{port}"}
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
    url = f"http://{public_host}:{port}"
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

    def start(
        database_url: str,
        *extra: str,
        env: dict[str, str] | None = None,
        public_host: str = "127.0.0.1",
    ) -> LiveServer:
        server = start_server(tmp_path, database_url, *extra, env=env, public_host=public_host)
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
