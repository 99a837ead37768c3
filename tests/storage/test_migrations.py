"""Migrations: the schema they build is exactly the models', on every database,
and several processes upgrading at once apply them exactly once."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy import text

from passport.storage import migrate
from passport.storage.models import Base
from provision import Backend
from provision import create_mariadb
from provision import create_postgresql

from conftest import BACKENDS


@pytest.mark.parametrize("name", BACKENDS)
def test_schema_matches_models(backends: dict[str, Backend], name: str) -> None:
    engine = create_engine(backends[name].url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_first_migration_seeds_passport_as_id_1(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    migrate.upgrade(engine, "0001")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name FROM applications")).all()
    assert [tuple(r) for r in rows] == [(1, "Passport")]
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    engine.dispose()


@pytest.fixture(params=["mariadb", "postgresql"])
def empty_database(request: pytest.FixtureRequest) -> object:
    create = create_mariadb if request.param == "mariadb" else create_postgresql
    backend = create(f"passport_m{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    yield backend
    backend.drop()


def test_concurrent_upgrades_run_once(empty_database: Backend, tmp_path: Path) -> None:
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "passport",
                "db",
                "upgrade",
                "--database-url",
                empty_database.url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outputs
    head = migrate.head_revision()
    assert sorted(o.strip() for o in outputs) == sorted(
        [f"database schema: empty -> {head}"] + [f"database schema: {head} -> {head}"] * 3
    )
    engine = create_engine(empty_database.url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM applications")).scalar() == 1
    engine.dispose()
