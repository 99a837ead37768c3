"""The administration side of multi-factor sign-in (issue 13).

An administrator sees a user's second factors (``Users/factors``, ``passport user
factors``: never a secret) and resets them for a user who lost them
(``Users/resetFactors``, ``passport user reset-factors``): every passkey, authenticator
app and recovery code goes, the user's sessions and tokens end, and the record says who
did it.  The escalation rule holds (nobody resets the factors of an account holding
Passport rights they lack; nobody resets their own here), and hostile input changes
nothing.  An application's ``mfaPolicy`` and a group's ``requireMfa`` are set and shown
through both doors, and a value that is not a policy is refused with nothing written.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select

from enrolled_support import Enrolled
from enrolled_support import enrol_passkey
from enrolled_support import give_factors
from oidc_support import KEK
from passport.cli import cli
from passport.services import directory
from passport.services.factors import APPLICATION_POLICIES
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Group
from passport.storage.models import LoginSession
from passport.storage.models import RecoveryCode
from passport.storage.models import TotpCredential
from passport.storage.models import WebAuthnCredential

from support import STRONG
from support import Harness
from support import PassportClient

COMBOS = [("sqlite", "db"), ("postgresql", "redis")]
HOSTILE = [
    "",
    " ",
    "x" * 5000,
    "' OR '1'='1",
    "<script>",
    "a\x00b",
    "😀",
    "ali\u200bce",
    "\u202ealice",
    "-1",
    "9" * 30,
    "alice\n",
]


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    """Passport with a key-encryption key (authenticator apps and recovery codes are
    sealed with it on MariaDB and PostgreSQL)."""
    backend, store = request.param
    harness: Harness = factory(backend, store, key_encryption_key=KEK)
    return harness


@pytest.fixture
def h_sqlite(factory: Any) -> Harness:
    harness: Harness = factory("sqlite", "db", key_encryption_key=KEK)
    return harness


def data(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def error(response: Any) -> dict[str, Any]:
    return data(response)["ClientExceptions"][0]  # type: ignore[no-any-return]


def passport(h: Harness, *args: str, stdin: str = "") -> Any:
    env = {
        "PASSPORT_PUBLIC_URL": h.settings.public_url,
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
        "COLUMNS": "1000",  # tables wide enough to read every column
    }
    return CliRunner().invoke(
        cli, [*args, "--database-url", h.settings.database_url], input=stdin, env=env
    )


def factor_rows(h: Harness, username: str) -> tuple[int, int, int]:
    """(passkeys, authenticator apps, recovery codes) stored for the user."""
    with h.app.services.db.session() as db:
        user = directory.get_user(db, username)
        return tuple(  # type: ignore[return-value]
            db.scalar(select(func.count()).select_from(model).where(model.user_id == user.id)) or 0
            for model in (WebAuthnCredential, TotpCredential, RecoveryCode)
        )


def sessions_of(h: Harness, username: str) -> int:
    with h.app.services.db.session() as db:
        user = directory.get_user(db, username)
        if h.store == "redis":
            return len(h.app.services.sessions.list_for_user(user.id, h.clock()))
        return (
            db.scalar(
                select(func.count())
                .select_from(LoginSession)
                .where(LoginSession.user_id == user.id)
            )
            or 0
        )


def sign_in_with_recovery_code(h: Harness, username: str, code: str) -> PassportClient:
    client = h.new_client()
    answer = client.post(
        "/Account/login",
        data={"username": username, "password": STRONG, "code": code, "method": "recovery"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return client


def alice_with_factors(h: Harness) -> Enrolled:
    assert h.register("alice").status_code == 200
    enrolled = give_factors(h, "alice")
    enrol_passkey(h, "alice", "YubiKey [red]5[/red]")  # rich markup: printed as it is
    return enrolled


# -- seeing a user's factors ---------------------------------------------------------------


def test_an_administrator_sees_a_user_s_factors_and_no_secret(h: Harness) -> None:
    enrolled = alice_with_factors(h)
    root = h.administrator("root", "admin")
    answer = root.get("/Users/factors", query_string={"username": "alice"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shown = data(answer)["Data"]
    assert shown["User"]["Username"] == "alice"
    factors = shown["Factors"]
    assert factors["Methods"] == ["passkey", "totp", "recovery"]
    assert [(p["Name"], p["Synced"], p["LastUsed"]) for p in factors["Passkeys"]] == [
        ("Phone", True, None),
        ("YubiKey [red]5[/red]", False, None),
    ]
    assert all(p["Created"] == h.clock().isoformat() for p in factors["Passkeys"])
    assert factors["Totp"] is True and factors["TotpCreated"] == h.clock().isoformat()
    assert factors["RecoveryCodes"] == 10
    text = answer.get_data(as_text=True)
    assert enrolled.totp_secret not in text
    assert not [c for c in enrolled.recovery_codes if c in text or c.replace("-", "") in text]
    with h.app.services.db.session() as db:
        for row in db.scalars(select(WebAuthnCredential)):
            assert row.public_key not in text and row.credential_id not in text

    # Through the CLI: the same shape, and a table that prints names escaped.
    as_json = passport(h, "user", "factors", "alice", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == shown
    table = passport(h, "user", "factors", "alice")
    assert table.exit_code == 0, table.output
    assert "Phone" in table.stdout and "YubiKey [red]5[/red]" in table.stdout
    assert "10 left" in table.stdout and "authenticator app" in table.stdout
    assert enrolled.totp_secret not in table.stdout + as_json.stdout

    # Reading is not a change: nothing audited, nothing ended.
    with h.app.services.db.session() as db:
        assert not db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.reset")).all()


def test_a_user_without_factors_shows_none(h_sqlite: Harness) -> None:
    h = h_sqlite
    h.register("bob")
    root = h.administrator("root", "admin")
    factors = data(root.get("/Users/factors?username=bob"))["Data"]["Factors"]
    assert factors == {
        "Methods": [],
        "Passkeys": [],
        "Totp": False,
        "TotpCreated": None,
        "RecoveryCodes": 0,
    }
    shown = passport(h, "user", "factors", "bob")
    assert shown.exit_code == 0 and "'bob' has no second factor" in shown.output


def test_reading_factors_needs_users_read(h_sqlite: Harness) -> None:
    h = h_sqlite
    h.register("alice")
    reader = h.administrator("reader", "users:read")
    assert reader.get("/Users/factors?username=alice").status_code == 200
    writer = h.administrator("writer", "users:write")
    refused = writer.get("/Users/factors?username=alice")
    assert refused.status_code == 403 and error(refused)["Source"] == "permission"
    assert reader.post("/Users/resetFactors", data={"username": "alice"}).status_code == 403


# -- resetting them --------------------------------------------------------------------------


def test_a_reset_removes_every_factor_and_ends_the_user_s_access(h: Harness) -> None:
    enrolled = alice_with_factors(h)
    alice = sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[0])
    assert data(alice.get("/Account/status"))["LoggedIn"] is True
    # Without a second factor the password alone does not sign alice in.
    assert h.login("alice").status_code == 401
    root = h.administrator("root", "admin")

    reset = root.post("/Users/resetFactors", data={"username": "alice"})
    assert reset.status_code == 200, reset.get_data(as_text=True)
    answer = data(reset)["Data"]
    assert answer["Removed"] == ["passkey", "totp", "recovery"]
    assert answer["Ended"] == 1 and answer["User"]["Username"] == "alice"

    assert factor_rows(h, "alice") == (0, 0, 0)
    assert data(alice.get("/Account/status"))["LoggedIn"] is False
    assert sessions_of(h, "alice") == 0
    assert data(root.get("/Account/status"))["LoggedIn"] is True  # the actor's own stays
    # alice signs in with her password again, as a user without factors does.
    assert h.login("alice").status_code == 200

    with h.app.services.db.session() as db:
        (record,) = db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.reset")).all()
        root_id = directory.get_user(db, "root").id
    assert (record.outcome, record.username, record.actor_id) == ("success", "alice", root_id)
    detail = json.loads(record.detail)
    assert detail == {"removed": ["passkey", "totp", "recovery"], "passkeys": 2, "ended": 1}
    assert enrolled.totp_secret not in record.detail


def test_the_operator_resets_factors_from_the_command_line(h_sqlite: Harness) -> None:
    h = h_sqlite
    enrolled = alice_with_factors(h)
    sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[1])
    asked = passport(h, "user", "reset-factors", "alice", stdin="n\n")
    assert asked.exit_code != 0 and factor_rows(h, "alice") == (2, 1, 10 - 1)
    done = passport(h, "user", "reset-factors", "alice", "--yes")
    assert done.exit_code == 0, done.output
    assert "removed (passkey, totp, recovery); 1 session(s) ended" in done.output
    assert factor_rows(h, "alice") == (0, 0, 0) and sessions_of(h, "alice") == 0
    with h.app.services.db.session() as db:
        (record,) = db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.reset")).all()
    assert record.actor_id is None
    assert json.loads(record.detail)["actor"] == f"cli:{getpass.getuser()}"
    again = passport(h, "user", "reset-factors", "alice", "--yes")  # nothing left: still fine
    assert again.exit_code == 0 and "removed (none)" in again.output
    missing = passport(h, "user", "reset-factors", "ghost", "--yes")
    assert missing.exit_code == 1 and "ghost" in missing.output


# -- escalation ------------------------------------------------------------------------------


def test_a_delegate_cannot_reset_an_administrator_s_factors(h: Harness) -> None:
    """``users:write`` does not reach an account holding rights the delegate lacks: an
    administrator's factors stay, and so do their sessions; an administrator may."""
    enrolled = alice_with_factors(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        passport_app = db.get(Application, 1)
        assert passport_app is not None
        admin = directory.find_permission(db, passport_app, "admin")
        assert admin is not None
        directory.grant(db, admin, user=directory.get_user(db, "alice"))
    alice = sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[0])
    helper = h.administrator("helper", "users:read", "users:write", "groups:write")

    refused = helper.post("/Users/resetFactors", data={"username": "alice"})
    assert refused.status_code == 403, refused.get_data(as_text=True)
    assert error(refused)["Number"] == "403" and error(refused)["Source"] == "username"
    assert factor_rows(h, "alice") == (2, 1, 9)
    assert data(alice.get("/Account/status"))["LoggedIn"] is True
    # Reading them is not acting on them: users:read is enough.
    assert helper.get("/Users/factors?username=alice").status_code == 200

    root = h.administrator("root", "admin")
    assert root.post("/Users/resetFactors", data={"username": "alice"}).status_code == 200
    assert factor_rows(h, "alice") == (0, 0, 0)
    with h.app.services.db.session() as db:
        done = db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.reset")).all()
    assert len(done) == 1  # the refusal is not recorded as done


