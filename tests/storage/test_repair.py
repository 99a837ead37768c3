"""Upgrades keep every row, damaged SQLite databases are repaired, ids are never reused.

Every database here is built the product's way: Passport's own engine (on SQLite:
WAL, foreign keys on) and its migrations, exactly as ``passport db upgrade`` does.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from passport.errors import ClientError
from passport.errors import Taken
from passport.oidc.tokens import subject
from passport.storage import migrate
from passport.storage.models import Application
from passport.storage.models import Base
from passport.storage.models import User
from provision import Backend
from provision import create_mariadb
from provision import create_postgresql

from conftest import BACKENDS
from conftest import migrate_like_the_product
from conftest import product_engine
from support import Harness

PASSPORT_RIGHTS = {
    "admin",
    "users:read",
    "users:write",
    "groups:write",
    "apps:read",
    "apps:write",
    "audit:read",
}


@pytest.fixture(params=BACKENDS)
def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty database (and least-privilege user) on each backend."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'passport.sqlite3'}", lambda: None)
        return
    create = create_mariadb if request.param == "mariadb" else create_postgresql
    backend = create(f"passport_r{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    yield backend
    backend.drop()


# -- no row lost, revision by revision ---------------------------------------------------


def _value_for(column: sa.Column[Any], serial: int) -> object:
    """A value the column accepts, unique per row where it must be."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):  # also MariaDB's TINYINT(1) booleans
        return 0 if not column.primary_key else serial
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if isinstance(kind, sa.Text):
        return "[]"  # a JSON list is also a fine description
    if isinstance(kind, sa.String):
        length = kind.length or 32
        return ("r" + secrets.token_hex(16))[: min(length, 24)]
    raise AssertionError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


def _populate(engine: Engine, serial: int) -> None:
    """One more row in every table, each referencing the newest row of its parents, so
    grants and memberships point at real permissions, groups and users."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name in ("alembic_version", "application_generation"):
                continue  # application_generation: one row, made by migration 0020 itself
            row: dict[str, object] = {}
            for column in table.columns:
                foreign = next(iter(column.foreign_keys), None)
                if foreign is not None:
                    target = foreign.column
                    newest = conn.execute(sa.select(sa.func.max(target))).scalar_one()
                    assert newest is not None, f"{target.table.name} is empty"
                    row[column.name] = newest
                elif (
                    column.primary_key
                    and len(table.primary_key.columns) == 1
                    and isinstance(column.type, sa.Integer)
                ):
                    continue  # the database numbers it
                else:
                    row[column.name] = _value_for(column, serial)
            conn.execute(table.insert().values(**row))


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {
            name: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one())
            for name in names
            if name != "alembic_version"
        }


def test_each_upgrade_step_keeps_every_row(empty_backend: Backend) -> None:
    revisions = [revision for revision, _ in migrate.history()]
    engine = product_engine(empty_backend.url)
    try:
        migrate_like_the_product(empty_backend.url, revisions[0])
        _populate(engine, 1)
        before = _counts(engine)
        for step, revision in enumerate(revisions[1:], start=2):
            migrate_like_the_product(empty_backend.url, revision)
            after = _counts(engine)
            lost = {t: (n, after.get(t, 0)) for t, n in before.items() if after.get(t, 0) < n}
            assert lost == {}, f"upgrading to {revision} lost rows (table: before, after)"
            _populate(engine, step)
            before = _counts(engine)
        assert migrate.is_current(engine)
        with engine.connect() as conn:
            names = conn.scalars(
                sa.text("SELECT name_key FROM permissions WHERE application_id = 1")
            )
            assert PASSPORT_RIGHTS <= set(names)
            for grants in ("user_permissions", "group_permissions", "group_members"):
                assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {grants}")).scalar_one() > 0
    finally:
        engine.dispose()


# -- the repair of 0006 --------------------------------------------------------------------


def _passport_rights(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.scalars(sa.text("SELECT name_key FROM permissions WHERE application_id = 1"))
        )


def test_repair_recreates_lost_seeded_permissions_and_says_so(
    empty_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A database damaged as 0004 once damaged it (permissions gone, grants with them)
    gets Passport's built-in permissions back, with one warning line."""
    engine = product_engine(empty_backend.url)
    try:
        migrate_like_the_product(empty_backend.url, "0005")
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM permissions"))
        with caplog.at_level(logging.WARNING, logger="passport.migrate"):
            migrate_like_the_product(empty_backend.url)
        assert _passport_rights(engine) == sorted(PASSPORT_RIGHTS)
        warnings = [r.getMessage() for r in caplog.records if r.name == "passport.migrate"]
        assert len(warnings) == 1
        assert "re-created 7 of Passport's built-in permissions" in warnings[0]
        assert "cannot be recovered" in warnings[0]
    finally:
        engine.dispose()


