"""Look-alike usernames: the skeleton rule, registration, sign-in, and migration 0008."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text

from passport.app import PassportApp
from passport.lookalikes import lookalike_key
from passport.lookalikes import prototypes
from passport.lookalikes import skeleton
from passport.services.passwords import Passwords
from passport.storage import migrate
from provision import create_postgresql

from conftest import make_settings
from support import STRONG
from support import FakeClock
from support import Harness
from support import PassportClient

CGJ = "\u034f"  # COMBINING GRAPHEME JOINER: default-ignorable, draws nothing
CYRILLIC_ROOT = "r\u043e\u043et"  # with two CYRILLIC SMALL LETTER O


def body(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


# -- the rule ---------------------------------------------------------------------------------


def test_the_data_is_unicodes_confusables_table() -> None:
    table = prototypes()
    assert len(table) == 6311  # every mapping of confusables.txt 13.0.0
    assert table["\u043e"] == "o"  # CYRILLIC SMALL LETTER O
    assert table["\u0430"] == "a"  # CYRILLIC SMALL LETTER A
    assert skeleton("\U0001d4c7\U0001d45c\U0001d45c\U0001d4c9") == "root"  # mathematical script


@pytest.mark.parametrize(
    "alike",
    ["root", "ROOT", "Root", CYRILLIC_ROOT, "root" + CGJ, "ro\u200dot", "\uff52\uff4f\uff4f\uff54"],
)
def test_look_alikes_share_one_key(alike: str) -> None:
    assert lookalike_key(alike) == lookalike_key("root")


# Capitals of other scripts whose lower case looks like nothing Latin (Cyrillic TE U+0422,
# VE U+0412, KA U+041A, BYELORUSSIAN I U+0406, Greek TAU U+03A4, NU U+039D): in capitals
# they look exactly like the Latin name.
@pytest.mark.parametrize(
    ("name", "alike"),
    [
        ("root", "ROO\u0422"),
        ("bob", "\u0412OB"),
        ("wiki", "W\u0406\u041aI"),
        ("team", "\u03a4EAM"),
        ("nina", "\u039dINA"),
    ],
)
def test_look_alike_capitals_share_the_key(name: str, alike: str) -> None:
    assert lookalike_key(alike) == lookalike_key(name) == lookalike_key(name.upper())


@pytest.mark.parametrize("other", ["roots", "rot", "r00ts", "boot"])
def test_different_names_keep_different_keys(other: str) -> None:
    assert lookalike_key(other) != lookalike_key("root")


# -- registration and sign-in -----------------------------------------------------------------


@pytest.mark.parametrize(
    "alike", [CYRILLIC_ROOT, "root" + CGJ, "R\u041e\u041eT", "r\u03bfot", "ROO\u0422"]
)
def test_a_look_alike_of_a_taken_name_is_taken(accounts: Harness, alike: str) -> None:
    assert accounts.register("root").status_code == 200
    response = accounts.register(alike, password=STRONG + "!")
    if alike.endswith(CGJ):  # invisible characters are refused outright
        assert response.status_code == 400
        assert body(response)["ClientExceptions"][0]["Number"] == "3"
    else:
        assert response.status_code == 409
        error = body(response)["ClientExceptions"][0]
        assert error["Number"] == "5" and "already taken" in error["Message"]
    with accounts.app.services.db.session() as db:
        assert db.execute(text("SELECT COUNT(*) FROM users")).scalar_one() == 1


@pytest.mark.parametrize(
    "invisible", [CGJ, "\u200d", "\u200c", "\ufe0f", "\u3164", "\u180b", "\U000e0100"]
)
def test_default_ignorable_code_points_are_refused(harness: Harness, invisible: str) -> None:
    response = harness.register(f"ro{invisible}ot")
    assert response.status_code == 400
    error = body(response)["ClientExceptions"][0]
    assert error["Source"] == "username" and error["Number"] == "3"
    with harness.app.services.db.session() as db:
        assert db.execute(text("SELECT COUNT(*) FROM users")).scalar_one() == 0


def test_the_look_alike_first_registered_keeps_its_name(accounts: Harness) -> None:
    assert accounts.register(CYRILLIC_ROOT).status_code == 200
    assert accounts.register("root").status_code == 409


def test_a_look_alike_signs_in_to_the_one_account_it_looks_like(accounts: Harness) -> None:
    """Registration refuses look-alikes, so a look-alike names exactly one account: it
    signs in to that account with that account's password, and to no other."""
    root = body(accounts.register("root"))["Data"]["User"]["ID"]
    assert accounts.register("bob").status_code == 200
    for alike in (CYRILLIC_ROOT, "root" + CGJ, "R\u041e\u041eT"):
        assert accounts.login(alike, "wrong password!!").status_code == 401
        signed_in = accounts.login(alike, STRONG)
        assert signed_in.status_code == 200
        assert body(signed_in)["Data"]["User"]["ID"] == root
        assert body(signed_in)["Data"]["User"]["Username"] == "root"


# -- migration 0008 on a database that already has look-alikes --------------------------------


def _insert_user(conn: Any, username: str, password_hash: str) -> int:
    """A user as migration 0007 knew them (no look-alike key yet); its id."""
    conn.execute(
        text(
            "INSERT INTO users (username, username_key, display_name, password_hash, "
            "disabled, created_at, password_changed_at) VALUES (:name, :key, '', :hash, "
            ":disabled, :now, :now)"
        ),
        {
            "name": username,
            "key": username.casefold(),
            "hash": password_hash,
            "disabled": False,
            "now": datetime(2026, 1, 1, 12, 0),
        },
    )
    found = conn.execute(text("SELECT id FROM users WHERE username = :name"), {"name": username})
    return int(found.scalar_one())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at_0007(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    backend = create_postgresql(f"passport_u{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    try:
        yield backend.url
    finally:
        backend.drop()


def test_migration_keeps_existing_look_alikes_working(
    database_at_0007: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = database_at_0007
    engine = create_engine(url)
    migrate.upgrade(engine, "0007")
    settings = make_settings(url)
    password_hash = Passwords(settings).hash(STRONG)
    with engine.begin() as conn:
        root = _insert_user(conn, "root", password_hash)
        alice = _insert_user(conn, "alice", password_hash)
        cyrillic = _insert_user(conn, CYRILLIC_ROOT, password_hash)
    with caplog.at_level(logging.WARNING, logger="passport.migrate"):
        migrate.upgrade(engine)
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT id, username_skeleton FROM users")).all())
    engine.dispose()
    assert keys[root] == lookalike_key("root")
    assert keys[cyrillic] == f"{lookalike_key('root')}:{cyrillic}"
    assert keys[alice] == lookalike_key("alice")
    lines = [r.getMessage() for r in caplog.records if r.name == "passport.migrate"]
    assert lines == [
        f"users {cyrillic} look like earlier usernames; both keep working, consider renaming"
    ]

    app = PassportApp(settings, clock=FakeClock())
    try:
        harness = Harness(app, PassportClient(app), settings, "migrated", "db", FakeClock())
        for name, user_id in (("root", root), (CYRILLIC_ROOT, cyrillic), ("alice", alice)):
            signed_in = harness.login(name, STRONG)
            assert signed_in.status_code == 200, name
            assert body(signed_in)["Data"]["User"]["ID"] == user_id
        # a third look-alike is refused by the unique key, as on a new database
        refused = harness.register("R\u041e\u041eT", password=STRONG + "!")
        assert refused.status_code == 409
    finally:
        app.services.db.dispose()