def test_a_delegate_resets_the_factors_of_a_user_without_rights(h_sqlite: Harness) -> None:
    h = h_sqlite
    alice_with_factors(h)
    helper = h.administrator("helper", "users:write")
    done = helper.post("/Users/resetFactors", data={"username": "alice"})
    assert done.status_code == 200, done.get_data(as_text=True)
    assert factor_rows(h, "alice") == (0, 0, 0)


def test_an_administrator_cannot_reset_their_own_factors_here(h_sqlite: Harness) -> None:
    """One's own factors change on the account page after a recent sign-in; a stolen
    administrator's session must not strip them through the administration API."""
    h = h_sqlite
    h.administrator("root", "admin")
    enrolled = give_factors(h, "root")
    # Holding a factor, root administers only from a session that proved one.
    root = sign_in_with_recovery_code(h, "root", enrolled.recovery_codes[0])
    refused = root.post("/Users/resetFactors", data={"username": "root"})
    assert refused.status_code == 403 and error(refused)["Source"] == "username"
    assert factor_rows(h, "root") == (1, 1, 9)
    assert data(root.get("/Account/status"))["LoggedIn"] is True
    with h.app.services.db.session() as db:
        root_id = str(directory.get_user(db, "root").id)
    by_id = root.post("/Users/resetFactors", data={"username": root_id})
    assert by_id.status_code == 403 and factor_rows(h, "root") == (1, 1, 9)