def test_repair_does_nothing_to_a_healthy_database(
    empty_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    engine = product_engine(empty_backend.url)
    try:
        migrate_like_the_product(empty_backend.url, "0005")
        rights = _passport_rights(engine)
        assert rights == sorted(PASSPORT_RIGHTS)  # the fixed 0004 kept them
        with caplog.at_level(logging.WARNING, logger="passport.migrate"):
            migrate_like_the_product(empty_backend.url)
        assert _passport_rights(engine) == rights  # no duplicates
        assert [r for r in caplog.records if r.name == "passport.migrate"] == []
    finally:
        engine.dispose()


def test_sqlite_migration_that_breaks_a_foreign_key_is_not_committed(tmp_path: Path) -> None:
    """``PRAGMA foreign_key_check`` runs before the migration's commit."""
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    engine = product_engine(url)
    try:
        migrate_like_the_product(url, "0003")
        # A dangling grant, made behind Passport's back (sqlite3 leaves foreign keys off).
        with closing(sqlite3.connect(tmp_path / "p.sqlite3")) as raw, raw:
            raw.execute("INSERT INTO user_permissions VALUES (999, 1)")
        with pytest.raises(
            migrate.MigrationError, match=r"\(in user_permissions\); nothing changed"
        ):
            migrate.upgrade(engine, "0004")
        assert migrate.current_revision(engine) == "0003"
        with engine.connect() as conn:  # the engine's connections enforce foreign keys again
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        engine.dispose()


# -- ids never reused ----------------------------------------------------------------------


def test_sqlite_tables_with_surrogate_ids_are_autoincrement(backends: dict[str, Backend]) -> None:
    """Every model table with an integer surrogate id says so, and the migrated SQLite
    database has it (a later migration's table rebuild must keep it)."""
    engine = product_engine(backends["sqlite"].url)
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                key = list(table.primary_key.columns)
                if len(key) != 1 or not isinstance(key[0].type, sa.Integer):
                    continue
                if key[0].foreign_keys:  # another table's id (totp_credentials.user_id)
                    continue
                assert table.dialect_options["sqlite"]["autoincrement"], table.name
                sql = conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": table.name}
                ).scalar_one()
                assert "AUTOINCREMENT" in sql.upper(), table.name
    finally:
        engine.dispose()


def _register(harness: Harness, username: str) -> int:
    response = harness.register(username)
    assert response.status_code == 200, response.get_data(as_text=True)
    return int(response.get_json()["Data"]["User"]["ID"])


def test_a_deleted_users_id_and_sub_go_to_no_one_else(harness: Harness) -> None:
    """OpenID Connect Core 1.0 §2: a ``sub`` is never reassigned to another user."""
    _register(harness, "anna")
    bert = _register(harness, "bert")  # the newest user: the id SQLite would hand out again
    with harness.app.services.db.session(write=True) as db, db.begin():
        user = db.get(User, bert)
        assert user is not None
        bert_sub = subject(user)
        db.delete(user)  # the row goes; the database cascades to sessions and grants
    carl = _register(harness, "carl")
    assert carl > bert
    with harness.app.services.db.session() as db:
        user = db.get(User, carl)
        assert user is not None and subject(user) != bert_sub


def _add_application(harness: Harness, name: str) -> int:
    with harness.app.services.db.session(write=True) as db, db.begin():
        app = Application(name=name, name_key=name.lower(), created_at=harness.clock())
        db.add(app)
        db.flush()
        return app.id


def test_a_deleted_applications_id_goes_to_no_other(harness: Harness) -> None:
    _add_application(harness, "Alpha")
    beta = _add_application(harness, "Beta")
    with harness.app.services.db.session(write=True) as db, db.begin():
        db.execute(sa.delete(Application).where(Application.id == beta))
    assert _add_application(harness, "Gamma") > beta


