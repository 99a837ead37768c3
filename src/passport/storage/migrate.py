"""Alembic, driven from code: upgrade, current revision, and the schema check.

Several processes may start together against one database; the upgrade is
serialised with a database lock (PostgreSQL advisory lock, MariaDB
``GET_LOCK``, SQLite's write lock) so that migrations run exactly once.

On SQLite, Alembic's batch mode rebuilds a table to alter it (copy, ``DROP TABLE``,
rename).  With foreign keys on -- as Passport's engine always sets them -- that
``DROP TABLE`` deletes every row that references the table through ``ON DELETE
CASCADE``: migration 0004 once emptied ``permissions`` and with it every grant.  So
SQLite migrations run with foreign keys off, as Alembic's batch documentation asks,
and the result must pass ``PRAGMA foreign_key_check`` before it is committed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 7_401_355  # any constant; names Passport's migration lock
log = logging.getLogger("passport.migrate")


class MigrationError(RuntimeError):
    """A migration would leave the database inconsistent; nothing was committed."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``, once, even with concurrent callers.

    Returns the revision found (under the lock) before upgrading.
    """
    dialect = engine.dialect.name
    with engine.connect() as lock_conn:
        if dialect == "postgresql":
            lock_conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": LOCK_ID})
        elif dialect in {"mysql", "mariadb"}:
            lock_conn.execute(text("SELECT GET_LOCK('passport_migrate', 300)"))
        lock_conn.commit()
        try:
            if dialect == "sqlite":
                return _upgrade_sqlite(engine, revision)
            with engine.begin() as conn:
                return _run_migrations(conn, revision)
        finally:
            if dialect == "postgresql":
                lock_conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
            elif dialect in {"mysql", "mariadb"}:
                lock_conn.execute(text("SELECT RELEASE_LOCK('passport_migrate')"))
            lock_conn.commit()


def _run_migrations(conn: Connection, revision: str) -> str | None:
    before = MigrationContext.configure(conn).get_current_revision()
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
    return before


def _upgrade_sqlite(engine: Engine, revision: str) -> str | None:
    """Migrate SQLite with foreign keys off, checked before commit, restored after.

    ``PRAGMA foreign_keys`` is a no-op inside a transaction
    (https://www.sqlite.org/pragma.html#pragma_foreign_keys), so it is switched on
    the driver's connection before the migration's transaction begins; ``BEGIN
    IMMEDIATE`` (on Passport's engine) takes the write lock at once, so concurrent
    upgrades queue instead of both reading an old revision.
    """
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        driver = conn.connection.dbapi_connection
        assert driver is not None
        enforced = _foreign_keys(driver)
        _set_foreign_keys(driver, on=False)
        try:
            with conn.begin():
                handed_out = _sqlite_sequences(conn)
                before = _run_migrations(conn, revision)
                _keep_sqlite_sequences(conn, handed_out)
                violations = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if violations:
                    tables = sorted({str(row[0]) for row in violations})
                    raise MigrationError(
                        f"migrating to {revision} would leave {len(violations)} row(s) whose "
                        f"foreign keys point nowhere (in {', '.join(tables)}); nothing changed"
                    )
        finally:
            _set_foreign_keys(driver, on=enforced)
    return before


def _sqlite_sequences(conn: Connection) -> dict[str, int]:
    """The largest id each AUTOINCREMENT table has handed out (``sqlite_sequence``)."""
    exists = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ).first()
    if exists is None:
        return {}
    rows = conn.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all()
    return {str(name): int(seq) for name, seq in rows}


def _keep_sqlite_sequences(conn: Connection, handed_out: dict[str, int]) -> None:
    """A migration that rebuilds a table drops its ``sqlite_sequence`` row, and the copy
    restarts the counter at the largest id still present: an id deleted before the
    migration would be handed out again.  Put every counter back where it was."""
    now = _sqlite_sequences(conn)
    for table, seq in handed_out.items():
        if table in now and now[table] >= seq:
            continue
        if (
            conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).first()
            is None
        ):
            continue  # the migration dropped the table
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))


def _foreign_keys(driver: Any) -> bool:
    return bool(driver.execute("PRAGMA foreign_keys").fetchone()[0])


def _set_foreign_keys(driver: Any, *, on: bool) -> None:
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    if _foreign_keys(driver) != on:  # e.g. a transaction was open: the pragma did nothing
        raise MigrationError("could not switch SQLite's foreign keys for the migration")


def history() -> list[tuple[str, str]]:
    """``(revision, message)`` from oldest to newest."""
    script = ScriptDirectory.from_config(_config())
    return [(rev.revision, rev.doc or "") for rev in reversed(list(script.walk_revisions()))]
