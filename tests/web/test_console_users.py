"""The console's user page, complete (issue 15): create a user, the "without a second
factor" filter, the profile edited, one session ended, the permissions a user holds per
application and how, the applications they use and their access to one revoked, and the
page for an administrator whose session must enrol a factor first.

Every action is one :class:`passport.services.administration.Administration` operation:
the tests check its audit record names the administrator, that a ``users:read`` reader
sees no control and a forged POST (with this browser's CSRF token) is 403 and changes
nothing, the escalation rule, and that hostile input gets an answer, never a 500.  On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyotp
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select

from console_support import act
from console_support import user_id
from enrolled_support import enrol_passkey
from enrolled_support import enrol_totp
from enrolled_support import give_recovery_codes
from oidc_support import KEK
from oidc_support import body
from oidc_support import exchange
from oidc_support import form_of
from oidc_support import get_code
from oidc_support import seed
from passport.services import directory
from passport.services import listings
from passport.services import permissions
from passport.services.applications import find_by_name
from passport.services.factors import reading
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Consent
from passport.storage.models import LoginSession
from passport.storage.models import LogoutNotification
from passport.storage.models import OAuthToken
from passport.storage.models import TotpCredential
from passport.storage.models import User
from second_factor_support import CODES
from second_factor_support import SECRET
from second_factor_support import form_fields
from second_factor_support import status
from second_factor_support import text_of
from site_support import table_fingerprints
from site_support import unexpected_writes

from support import STRONG
from support import Harness
from support import PassportClient

BACKENDS = ["sqlite", "postgresql"]
SESSION_REF = re.compile(r'name="session" value="([^"]+)"')


def audit_of(h: Harness, event: str) -> AuditEvent:
    with h.app.services.db.session() as db:
        record = db.scalars(
            select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id.desc())
        ).first()
        assert record is not None, event
        db.expunge(record)
        return record


def user_row(h: Harness, name: str) -> User | None:
    with h.app.services.db.session() as db:
        found = db.scalars(select(User).where(User.username == name)).first()
        if found is not None:
            db.expunge(found)
        return found


def signed_in_client(h: Harness, name: str) -> PassportClient:
    client = h.new_client()
    answer = client.post("/Account/login", data={"username": name, "password": STRONG})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return client


def logged_in(client: PassportClient) -> bool:
    answer = client.get("/Account/status")
    return bool(json.loads(answer.get_data(as_text=True))["LoggedIn"])


def session_refs(client: PassportClient, h: Harness, name: str) -> list[str]:
    page = client.get(f"/admin/user?id={user_id(h, name)}")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return SESSION_REF.findall(page.get_data(as_text=True))


# -- create a user ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_administrator_creates_a_user_through_users_create(factory: Any, backend: str) -> None:
    h = factory(backend)
    helpdesk = h.administrator("helpdesk", "users:read", "users:write")
    page = helpdesk.get("/admin/users")
    assert "Create a user" in page.get_data(as_text=True)
    made = helpdesk.post(
        "/admin/users",
        data={
            **form_of(page),
            "action": "create",
            "username": "carol",
            "email": "carol@example.com",
            "displayname": "Carol C",
            "password": STRONG,
            "address": "confirm",
        },
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    assert "User carol created." in made.get_data(as_text=True)
    carol = user_row(h, "carol")
    assert carol is not None and carol.display_name == "Carol C"
    assert carol.email == "carol@example.com" and not carol.email_verified
    record = audit_of(h, "user_create")
    assert record.actor_id == user_id(h, "helpdesk") and record.username == "carol"
    assert "addressConfirmedBy" not in json.loads(record.detail or "{}")
    # The administrator vouches for the address: confirmed at once, and the record says so.
    vouched = helpdesk.post(
        "/admin/users",
        data={
            **form_of(page),
            "action": "create",
            "username": "dave",
            "email": "dave@example.com",
            "password": STRONG,
            "address": "confirmed",
        },
    )
    assert vouched.status_code == 200, vouched.get_data(as_text=True)
    dave = user_row(h, "dave")
    assert dave is not None and dave.email_verified
    assert json.loads(audit_of(h, "user_create").detail)["addressConfirmedBy"] == "administrator"
    # The rules are Users/create's: a weak password, a taken name.
    for fields, status_code in (
        ({"username": "erin", "password": "short"}, 400),
        ({"username": "carol", "password": STRONG}, 409),
    ):
        refused = helpdesk.post(
            "/admin/users", data={**form_of(page), "action": "create", **fields}
        )
        assert refused.status_code == status_code, refused.get_data(as_text=True)[:300]
    assert user_row(h, "erin") is None
    # The API's Users/create, the same operation: confirmAddress false vouches, left out
    # asks for the confirmation as before.
    for name, extra, confirmed in (
        ("frank", {"confirmAddress": "false"}, True),
        ("gina", {}, False),
    ):
        made = helpdesk.post(
            "/Users/create",
            data={"username": name, "password": STRONG, "email": f"{name}@example.com", **extra},
        )
        assert made.status_code == 200, made.get_data(as_text=True)
        assert body(made)["Data"]["User"]["EmailVerified"] is confirmed


# -- the filter "without a second factor" --------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_filter_without_a_second_factor_agrees_with_the_factor_rule(
    factory: Any, backend: str
) -> None:
    h = factory(backend, key_encryption_key=KEK)
    for name in ("app", "key", "codes", "none"):
        assert h.register(name).status_code == 200
    enrol_totp(h, "app")
    enrol_passkey(h, "key")
    # Recovery codes left without a factor (the app removed since): no second factor at
    # sign-in (FactorSummary.any), so none for the filter either.
    enrol_totp(h, "codes")
    give_recovery_codes(h, "codes")
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id(h, "codes")))
    root = h.administrator("root", "admin")
    text = root.get("/admin/users?state=nomfa").get_data(as_text=True)
    shown = set(re.findall(r'href="/admin/user\?id=\d+">([^<]+)</a>', text))
    assert shown == {"codes", "none", "root"}
    with h.app.services.db.session() as db:
        factors = reading(h.app.services.settings, h.app.services.throttle, db)
        listed = {u.username for u in listings.search_users(db, without_second_factor=True).items}
        every = db.scalars(select(User)).all()
        assert listed == {u.username for u in every if not factors.summary(u.id).any}
    api = root.get("/Users/list?withoutSecondFactor=true")
    assert api.status_code == 200
    assert {u["Username"] for u in body(api)["Data"]["Items"]} == {"codes", "none", "root"}
    assert len(body(root.get("/Users/list"))["Data"]["Items"]) == 5  # without it, everyone


# -- the profile -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_profile_is_edited_through_users_update(factory: Any, backend: str) -> None:
    h = factory(backend)
    assert h.register("alice", email="alice@example.com").status_code == 200
    helpdesk = h.administrator("helpdesk", "users:read", "users:write")
    saved = act(
        helpdesk, h, "alice", action="update", email="alice@new.example", displayname="Alice A"
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert "The profile of alice is saved." in saved.get_data(as_text=True)
    alice = user_row(h, "alice")
    assert alice is not None and alice.email == "alice@new.example"
    assert alice.display_name == "Alice A" and not alice.email_verified
    record = audit_of(h, "user_update")
    assert record.actor_id == user_id(h, "helpdesk") and record.username == "alice"
    # A field left out is unchanged (a forged form without it removes nothing).
    act(helpdesk, h, "alice", action="update", displayname="Alice B")
    alice = user_row(h, "alice")
    assert alice is not None and alice.email == "alice@new.example"


# -- one session -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_session_ends_and_the_other_stays(factory: Any, backend: str) -> None:
    h = factory(backend)
    assert h.register("alice").status_code == 200
    phone, laptop = signed_in_client(h, "alice"), signed_in_client(h, "alice")
    helpdesk = h.administrator("helpdesk", "users:read", "users:write")
    refs = session_refs(helpdesk, h, "alice")
    assert len(refs) == 2
    with h.app.services.db.session() as db:
        hashes = set(db.scalars(select(LoginSession.id_hash)))
        sids = set(db.scalars(select(LoginSession.sid)))
    page = helpdesk.get(f"/admin/user?id={user_id(h, 'alice')}").get_data(as_text=True)
    assert not any(hashed[:16] in page for hashed in hashes)  # never the hash, nor its prefix
    assert set(refs) <= sids
    done = act(helpdesk, h, "alice", action="end-session", session=refs[0])
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "That session of alice ended." in done.get_data(as_text=True)
    assert [logged_in(phone), logged_in(laptop)].count(True) == 1
    record = audit_of(h, "user_end_session")
    assert record.actor_id == user_id(h, "helpdesk") and record.username == "alice"
    assert session_refs(helpdesk, h, "alice") == refs[1:]
    # Ended: the same reference again is no session of hers.
    assert act(helpdesk, h, "alice", action="end-session", session=refs[0]).status_code == 404


def test_a_session_of_another_user_is_not_found(h: Harness) -> None:
    for name in ("alice", "bob"):
        assert h.register(name).status_code == 200
    bob = signed_in_client(h, "bob")
    root = h.administrator("root", "admin")
    bobs = session_refs(root, h, "bob")
    refused = act(root, h, "alice", action="end-session", session=bobs[0])
    assert refused.status_code == 404
    assert logged_in(bob)
    api = root.post("/Users/endSession", data={"username": "alice", "session": bobs[0]})
    assert api.status_code == 404 and logged_in(bob)


def test_the_api_lists_and_ends_a_session_by_the_same_reference(h: Harness) -> None:
    assert h.register("alice").status_code == 200
    alice = signed_in_client(h, "alice")
    root = h.administrator("root", "admin")
    listed = body(root.get("/Users/sessions?username=alice"))["Data"]["Sessions"]
    assert [s["Session"] for s in listed] == session_refs(root, h, "alice")
    ended = root.post(
        "/Users/endSession", data={"username": "alice", "session": listed[0]["Session"]}
    )
    assert ended.status_code == 200, ended.get_data(as_text=True)
    assert not logged_in(alice)


# -- applications ----------------------------------------------------------------------------


def world_with_wiki(factory: Any, backend: str) -> tuple[Harness, int]:
    """alice signed in to Wiki (tokens, a consent; Wiki hears back-channel logout)."""
    h: Harness = factory(backend, key_encryption_key=KEK)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        wiki.backchannel_logout_uri = "http://127.0.0.1:9/backchannel"
        wiki_id = wiki.id
    issued = body(exchange(h, get_code(h)))
    assert "refresh_token" in issued, issued
    with h.app.services.db.session(write=True) as db, db.begin():
        db.add(
            Consent(
                user_id=directory.get_user(db, "alice").id,
                application_id=wiki_id,
                scope="openid",
                granted_at=h.clock(),
            )
        )
    return h, wiki_id


def live_tokens(h: Harness, name: str) -> int:
    with h.app.services.db.session() as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(OAuthToken)
                .join(User, User.id == OAuthToken.user_id)
                .where(User.username == name, OAuthToken.revoked_at.is_(None))
            )
            or 0
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_access_to_one_application_is_revoked_and_it_is_told(factory: Any, backend: str) -> None:
    h, wiki_id = world_with_wiki(factory, backend)
    helpdesk = h.administrator("helpdesk", "users:read", "users:write")
    page = helpdesk.get(f"/admin/user?id={user_id(h, 'alice')}").get_data(as_text=True)
    assert "<td>Wiki</td><td>2</td>" in page and "<td>openid</td>" in page
    assert live_tokens(h, "alice") == 2
    done = act(helpdesk, h, "alice", action="revoke-app", application=str(wiki_id))
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "access to Wiki ended (2 token(s) revoked" in done.get_data(as_text=True)
    assert live_tokens(h, "alice") == 0
    with h.app.services.db.session() as db:
        assert db.scalar(select(func.count()).select_from(Consent)) == 0
        told = db.scalars(select(LogoutNotification)).all()
        assert [n.application_id for n in told] == [wiki_id]
        assert db.scalar(select(func.count()).select_from(LoginSession)) >= 1  # Passport stays
    record = audit_of(h, "user_revoke_application")
    assert record.actor_id == user_id(h, "helpdesk") and record.application == "Wiki"


# -- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reader_sees_no_write_control_and_forged_posts_change_nothing(
    factory: Any, backend: str
) -> None:
    h, wiki_id = world_with_wiki(factory, backend)
    reader = h.administrator("reader", "users:read")
    listing = reader.get("/admin/users").get_data(as_text=True)
    assert "Create a user" not in listing
    page = reader.get(f"/admin/user?id={user_id(h, 'alice')}").get_data(as_text=True)
    assert "Wiki" in page  # the reader sees what alice uses
    for control in ("End this session", "Revoke", "Save the profile"):
        assert control not in page
    cookie = reader.get_cookie("passport_csrf")
    assert cookie is not None
    with h.app.services.db.session() as db:
        sid = db.scalars(
            select(LoginSession.sid).where(LoginSession.user_id == user_id(h, "alice"))
        ).first()
    before = table_fingerprints(h)
    forged = [
        ("/admin/users", {"action": "create", "username": "mallory", "password": STRONG}),
        (
            "/admin/user",
            {"id": str(user_id(h, "alice")), "action": "end-session", "session": sid or "x"},
        ),
        (
            "/admin/user",
            {"id": str(user_id(h, "alice")), "action": "revoke-app", "application": str(wiki_id)},
        ),
        (
            "/admin/user",
            {"id": str(user_id(h, "alice")), "action": "update", "displayname": "Owned"},
        ),
    ]
    for path, fields in forged:
        answer = reader.post(path, data={"csrf": cookie.value, **fields})
        assert answer.status_code == 403, (fields, answer.status_code)
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}


def test_a_delegate_neither_ends_a_session_of_nor_revokes_for_an_admin(factory: Any) -> None:
    h, wiki_id = world_with_wiki(factory, "sqlite")
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, user=directory.get_user(db, "alice"))  # alice is an admin
    helpdesk = h.administrator("helpdesk", "users:read", "users:write")
    refs = session_refs(helpdesk, h, "alice")
    assert refs and "End this session" in helpdesk.get(
        f"/admin/user?id={user_id(h, 'alice')}"
    ).get_data(as_text=True)
    before = table_fingerprints(h)
    for fields in (
        {"action": "end-session", "session": refs[0]},
        {"action": "revoke-app", "application": str(wiki_id)},
        {"action": "update", "displayname": "Owned"},
    ):
        assert act(helpdesk, h, "alice", **fields).status_code == 403, fields
    for path, fields in (
        ("/Users/endSession", {"username": "alice", "session": refs[0]}),
        ("/Users/revokeApplication", {"username": "alice", "application": "Wiki"}),
    ):
        assert helpdesk.post(path, data=fields).status_code == 403, path
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}
    assert live_tokens(h, "alice") == 2


# -- permissions per application --------------------------------------------------------------


def test_the_page_says_how_each_permission_is_held(h: Harness) -> None:
    assert h.register("alice").status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        now = h.clock()
        notes, _ = directory.create_application(db, now, "Notes", redirect_uris=[])
        edit = directory.create_permission(db, notes, "edit", "")
        read = directory.create_permission(db, notes, "read", "")
        editors = directory.create_group(db, "Editors")
        alice = directory.get_user(db, "alice")
        db.add_all([])
        directory.grant(db, edit, user=alice)
        directory.grant(db, edit, group=editors)
        directory.grant(db, read, group=editors)
        from passport.storage.models import GroupMember

        db.add(GroupMember(group_id=editors.id, user_id=alice.id))
    root = h.administrator("root", "admin")
    page = root.get(f"/admin/user?id={user_id(h, 'alice')}").get_data(as_text=True)
    assert "<td>Notes</td><td>edit</td><td>direct; via group Editors</td><td>yes</td>" in page
    assert "<td>Notes</td><td>read</td><td>via group Editors</td><td>yes</td>" in page


GRANT = st.tuples(st.integers(0, 2), st.integers(0, 3))  # (application, permission)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    direct=st.sets(GRANT, max_size=6),
    group_grants=st.sets(st.tuples(st.integers(0, 1), GRANT), max_size=6),
    memberships=st.sets(st.integers(0, 1)),
    user_disabled=st.booleans(),
    apps_disabled=st.sets(st.integers(0, 2)),
)
def test_the_listing_agrees_with_the_permission_check(
    factory: Any,
    direct: set[tuple[int, int]],
    group_grants: set[tuple[int, tuple[int, int]]],
    memberships: set[int],
    user_disabled: bool,
    apps_disabled: set[int],
) -> None:
    """Property: over random grants (direct and through groups), memberships and disabled
    users and applications, what the page says counts is exactly what
    ``services/permissions.py`` decides — ``effective`` per application, and ``granted``
    for each permission."""
    h = factory("sqlite")
    from passport.storage.models import GroupMember

    with h.app.services.db.session(write=True) as db, db.begin():
        now = h.clock()
        user = User(
            username="u",
            username_key="u",
            password_hash="x",
            disabled=user_disabled,
            created_at=now,
            password_changed_at=now,
        )
        db.add(user)
        apps = []
        for a in range(3):
            app, _ = directory.create_application(db, now, f"App{a}", redirect_uris=[])
            app.enabled = a not in apps_disabled
            apps.append(
                (app, [directory.create_permission(db, app, f"p{p}", "") for p in range(4)])
            )
        groups = [directory.create_group(db, f"G{g}") for g in range(2)]
        db.flush()
        for a, p in direct:
            directory.grant(db, apps[a][1][p], user=user)
        for g, (a, p) in group_grants:
            directory.grant(db, apps[a][1][p], group=groups[g])
        for g in memberships:
            db.add(GroupMember(group_id=groups[g].id, user_id=user.id))
        db.flush()
        shown = {a.application_id: a for a in listings.user_permissions(db, user.id)}
        for app, perms in apps:
            counted = sorted(
                p.name
                for p in (shown[app.id].permissions if app.id in shown else [])
                if p.effective
            )
            assert counted == permissions.effective(db, user.id, app.id)
            for perm in perms:
                assert (perm.name in counted) == permissions.granted(db, user.id, app.id, perm.name)
        db.rollback()


# -- the dead end ---------------------------------------------------------------------------


def test_an_administrator_owing_a_factor_they_lack_is_told_to_sign_in_again(
    factory: Any,
) -> None:
    h = factory("sqlite", admin_mfa=True, key_encryption_key=KEK)
    assert h.register("root").status_code == 200
    assert h.login("root").status_code == 200  # no right yet: a password was enough
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, user=directory.get_user(db, "root"))
    answer = h.client.get("/admin/users?q=x")
    assert answer.status_code == 403
    text = text_of(answer)
    assert "Set up a second factor first" in text and 'href="/logout"' in text
    again = re.search(r'<a href="([^"]+)">Sign in again</a>', text)
    assert again is not None
    assert again.group(1).replace("&amp;", "&") == "/login?next=%2Fadmin%2Fusers%3Fq%3Dx"
    # Following it: the password, then the enrolment, then the console.
    login = h.client.get(again.group(1).replace("&amp;", "&"))
    signed = h.client.post(
        "/login",
        data={
            "csrf": form_of(login)["csrf"],
            "username": "root",
            "password": STRONG,
            "next": "/admin/users?q=x",
        },
    )
    assert signed.status_code == 302 and signed.headers["Location"].startswith("/login/enrol?")
    page = h.client.get(signed.headers["Location"])
    secret = SECRET.search(text_of(page))
    assert secret is not None, text_of(page)[:500]
    code = pyotp.TOTP(secret.group(1)).at(h.clock())
    done = h.client.post("/login/enrol", data={**form_fields(page, 'value="totp"'), "code": code})
    assert done.status_code == 200 and len(CODES.findall(text_of(done))) == 10
    onwards = h.client.post("/login/continue", data=form_fields(done))
    assert onwards.headers["Location"] == "/admin/users?q=x"
    assert h.client.get("/admin/users?q=x").status_code == 200
    assert status(h.client)["Data"]["Amr"] == ["pwd", "otp", "mfa"]


# -- hostile input ---------------------------------------------------------------------------

TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\u202e\u200b",
            "Ünïcödé 😀",
            "' OR 1=1--",
            "<script>alert(1)</script>",
            "x" * 5000,
            "9" * 300,
            "2147483648",
            "-1",
            "1",
            "alice",
            "Wiki",
            "alice@example.com",
        ]
    ),
    st.text(max_size=80),
)
ACTION = st.sampled_from(["end-session", "revoke-app", "update", "create", "", "x", "\x00"])


@pytest.fixture(params=BACKENDS)
def hostile_world(request: pytest.FixtureRequest, factory: Any) -> tuple[Harness, PassportClient]:
    h, _ = world_with_wiki(factory, request.param)
    root = h.administrator("root", "admin")
    return h, root


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    action=ACTION,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "session",
                "application",
                "email",
                "displayname",
                "username",
                "password",
                "address",
                "state",
            ]
        ),
        TEXT,
    ),
    anonymous=st.booleans(),
)
def test_hostile_input_to_the_new_forms_never_breaks_the_console(
    hostile_world: tuple[Harness, PassportClient],
    action: str,
    fields: dict[str, str],
    anonymous: bool,
) -> None:
    """Property: any value of the new fields and parameters, as an administrator (with a
    valid CSRF token) or anonymously, gets a page — a redirect to /login, or a refusal
    that wrote nothing — never a 5xx or a stack trace."""
    h, root = hostile_world
    client = h.new_client() if anonymous else root
    cookie = root.get_cookie("passport_csrf")
    if cookie is None:
        root.get("/admin/users")
        cookie = root.get_cookie("passport_csrf")
    assert cookie is not None
    path = "/admin/users" if action == "create" else "/admin/user"
    before = table_fingerprints(h)
    answer = client.post(path, data={**fields, "action": action, "csrf": cookie.value})
    listing = client.get("/admin/users", query_string={"state": fields.get("state", "")})
    for response in (answer, listing):
        assert response.status_code < 500
        text = text_of(response)
        assert "Traceback" not in text and "<script>alert" not in text
    if anonymous:
        assert answer.status_code in (302, 400, 403)  # to /login, or refused before
    if answer.status_code >= 400 or anonymous:
        assert unexpected_writes(h, before, table_fingerprints(h)) == {}


def test_the_users_page_has_each_form_once_and_a_plain_title(h: Harness) -> None:
    writer = h.administrator("root", "admin")
    text = writer.get("/admin/users").get_data(as_text=True)
    assert "<title>Users · Passport admin</title>" in text
    assert re.findall(r"<h1>[^<]*</h1>", text) == ["<h1>Users</h1>"]
    assert text.count('id="new-username"') == 1