# -- hostile input ---------------------------------------------------------------------------


def state(h: Harness) -> tuple[Any, ...]:
    with h.app.services.db.session() as db:
        alice = directory.find_user(db, "alice") is not None
        return (
            factor_rows(h, "alice") if alice else None,
            sessions_of(h, "alice") if alice else None,
            tuple(db.execute(select(Application.id, Application.mfa_policy)).all()),
            tuple(db.execute(select(Group.id, Group.require_mfa)).all()),
            db.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "success")
            ),
        )


def test_hostile_input_as_anonymous_is_401_and_changes_nothing(h_sqlite: Harness) -> None:
    h = h_sqlite
    enrolled = alice_with_factors(h)
    sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[0])
    before = state(h)
    anonymous = h.new_client()
    for value in [*HOSTILE, "alice"]:
        for method, path in (("GET", "/Users/factors"), ("POST", "/Users/resetFactors")):
            if method == "GET":
                answer = anonymous.get(path, query_string={"username": value})
            else:
                answer = anonymous.post(path, data={"username": value})
            # 401, or 400 where the value is refused before anyone is looked at (too long)
            assert answer.status_code in (400, 401), (path, value)
            assert "Factors" not in answer.get_data(as_text=True)
    for params in ({"application": "Passport", "mfaPolicy": "optional"},):
        assert anonymous.post("/Applications/update", data=params).status_code == 401
    assert (
        anonymous.post("/Groups/create", data={"name": "G", "requireMfa": "1"}).status_code == 401
    )
    assert state(h) == before


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_usernames_as_administrator_are_refused_and_change_nothing(
    h: Harness, value: str
) -> None:
    enrolled = alice_with_factors(h)
    sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[0])
    root = h.administrator("root", "admin")
    before = state(h)
    for method, path in (("GET", "/Users/factors"), ("POST", "/Users/resetFactors")):
        if method == "GET":
            answer = root.get(path, query_string={"username": value})
        else:
            answer = root.post(path, data={"username": value})
        assert answer.status_code in (400, 404), (path, value, answer.get_data(as_text=True))
        assert data(answer)["ClientExceptions"] and data(answer)["ServerExceptions"] == []
        assert state(h) == before, (path, value)


