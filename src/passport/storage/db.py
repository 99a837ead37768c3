"""One SQLAlchemy engine per process, tuned per database.

* pooled connections with pre-ping, bounded connect and pool timeouts, so a
  lost database gives a fast 503 and the pool heals itself when it is back;
* SQLite in WAL mode with ``synchronous=FULL`` and foreign keys on; write
  requests open ``BEGIN IMMEDIATE`` so that two writers queue on the busy
  timeout instead of failing on a stale read snapshot;
* READ COMMITTED on MariaDB and PostgreSQL, so all three behave alike;
* the SQLite file (password hashes, emails, the audit log) readable by its owner
  only: created 0600, tightened to 0600 with a warning when found looser.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from passport.config import Settings
from passport.storage.models import Application
from passport.storage.models import ApplicationGeneration
from passport.storage.models import ApplicationResource
from passport.storage.models import ApplicationResourceClient

SQLITE_BUSY_TIMEOUT_MS = 10_000
PRIVATE_FILE_MODE = 0o600
# Files SQLite keeps beside the database; it creates them with the database file's
# permissions (https://www.sqlite.org/tempfiles.html), so a private database makes
# private companions.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
SQLITE_HEADER = b"SQLite format 3\x00"
log = logging.getLogger("passport.storage")


def create_db_engine(settings: Settings) -> Engine:
    """The process-wide engine for ``settings.database_url``."""
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "future": True}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        kwargs["pool_pre_ping"] = False  # a local file cannot drop a connection
        if url.database in (None, "", ":memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared; use a file")
        _make_sqlite_file_private(url.database)
        engine = create_engine(url, **_pool_sizes(settings), **kwargs)
        _configure_sqlite(engine)
        return engine

    kwargs.update(
        **_pool_sizes(settings),
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
    )
    if url.get_backend_name() in {"mysql", "mariadb"}:
        kwargs["connect_args"] = {
            "connect_timeout": settings.db_connect_timeout,
            "read_timeout": 30,
            "write_timeout": 30,
            "charset": "utf8mb4",
        }
    else:
        kwargs["connect_args"] = {"connect_timeout": settings.db_connect_timeout}
    return create_engine(url, **kwargs)


def _pool_sizes(settings: Settings) -> dict[str, Any]:
    """A pool that cannot run dry with the server's threads.

    Each request thread keeps one connection for :meth:`Database.hot_read` and may
    hold one more for its transaction, so the pool keeps a connection per thread
    (at least ``db_pool_size``) and lends as many again while they are needed.
    """
    kept = max(settings.db_pool_size, settings.server_threads)
    return {"pool_size": kept, "max_overflow": kept, "pool_timeout": settings.db_pool_timeout}


def _is_sqlite_file(path: str) -> bool:
    """A regular file (not a symbolic link) that is empty or starts with SQLite's
    header string (https://sqlite.org/fileformat.html §1.3): one Passport may tighten."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return head in (b"", SQLITE_HEADER)


def _make_sqlite_file_private(path: str) -> None:
    """Create the database file 0600 before SQLite opens it (SQLite would make it 0666
    less the umask), or tighten an existing one, and its companions, to 0600.

    Only a regular file that is a SQLite database (or still empty) is tightened, never
    a symbolic link: a URL that names another file (``sqlite:////etc/passwd``) must not
    change that file's mode — SQLite then refuses it as "not a database"."""
    if path.startswith("file:"):
        return  # a URI filename: the operator chose how to open it
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
        return  # a new, empty file: SQLite makes it a database
    except FileExistsError:
        pass
    except OSError:
        return  # no such directory, no right to create: SQLite says so in its own words
    if not _is_sqlite_file(path):
        return
    tightened: list[str] = []
    for candidate in (path, *(path + suffix for suffix in SQLITE_COMPANIONS)):
        try:
            status = os.lstat(candidate)
            if stat.S_ISREG(status.st_mode) and status.st_mode & 0o077:
                os.chmod(candidate, PRIVATE_FILE_MODE)
                tightened.append(candidate)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning(
                "cannot make %s readable by its owner only (%s)", candidate, type(exc).__name__
            )
    if tightened:
        log.warning(
            "%s could be read by other users; now 0600 (it holds password hashes)",
            ", ".join(tightened),
        )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so we can choose BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "AUTOCOMMIT":  # single-statement reads need no transaction
            connection.exec_driver_sql(f"BEGIN {mode}")


# What a client authentication reads: a change to any of them is a new generation.
_CLIENT_DEFINING = (Application, ApplicationResource, ApplicationResourceClient)
APPLICATION_GENERATION = select(ApplicationGeneration.value).where(ApplicationGeneration.id == 1)


@event.listens_for(Session, "before_flush")
def bump_application_generation(session: Session, _context: Any, _instances: Any) -> None:
    """Every flush that adds, changes or deletes an application, a resource identifier or
    a resource client increments ``application_generation`` in the same transaction, so
    the change and the new generation commit (or roll back) together.  Applications are
    only ever changed through the ORM (:mod:`passport.services.directory`), so this one
    hook sees every change; a row edited by hand in SQL is seen by the client cache once
    its entries reach their maximum age (:data:`passport.services.clients.CACHE_MAX_AGE`)."""
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(item, _CLIENT_DEFINING) for item in changed):
        session.connection().execute(
            update(ApplicationGeneration)
            .where(ApplicationGeneration.id == 1)
            .values(value=ApplicationGeneration.value + 1)
        )


