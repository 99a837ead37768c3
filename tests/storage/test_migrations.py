"""Migrations: the schema they build is exactly the models', on every database,
and several processes upgrading at once apply them exactly once."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import inspect
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

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


@pytest.fixture(params=BACKENDS)
def blank_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An empty database of each kind, for migrating step by step."""
    if request.param == "sqlite":
        yield Backend("sqlite", f"sqlite:///{tmp_path / 'steps.sqlite3'}", lambda: None)
        return
    create = create_mariadb if request.param == "mariadb" else create_postgresql
    backend = create(f"passport_m{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    yield backend
    backend.drop()


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = migrate._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0015_resource_indicators_keep_old_rows_meaning_no_resource(
    blank_database: Backend,
) -> None:
    """Tokens, codes and consents from before 0015 get no audience (NULL: the client, as
    they were); one resource identifier belongs to one application (the key); the step
    goes back down, and on SQLite oauth_tokens keeps its AUTOINCREMENT (ids never reused)."""
    engine = create_engine(blank_database.url)
    try:
        migrate.upgrade(engine, "0014")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO applications (name, name_key, name_skeleton, description,"
                    " allowed_origins, created_at, redirect_uris, confidential, enabled,"
                    " first_party, access_token_format, scopes, refresh_tokens,"
                    " require_pushed_authorization_requests, device_grant)"
                    " VALUES ('Api', 'api', 'api', '', '[]', '2026-01-01', '[]', TRUE, TRUE,"
                    " FALSE, 'jwt', '[]', TRUE, FALSE, FALSE)"
                )
            )
            app_id = conn.execute(text("SELECT id FROM applications WHERE name = 'Api'")).scalar()
            conn.execute(
                text(
                    "INSERT INTO oauth_tokens (token_hash, kind, application_id, scope, family,"
                    " created_at, expires_at) VALUES ('h1', 'access', :app, 'openid', 'f',"
                    " '2026-01-01', '2026-01-02')"
                ),
                {"app": app_id},
            )
        migrate.upgrade(engine)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT audience FROM oauth_tokens")).all() == [(None,)]
            for column in ("oauth_codes.resource", "consents.resource"):
                table, name = column.split(".")
                conn.execute(text(f"SELECT {name} FROM {table}")).all()
            conn.execute(
                text(
                    "INSERT INTO application_resources (uri_hash, application_id, uri)"
                    " VALUES ('k', :app, 'https://api.example.com')"
                ),
                {"app": app_id},
            )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO application_resources (uri_hash, application_id, uri)"
                    " VALUES ('k', 1, 'https://api.example.com')"
                )
            )
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        _downgrade(engine, "0014")
        assert migrate.current_revision(engine) == "0014"
        with engine.connect() as conn:
            assert not inspect(conn).has_table("application_resources")
            columns = {c["name"] for c in inspect(conn).get_columns("oauth_tokens")}
            assert "audience" not in columns and "sid" in columns
            assert conn.execute(text("SELECT token_hash FROM oauth_tokens")).all() == [("h1",)]
            if blank_database.name == "sqlite":
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'oauth_tokens'")
                ).scalar()
                assert "AUTOINCREMENT" in str(sql)
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_0016_copies_redirect_uris_into_post_logout_redirect_uris(
    blank_database: Backend,
) -> None:
    """Applications from before 0016 keep signing out to where they did: each gets its
    redirect URIs as post-logout redirect URIs (RP-Initiated Logout 1.0 §3); one with
    none gets none; the step goes back down, and on SQLite applications keeps its
    AUTOINCREMENT (ids never reused)."""
    engine = create_engine(blank_database.url)
    uris = '["https://wiki.example.com/callback", "http://127.0.0.1:8080/cb"]'
    try:
        migrate.upgrade(engine, "0015")
        with engine.begin() as conn:
            for name, redirect_uris in (("Wiki", uris), ("Batch", "[]")):
                conn.execute(
                    text(
                        "INSERT INTO applications (name, name_key, name_skeleton, description,"
                        " allowed_origins, created_at, redirect_uris, confidential, enabled,"
                        " first_party, access_token_format, scopes, refresh_tokens,"
                        " require_pushed_authorization_requests, device_grant)"
                        " VALUES (:name, :key, :key, '', '[]', '2026-01-01', :uris, TRUE, TRUE,"
                        " FALSE, 'jwt', '[]', TRUE, FALSE, FALSE)"
                    ),
                    {"name": name, "key": name.lower(), "uris": redirect_uris},
                )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = dict(
                conn.execute(text("SELECT name, post_logout_redirect_uris FROM applications")).all()
            )
            assert rows == {"Passport": "[]", "Wiki": uris, "Batch": "[]"}
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        with engine.begin() as conn:  # an application registered after 0016, with none
            conn.execute(
                text(
                    "INSERT INTO applications (name, name_key, name_skeleton, description,"
                    " allowed_origins, created_at, redirect_uris, post_logout_redirect_uris,"
                    " confidential, enabled, first_party, access_token_format, scopes,"
                    " refresh_tokens, require_pushed_authorization_requests, device_grant)"
                    " VALUES ('Notes', 'notes', 'notes', '', '[]', '2026-01-02', :uris, '[]',"
                    " TRUE, TRUE, FALSE, 'jwt', '[]', TRUE, FALSE, FALSE)"
                ),
                {"uris": uris},
            )
        _downgrade(engine, "0015")
        assert migrate.current_revision(engine) == "0015"
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("applications")}
            assert "post_logout_redirect_uris" not in columns and "redirect_uris" in columns
            names = conn.execute(text("SELECT name FROM applications ORDER BY id")).scalars()
            assert list(names) == ["Passport", "Wiki", "Batch", "Notes"]
            if blank_database.name == "sqlite":
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'applications'")
                ).scalar()
                assert "AUTOINCREMENT" in str(sql)
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        with engine.connect() as conn:
            copied = conn.execute(
                text("SELECT post_logout_redirect_uris FROM applications WHERE name = 'Notes'")
            ).scalar()
            assert copied == uris  # upgraded again: copied again
    finally:
        engine.dispose()