@pytest.mark.parametrize(
    "body",
    [
        {"username": ["alice"]},
        {"username": {"name": "alice"}},
        {"username": None},
        {"username": True},
        {"username": 2.5},
        {"user": "alice"},
    ],
    ids=["list", "object", "null", "bool", "float", "misnamed"],
)
def test_wrong_types_are_400_and_change_nothing(h_sqlite: Harness, body: dict[str, Any]) -> None:
    h = h_sqlite
    enrolled = alice_with_factors(h)
    sign_in_with_recovery_code(h, "alice", enrolled.recovery_codes[0])
    root = h.administrator("root", "admin")
    before = state(h)
    answer = root.post("/Users/resetFactors", json=body)
    assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)
    assert state(h) == before
    repeated = root.post(
        "/Users/resetFactors",
        data="username=alice&username=bob",
        content_type="application/x-www-form-urlencoded",
    )
    assert repeated.status_code == 400 and state(h) == before


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(st.text(max_size=80), st.sampled_from(["alice", "ALICE", "root", "1"])))
def test_any_username_resets_only_the_user_it_names(h_sqlite: Harness, value: str) -> None:
    """Whatever the text, the answer is never a 5xx; alice's factors go only when the
    text names her (then 200), never the administrator's own."""
    h = h_sqlite
    with h.app.services.db.session() as db:
        if directory.find_user(db, "alice") is None:
            h.register("alice")
    if factor_rows(h, "alice") == (0, 0, 0):
        give_factors(h, "alice")
    root = admin_client(h)
    before = factor_rows(h, "alice")
    answer = root.post("/Users/resetFactors", data={"username": value})
    assert answer.status_code < 500
    assert data(answer)["ServerExceptions"] == []
    if value.casefold() == "alice":
        assert answer.status_code == 200
    if answer.status_code == 200:
        assert data(answer)["Data"]["User"]["Username"] != "root"
    if answer.status_code == 200 and data(answer)["Data"]["User"]["Username"] == "alice":
        assert factor_rows(h, "alice") == (0, 0, 0)
    else:
        assert factor_rows(h, "alice") == before


