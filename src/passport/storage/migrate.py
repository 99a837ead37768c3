"""Alembic, driven from code: upgrade, current revision, and the schema check.

Several processes may start together against one database; the upgrade is
serialised with a database lock (PostgreSQL advisory lock, MariaDB
``GET_LOCK``, SQLite's write lock) so that migrations run exactly once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import text

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_ID = 7_401_355  # any constant; names Passport's migration lock


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
            with engine.begin() as conn:
                before = MigrationContext.configure(conn).get_current_revision()
                cfg = _config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if dialect == "postgresql":
                lock_conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": LOCK_ID})
            elif dialect in {"mysql", "mariadb"}:
                lock_conn.execute(text("SELECT RELEASE_LOCK('passport_migrate')"))
            lock_conn.commit()
    return before


def history() -> list[tuple[str, str]]:
    """``(revision, message)`` from oldest to newest."""
    script = ScriptDirectory.from_config(_config())
    return [(rev.revision, rev.doc or "") for rev in reversed(list(script.walk_revisions()))]