# -- 0009: look-alike names kept apart -----------------------------------------------------


def test_existing_lookalike_names_keep_working_after_0009(
    empty_backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Groups, applications and permissions (per application) that already look alike
    (UTS #39 skeleton) before 0009 all survive it: the later one's key is suffixed with
    its id, one warning line names them, and each is still found by name."""
    from passport.services import directory

    lookalike = "\u0410dmins"  # CYRILLIC CAPITAL LETTER A
    engine = product_engine(empty_backend.url)
    try:
        migrate_like_the_product(empty_backend.url, "0008")
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with engine.begin() as conn:
            for name in ("Admins", lookalike):
                conn.execute(
                    sa.text("INSERT INTO groups (name, name_key, description) VALUES (:n, :k, '')"),
                    {"n": name, "k": name.lower()},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO applications (name, name_key, description, allowed_origins,"
                    " created_at, redirect_uris, confidential, enabled, first_party,"
                    " access_token_format, scopes)"
                    " VALUES (:n, :k, '', '[]', :t, '[]', false, true, false, 'jwt', '[]')"
                ),
                {"n": "P\u0430ssport", "k": "p\u0430ssport", "t": now},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO permissions (application_id, name, name_key, description)"
                    " VALUES (1, :n, :n, '')"
                ),
                {"n": "\u0430dmin"},  # looks like Passport's own "admin"
            )
        with caplog.at_level(logging.WARNING, logger="passport.migrate"):
            migrate_like_the_product(empty_backend.url)
        warnings = [r.getMessage() for r in caplog.records if r.name == "passport.migrate"]
        assert len(warnings) == 1, warnings
        assert "applications 2; groups 2; permissions 8" in warnings[0]
        assert "look like earlier names" in warnings[0]
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, name_skeleton FROM groups")).all()
            keys = {name: key for name, key in rows}
            assert keys[lookalike].endswith(":2") and keys[lookalike][:-2] == keys["Admins"]
        with sa.orm.Session(engine) as db:
            for name in ("Admins", lookalike):
                group = directory.find_group(db, name)
                assert group is not None and group.name == name
            for name in ("Passport", "P\u0430ssport"):
                app = directory.find_application(db, name)
                assert app is not None and app.name == name
            passport = directory.get_application(db, "Passport")
            for name in ("admin", "\u0430dmin"):
                permission = directory.find_permission(db, passport, name)
                assert permission is not None and permission.name == name
            # A kept-apart row may change its letter case; a new look-alike is refused.
            group = directory.get_group(db, lookalike)
            directory.rename_group(db, group, lookalike.upper())
            with pytest.raises(ClientError) as taken:
                directory.create_group(db, "ADMINS")
            assert isinstance(taken.value, Taken)
            db.rollback()
    finally:
        engine.dispose()


# -- 0011: refresh tokens per application -------------------------------------------------


def test_existing_applications_keep_refresh_tokens_after_0011(empty_backend: Backend) -> None:
    """Applications from before 0011 received refresh tokens with every code: they keep
    ``refresh_tokens`` true (nothing breaks); a new one takes the model's default (true)
    unless told otherwise; the column is a real boolean on every backend."""
    engine = product_engine(empty_backend.url)
    try:
        migrate_like_the_product(empty_backend.url, "0009")
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO applications (name, name_key, name_skeleton, description,"
                    " allowed_origins, created_at, redirect_uris, confidential, enabled,"
                    " first_party, access_token_format, scopes)"
                    " VALUES ('Old', 'old', 'old-key', '', '[]', :t, '[]', true, true, false,"
                    " 'jwt', '[]')"
                ),
                {"t": now},
            )
        migrate_like_the_product(empty_backend.url)
        with sa.orm.Session(engine) as db:
            flags = dict(db.execute(sa.select(Application.name, Application.refresh_tokens)).all())
            assert flags == {"Passport": True, "Old": True}
            db.add(
                Application(
                    name="New",
                    name_key="new",
                    created_at=now.replace(tzinfo=UTC),
                    refresh_tokens=False,
                )
            )
            db.commit()
            new = db.scalars(sa.select(Application).where(Application.name == "New")).one()
            assert new.refresh_tokens is False
    finally:
        engine.dispose()