class Database:
    """The engine plus session factories for read and write work."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_db_engine(settings)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )
        self.write_engine: Engine = writer
        # For one-statement reads on hot paths (each statement sees committed data).
        self.reader: Engine = (
            self.engine.execution_options(sqlite_begin="AUTOCOMMIT")
            if self.is_sqlite
            else self.engine
        )
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        # Hot connections not in use; a thread takes one for a statement and gives it back.
        self._idle: list[Connection] = []
        self._idle_lock = threading.Lock()
        self._writer = sessionmaker(writer, expire_on_commit=False)

    @contextmanager
    def hot_read(self) -> Iterator[Connection]:
        """A kept connection for one-statement reads on hot paths.

        Skips the pool's checkout and return work on every request (it is most of
        a session check's cost).  MariaDB/PostgreSQL connections run in autocommit,
        SQLite ones without BEGIN, so no snapshot or lock outlives a statement and
        no COMMIT/ROLLBACK round trip is paid; a broken connection is dropped and
        replaced on the next call.

        The kept connections are a free list, not one per thread: a thread takes one
        for the statement and gives it back, so a server that ends idle threads
        (Granian's blocking threads after their idle timeout) never strands a
        connection with a thread that is gone; there are never more than the threads
        using one at once.
        """
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed or conn.invalidated:
            conn = self.reader.connect()
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield conn
        except BaseException:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass
            raise
        if self.is_sqlite:
            conn.rollback()  # no statement was in a transaction: costs nothing
        with self._idle_lock:
            self._idle.append(conn)

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """The per-thread hot connection (:meth:`hot_read`) for a write that is a single
        statement: it commits as it runs (autocommit on MariaDB/PostgreSQL; on SQLite,
        without BEGIN, the write lock is held for that statement only), so it costs no
        BEGIN and COMMIT round trips and no session."""
        with self.hot_read() as conn:
            yield conn

    def application_generation(self) -> int | None:
        """The current ``application_generation`` (committed), or None without its row."""
        with self.hot_read() as conn:
            value = conn.execute(APPLICATION_GENERATION).scalar()
        return None if value is None else int(value)

    def session(self, *, write: bool = False) -> Session:
        """A new ORM session; ``write=True`` takes SQLite's write lock up front."""
        return (self._writer if write else self._reader)()

    def dispose(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self.engine.dispose()