def test_0018_resource_clients_start_empty_and_follow_their_applications(
    blank_database: Backend,
) -> None:
    """The list of clients that may get client credentials tokens for an API starts
    empty (no client may: the secure default); one row per (API, client); deleting
    either application deletes the row (ON DELETE CASCADE on both foreign keys, so no
    grant outlives its client); the step goes back down and up again."""
    before = ScriptDirectory.from_config(migrate._config()).get_revision("0018").down_revision
    assert isinstance(before, str)
    engine = create_engine(blank_database.url)
    insert_app = (
        "INSERT INTO applications (name, name_key, name_skeleton, description,"
        " allowed_origins, created_at, redirect_uris, post_logout_redirect_uris,"
        " confidential, enabled, first_party, access_token_format, scopes, refresh_tokens,"
        " require_pushed_authorization_requests, device_grant)"
        " VALUES (:n, :n, :n, '', '[]', '2026-01-01', '[]', '[]', TRUE, TRUE,"
        " FALSE, 'jwt', '[]', TRUE, FALSE, FALSE)"
    )

    def foreign_keys_on(conn: Any) -> None:
        if blank_database.name == "sqlite":  # as the product's engine does (PRAGMA)
            conn.execute(text("PRAGMA foreign_keys = ON"))

    try:
        migrate.upgrade(engine, before)
        with engine.begin() as conn:
            for name in ("api", "client", "other"):
                conn.execute(text(insert_app), {"n": name})
        migrate.upgrade(engine)
        with engine.begin() as conn:
            foreign_keys_on(conn)
            assert conn.execute(text("SELECT COUNT(*) FROM resource_clients")).scalar() == 0
            ids = dict(conn.execute(text("SELECT name, id FROM applications")).all())
            for client in ("client", "other"):
                conn.execute(
                    text("INSERT INTO resource_clients (api_id, client_app_id) VALUES (:a, :c)"),
                    {"a": ids["api"], "c": ids[client]},
                )
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text("INSERT INTO resource_clients (api_id, client_app_id) VALUES (:a, :c)"),
                {"a": ids["api"], "c": ids["client"]},
            )
        with engine.begin() as conn:
            foreign_keys_on(conn)
            conn.execute(text("DELETE FROM applications WHERE name = 'client'"))
            left = conn.execute(text("SELECT client_app_id FROM resource_clients")).all()
            assert left == [(ids["other"],)]
            conn.execute(text("DELETE FROM applications WHERE name = 'api'"))
            assert conn.execute(text("SELECT COUNT(*) FROM resource_clients")).scalar() == 0
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        _downgrade(engine, before)
        with engine.connect() as conn:
            assert not inspect(conn).has_table("resource_clients")
            assert inspect(conn).has_table("application_resources")
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_0019_client_address_is_added_empty_and_goes_back_down(blank_database: Backend) -> None:
    """The address a pushed request or a device authorization came from: a column of
    each table, NULL on a row from before (it names no address, and counts toward no
    address's share); the step goes back down and up again."""
    engine = create_engine(blank_database.url)
    tables = ("pushed_authorization_requests", "device_authorizations")
    try:
        migrate.upgrade(engine, "0018")
        with engine.connect() as conn:
            for table in tables:
                columns = {c["name"] for c in inspect(conn).get_columns(table)}
                assert "client_address" not in columns
        migrate.upgrade(engine)
        with engine.connect() as conn:
            for table in tables:
                column = {c["name"]: c for c in inspect(conn).get_columns(table)}
                assert column["client_address"]["nullable"]
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        _downgrade(engine, "0018")
        with engine.connect() as conn:
            for table in tables:
                columns = {c["name"] for c in inspect(conn).get_columns(table)}
                assert "client_address" not in columns
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_0020_application_generation_starts_at_zero_and_goes_back_down(
    blank_database: Backend,
) -> None:
    """One row, value 0, that the client cache reads; the step goes back down and up."""
    engine = create_engine(blank_database.url)
    try:
        migrate.upgrade(engine, "0019")
        with engine.connect() as conn:
            assert not inspect(conn).has_table("application_generation")
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, value FROM application_generation")).all()
            assert [tuple(row) for row in rows] == [(1, 0)]
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        _downgrade(engine, "0019")
        with engine.connect() as conn:
            assert not inspect(conn).has_table("application_generation")
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_0023_keys_addresses_by_mailbox(blank_database: Backend) -> None:
    """Accounts from before 0023 kept their address's NFKC casefold as its key: after it,
    the key is the mailbox's (local part lower-cased, the domain's A-label), so sign-in by
    address and resets find them; two accounts that turn out to hold one mailbox keep the
    first key and give the later one a key of its own (third security review, F1)."""
    engine = create_engine(blank_database.url)
    users = [
        ("gross", "Straße@example.com", "strasse@example.com"),
        ("jose", "José@Bücher.de", "josé@bücher.de"),
        ("ascii", "jose@xn--bcher-kva.de", "jose@xn--bcher-kva.de"),
        ("twin", "JOSE@bücher.de", "jose@bücher.de"),
        ("plain", "Bob@Example.COM", "bob@example.com"),
    ]
    try:
        migrate.upgrade(engine, "0022")
        with engine.begin() as conn:
            for name, email, old_key in users:
                conn.execute(
                    text(
                        "INSERT INTO users (username, username_key, username_skeleton, email,"
                        " email_key, display_name, password_hash, disabled, created_at,"
                        " password_changed_at, email_verified)"
                        " VALUES (:name, :name, :name, :email, :key, '', 'x', FALSE,"
                        " '2026-01-01', '2026-01-01', FALSE)"
                    ),
                    {"name": name, "email": email, "key": old_key},
                )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            keys = dict(conn.execute(text("SELECT username, email_key FROM users")).all())
        assert keys["gross"] == "straße@example.com"  # not strasse: another mailbox
        assert keys["jose"] == "josé@xn--bcher-kva.de"
        assert keys["ascii"] == "jose@xn--bcher-kva.de"
        assert keys["twin"] == f"jose@xn--bcher-kva.de#{_id_of(engine, 'twin')}"  # one mailbox
        assert keys["plain"] == "bob@example.com"
    finally:
        engine.dispose()


def _id_of(engine: Engine, username: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM users WHERE username = :u"), {"u": username}
            ).scalar_one()
        )


def test_0024_applications_admit_anyone_and_guard_no_host_and_go_back_down(
    blank_database: Backend,
) -> None:
    """Every application existing before 0024 lets anyone sign in, as it did; the
    forward-auth tables start empty; the downgrade takes it all away again."""
    engine = create_engine(blank_database.url)
    try:
        migrate.upgrade(engine, "0023")
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM applications")).scalar_one()
        migrate.upgrade(engine, "0024")
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT sign_in_policy, sign_in_permission, forward_auth_rules"
                    " FROM applications"
                )
            ).all()
            assert len(rows) == before >= 1
            assert set(rows) == {("anyone", None, "[]")}
            for table in ("application_sign_in_groups", "forward_auth_hosts"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
        _downgrade(engine, "0023")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("applications")}
            assert not columns & {"sign_in_policy", "sign_in_permission", "forward_auth_rules"}
            assert not {"application_sign_in_groups", "forward_auth_hosts"} & set(
                inspect(conn).get_table_names()
            )
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()