_ADMIN: list[tuple[Harness, PassportClient]] = []


def admin_client(h: Harness) -> PassportClient:
    """One signed-in administrator per harness, across hypothesis examples (the
    harness is the test's: the same one for all its examples)."""
    if not _ADMIN or _ADMIN[0][0] is not h:
        _ADMIN[:] = [(h, h.administrator("root", "admin"))]
    return _ADMIN[0][1]


# -- the application's mfaPolicy and the group's requireMfa ------------------------------------


def test_an_application_s_mfa_policy_is_set_and_shown_through_both_doors(h: Harness) -> None:
    root = h.administrator("root", "admin")
    created = root.post("/Applications/create", data={"name": "Wiki"})
    assert data(created)["Data"]["Application"]["MfaPolicy"] == "default"
    strict = root.post("/Applications/create", data={"name": "Bank", "mfaPolicy": "passkey"})
    assert data(strict)["Data"]["Application"]["MfaPolicy"] == "passkey"
    updated = root.post("/Applications/update", data={"application": "Wiki", "mfaPolicy": " MFA "})
    assert data(updated)["Data"]["Application"]["MfaPolicy"] == "mfa"
    kept = root.post("/Applications/update", data={"application": "Wiki", "description": "d"})
    assert data(kept)["Data"]["Application"]["MfaPolicy"] == "mfa"
    assert data(root.get("/Applications/get?application=Wiki"))["Data"]["Application"][
        "MfaPolicy"
    ] == ("mfa")
    with h.app.services.db.session() as db:
        details = list(
            db.scalars(
                select(AuditEvent.detail)
                .where(AuditEvent.event == "app_update")
                .order_by(AuditEvent.id)
            )
        )
    assert json.loads(details[0])["changed"] == ["mfaPolicy"]

    assert passport(h, "app", "update", "Wiki", "--mfa-policy", "optional").exit_code == 0
    shown = json.loads(passport(h, "app", "show", "Wiki", "--json").stdout)[0]
    assert shown["MfaPolicy"] == "optional"
    table = passport(h, "app", "show", "Wiki")
    assert "MfaPolicy" in table.stdout and "optional" in table.stdout
    added = passport(h, "app", "add", "Shop", "--mfa-policy", "mfa", "--json")
    assert added.exit_code == 0 and json.loads(added.stdout)[0]["MfaPolicy"] == "mfa"
    wrong = passport(h, "app", "update", "Wiki", "--mfa-policy", "sometimes")
    assert wrong.exit_code == 2 and "sometimes" in wrong.output


BAD_POLICIES = ["", " ", "none", "MFA!", "passkeys", "x" * 17, "x" * 5000, "mfa\x00", "😀", "1"]


@pytest.mark.parametrize("value", BAD_POLICIES)
def test_a_value_that_is_not_a_policy_is_400_and_changes_nothing(h: Harness, value: str) -> None:
    root = h.administrator("root", "admin")
    root.post("/Applications/create", data={"name": "Wiki", "mfaPolicy": "mfa"})
    before = state(h)
    created = root.post("/Applications/create", data={"name": "Notes", "mfaPolicy": value})
    assert created.status_code == 400, created.get_data(as_text=True)
    assert error(created)["Source"] == "mfaPolicy"
    updated = root.post(
        "/Applications/update",
        data={"application": "Wiki", "mfaPolicy": value, "description": "changed"},
    )
    assert updated.status_code == 400 and error(updated)["Source"] == "mfaPolicy"
    assert state(h) == before
    wiki = data(root.get("/Applications/get?application=Wiki"))["Data"]["Application"]
    assert (wiki["MfaPolicy"], wiki["Description"]) == ("mfa", "")
    assert data(root.get("/Applications/get?application=Notes")).get("Data") is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=20))
def test_mfa_policy_takes_only_a_policy(h_sqlite: Harness, value: str) -> None:
    h = h_sqlite
    root = admin_client(h)
    with h.app.services.db.session() as db:
        if directory.find_application(db, "Wiki") is None:
            root.post("/Applications/create", data={"name": "Wiki"})
    with h.app.services.db.session() as db:
        before = directory.get_application(db, "Wiki").mfa_policy
    answer = root.post("/Applications/update", data={"application": "Wiki", "mfaPolicy": value})
    with h.app.services.db.session() as db:
        after = directory.get_application(db, "Wiki").mfa_policy
    if value in APPLICATION_POLICIES:
        assert answer.status_code == 200
    if answer.status_code == 200:
        assert after == value.strip().lower() and after in APPLICATION_POLICIES
    else:
        assert answer.status_code == 400 and after == before


def test_a_group_s_require_mfa_is_set_and_shown_through_both_doors(h: Harness) -> None:
    root = h.administrator("root", "admin")
    plain = data(root.post("/Groups/create", data={"name": "Staff"}))["Data"]["Group"]
    assert plain["RequireMfa"] is False
    strict = root.post("/Groups/create", data={"name": "Ops", "requireMfa": "true"})
    assert data(strict)["Data"]["Group"]["RequireMfa"] is True
    updated = root.post("/Groups/update", data={"group": "Staff", "requireMfa": "true"})
    assert data(updated)["Data"]["Group"]["RequireMfa"] is True
    kept = root.post("/Groups/update", data={"group": "Staff", "description": "d"})
    assert data(kept)["Data"]["Group"]["RequireMfa"] is True
    assert data(root.get("/Groups/get?group=Staff"))["Data"]["Group"]["RequireMfa"] is True
    listed = data(root.get("/Groups/list"))["Data"]["Items"]
    assert {g["Name"]: g["RequireMfa"] for g in listed} == {"Staff": True, "Ops": True}
    with h.app.services.db.session() as db:
        details = [
            json.loads(d)
            for d in db.scalars(
                select(AuditEvent.detail)
                .where(AuditEvent.event.in_(["group_create", "group_update"]))
                .order_by(AuditEvent.id)
            )
        ]
    assert details[1] == {"group": "Ops", "requireMfa": True}
    assert details[2] == {"group": "Staff", "changed": ["requireMfa"]}

    before = state(h)
    for bad in ("x", "", "2", "\u00fcber"):
        refused = root.post("/Groups/update", data={"group": "Staff", "requireMfa": bad})
        assert refused.status_code == 400 and error(refused)["Source"] == "requireMfa", bad
        created = root.post("/Groups/create", data={"name": "New", "requireMfa": bad})
        assert created.status_code == 400, bad
    assert state(h) == before

    assert passport(h, "group", "update", "Staff", "--no-require-mfa").exit_code == 0
    assert passport(h, "group", "add", "Admins", "--require-mfa").exit_code == 0
    shown = json.loads(passport(h, "group", "show", "Staff", "--json").stdout)[0]
    assert shown["RequireMfa"] is False
    listed_cli = json.loads(passport(h, "group", "list", "--json").stdout)
    assert {g["Name"]: g["RequireMfa"] for g in listed_cli} == {
        "Admins": True,
        "Ops": True,
        "Staff": False,
    }


def test_require_mfa_on_a_group_holding_rights_obeys_the_escalation_rule(h_sqlite: Harness) -> None:
    h = h_sqlite
    with h.app.services.db.session(write=True) as db, db.begin():
        admins = directory.create_group(db, "Admins")
        admins.require_mfa = True
        passport_app = db.get(Application, 1)
        assert passport_app is not None
        admin = directory.find_permission(db, passport_app, "admin")
        assert admin is not None
        directory.grant(db, admin, group=admins)
    helper = h.administrator("helper", "groups:write", "apps:write")
    before = state(h)
    for path, params in (
        ("/Groups/update", {"group": "Admins", "requireMfa": "false"}),
        ("/Applications/update", {"application": "Passport", "mfaPolicy": "optional"}),
    ):
        refused = helper.post(path, data=params)
        assert refused.status_code == 403, (path, refused.get_data(as_text=True))
    assert state(h) == before
    root = h.administrator("root", "admin")
    done = root.post("/Groups/update", data={"group": "Admins", "requireMfa": "false"})
    assert done.status_code == 200
    assert root.post(
        "/Applications/update", data={"application": "Passport", "mfaPolicy": "mfa"}
    ).status_code == (200)
