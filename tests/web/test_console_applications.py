"""The console's applications (issue 15): an application's settings, its permissions,
their grants and who holds each, its back-channel logout deliveries, a group's grants,
and a new-secret page that a reload does not rotate again.

Every action is one ``Administration`` operation, so each test checks the audit record
(the administrator as actor), that a reader's forged POST is refused and changes
nothing, and that the escalation rule holds; the who-holds-it listing is checked
against :func:`passport.services.permissions.granted` over generated grants.  On
SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy import select

from console_support import user_id
from oidc_support import form_of
from passport.services import clients
from passport.services import directory
from passport.services import listings
from passport.services import permissions
from passport.services.outbound import LOGOUT_MAX_ATTEMPTS
from passport.services.outbound import logout_backoff
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import LogoutNotification
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission
from site_support import table_fingerprints
from site_support import unexpected_writes

from support import Harness
from support import PassportClient

BACKENDS = ["sqlite", "postgresql"]
SECRET = re.compile(r'id="secret" value="([^"]+)"')


# -- helpers --------------------------------------------------------------------------------------


def app_id(h: Harness, name: str) -> int:
    with h.app.services.db.session() as db:
        return int(db.scalars(select(Application.id).where(Application.name == name)).one())


def group_id(h: Harness, name: str) -> int:
    with h.app.services.db.session() as db:
        return int(db.scalars(select(Group.id).where(Group.name == name)).one())


def register_app(client: PassportClient, name: str = "Notes") -> str:
    """Register a confidential application through the console; its secret."""
    listing = client.get("/admin/applications")
    made = client.post(
        "/admin/applications",
        data={
            **form_of(listing),
            "name": name,
            "redirecturis": "https://notes.example.com/callback",
        },
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    found = SECRET.search(made.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def app_page(client: PassportClient, h: Harness, app: str = "Notes", query: str = "") -> Any:
    return client.get(f"/admin/application?id={app_id(h, app)}{query}")


def csrf_of(client: PassportClient, page: Any) -> str:
    """This browser's CSRF token: from the page's forms, or (a reader's page has none)
    from its cookie, as a forged form would carry it."""
    cookie = client.get_cookie("passport_csrf")
    assert cookie is not None
    return form_of(page).get("csrf") or cookie.value


def post_app(client: PassportClient, h: Harness, app: str = "Notes", **fields: str) -> Any:
    """A POST to the application's page with this browser's CSRF token and ``fields``
    only (not the page's other hidden fields)."""
    page = app_page(client, h, app)
    return client.post(
        "/admin/application",
        data={"csrf": csrf_of(client, page), "id": str(app_id(h, app)), **fields},
    )


def post_group(client: PassportClient, h: Harness, group: str, **fields: str) -> Any:
    page = client.get(f"/admin/group?id={group_id(h, group)}")
    return client.post(
        "/admin/group",
        data={"csrf": csrf_of(client, page), "id": str(group_id(h, group)), **fields},
    )


def make_group(h: Harness, name: str, *members: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        group = directory.create_group(db, name)
        for member in members:
            user = directory.find_user(db, member)
            assert user is not None
            directory.add_member(db, group, user)


def audit(h: Harness, event: str) -> list[AuditEvent]:
    with h.app.services.db.session() as db:
        return list(
            db.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id))
        )


def text(answer: Any) -> str:
    return str(answer.get_data(as_text=True))


SETTINGS = {
    "action": "update",
    "name": "Notebook",
    "description": "Team notes\r\nsecond line",
    "redirecturis": "https://notes.example.com/cb\r\nhttps://notes.example.com/cb2",
    "postlogouturis": "https://notes.example.com/bye",
    "origins": "https://notes.example.com\nhttps://app.notes.example.com",
    "backchanneluri": "https://notes.example.com/backchannel",
    "scopes": "notes:read\nnotes:write",
    "tokenformat": "opaque",
    "mfapolicy": "mfa",
    "firstparty": "true",
    "par": "true",
    "devicegrant": "true",
    # refreshtokens unticked: absent, as a browser sends an unticked checkbox
}


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_settings_are_saved_by_one_update_and_audited(factory: Any, backend: str) -> None:
    h = factory(backend)
    operator = h.administrator("operator", "apps:read", "apps:write")
    register_app(operator)
    page = app_page(operator, h)
    assert "Save the settings" in text(page)
    saved = post_app(operator, h, **SETTINGS)
    assert saved.status_code == 200, text(saved)
    assert "Notebook saved." in text(saved)
    with h.app.services.db.session() as db:
        app = db.get(Application, app_id(h, "Notebook"))
        assert app is not None
        assert app.description == "Team notes\nsecond line"
        assert app.redirect_uris == [
            "https://notes.example.com/cb",
            "https://notes.example.com/cb2",
        ]
        assert app.post_logout_redirect_uris == ["https://notes.example.com/bye"]
        assert app.allowed_origins == [
            "https://notes.example.com",
            "https://app.notes.example.com",
        ]
        assert app.backchannel_logout_uri == "https://notes.example.com/backchannel"
        assert app.scopes == ["notes:read", "notes:write"]
        assert (app.access_token_format, app.mfa_policy) == ("opaque", "mfa")
        assert app.first_party and app.require_pushed_authorization_requests
        assert app.device_grant and not app.refresh_tokens
    [record] = audit(h, "app_update")
    assert record.actor_id == user_id(h, "operator") and record.application == "Notebook"
    # The page shows the lists one a line, ready to be posted again unchanged.
    page = app_page(operator, h, "Notebook")
    assert "https://notes.example.com/cb\nhttps://notes.example.com/cb2</textarea>" in text(page)


def test_a_bad_setting_is_refused_and_changes_nothing(h: Harness) -> None:
    operator = h.administrator("operator", "apps:read", "apps:write")
    register_app(operator)
    before = table_fingerprints(h)
    for field, value in [
        ("backchanneluri", "http://127.0.0.1/logout"),
        ("tokenformat", "paseto"),
        ("mfapolicy", "sometimes"),
        ("redirecturis", "javascript:alert(1)"),
        ("name", ""),
        ("description", "x" * 2001),
    ]:
        refused = post_app(operator, h, **{**SETTINGS, field: value})
        assert 400 <= refused.status_code < 500, (field, refused.status_code)
        assert "Traceback" not in text(refused)
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}


# -- permissions and grants -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_permissions_are_defined_granted_revoked_and_deleted_through_the_operations(
    factory: Any, backend: str
) -> None:
    h = factory(backend, throttle_registration_limit=100)
    for name in ("alice", "bob", "carol"):
        assert h.register(name).status_code == 200
    make_group(h, "Editors", "bob", "carol")
    operator = h.administrator("operator", "apps:read", "apps:write")
    me = user_id(h, "operator")
    register_app(operator)
    defined = post_app(operator, h, action="addpermission", name="edit", description="Edits")
    assert "Permission edit defined." in text(defined), text(defined)
    granted = post_app(operator, h, action="grant", permission="edit", kind="user", holder="alice")
    assert "edit granted to alice." in text(granted), text(granted)
    to_group = post_app(
        operator, h, action="grant", permission="edit", kind="group", holder="editors"
    )
    assert "edit granted to group Editors." in text(to_group), text(to_group)
    # carol holds it both ways.
    post_app(operator, h, action="grant", permission="edit", kind="user", holder="carol")
    page = text(app_page(operator, h))
    assert f'<a href="/admin/group?id={group_id(h, "Editors")}">Editors</a> (2 members)' in page
    holders = text(app_page(operator, h, query="&holders=edit"))
    assert "3 enabled users hold it now." in holders
    rows = re.findall(
        r'<tr><td><a href="/admin/user\?id=\d+">(\w+)</a></td>\s*<td>(.*?)</td>', holders
    )
    through = {name: re.sub(r"<[^>]+>", "", path) for name, path in rows}
    assert through == {
        "alice": "direct",
        "bob": "via group Editors",
        "carol": "direct; via group Editors",
    }
    revoked = post_app(
        operator, h, action="revoke", permission="edit", user=str(user_id(h, "alice"))
    )
    assert "edit revoked." in text(revoked)
    wrong = post_app(operator, h, action="deletepermission", permission="edit", confirm="Edit")
    assert wrong.status_code == 400 and "Type the permission" in text(wrong)
    gone = post_app(operator, h, action="deletepermission", permission="edit", confirm="edit")
    assert "Permission edit and every grant of it were deleted." in text(gone)
    with h.app.services.db.session() as db:
        assert db.scalars(select(Permission).where(Permission.name == "edit")).first() is None
    for event in ("permission_create", "grant", "revoke", "permission_delete"):
        records = audit(h, event)
        assert records and all(r.actor_id == me for r in records), event
    assert [r.username for r in audit(h, "grant")] == ["alice", "", "carol"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_group_page_grants_and_revokes_through_the_same_operation(
    factory: Any, backend: str
) -> None:
    h = factory(backend)
    root = h.administrator("root", "admin")
    register_app(root)
    post_app(root, h, action="addpermission", name="read")
    make_group(h, "Readers")
    granted = post_group(root, h, "Readers", action="grant", application="notes", permission="READ")
    assert "Notes: read granted to Readers." in text(granted), text(granted)
    page = text(root.get(f"/admin/group?id={group_id(h, 'Readers')}"))
    assert "Permissions granted to the group (1)" in page and "Revoke read of Notes" in page
    revoked = post_group(
        root, h, "Readers", action="revoke", application=str(app_id(h, "Notes")), permission="read"
    )
    assert "Notes: read revoked from Readers." in text(revoked)
    assert [r.actor_id for r in audit(h, "grant") + audit(h, "revoke")] == [user_id(h, "root")] * 2
    unknown = post_group(root, h, "Readers", action="grant", application="Nope", permission="x")
    assert unknown.status_code == 404


# -- readers and escalation -----------------------------------------------------------------------


FORGED = [
    {**SETTINGS},
    {"action": "addpermission", "name": "sneaky"},
    {"action": "deletepermission", "permission": "edit", "confirm": "edit"},
    {"action": "grant", "permission": "edit", "kind": "user", "holder": "reader"},
    {"action": "revoke", "permission": "edit", "group": "Editors"},
    {"action": "rotate", "overlap": "0"},
    {"action": "disable"},
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reader_sees_no_write_control_and_a_forged_post_changes_nothing(
    factory: Any, backend: str
) -> None:
    h = factory(backend)
    root = h.administrator("root", "admin")
    register_app(root)
    post_app(root, h, action="addpermission", name="edit")
    make_group(h, "Editors")
    post_app(root, h, action="grant", permission="edit", kind="group", holder="Editors")
    reader = h.administrator("reader", "apps:read", "users:read")
    page = text(app_page(reader, h))
    assert "edit" in page and "Editors" in page  # the grants are readable
    for control in ("Save the settings", "Define a permission", "Grant a permission", "Revoke"):
        assert control not in page, control
    assert 'method="post"' not in page
    group_page = text(reader.get(f"/admin/group?id={group_id(h, 'Editors')}"))
    assert "Revoke edit" not in group_page and "Grant the group" not in group_page
    before = table_fingerprints(h)
    stamp = form_of(app_page(root, h))["stamp"]
    for fields in FORGED:
        forged = post_app(reader, h, **{**fields, "stamp": stamp})
        assert forged.status_code == 403, (fields, forged.status_code)
    forged = post_group(
        reader, h, "Editors", action="revoke", application="Notes", permission="edit"
    )
    assert forged.status_code == 403
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_delegated_apps_writer_cannot_escalate(factory: Any, backend: str) -> None:
    h = factory(backend, throttle_registration_limit=100)
    root = h.administrator("root", "admin")
    h.administrator("helpdesk", "users:write")
    register_app(root)
    post_app(root, h, action="addpermission", name="edit")
    make_group(h, "Staff")
    delegate = h.administrator("delegate", "apps:read", "apps:write", "users:read")
    before = table_fingerprints(h)
    # Passport's admin right, to a group (the group page) ...
    to_group = post_group(
        delegate, h, "Staff", action="grant", application="Passport", permission="admin"
    )
    assert to_group.status_code == 403 and "only an administrator" in text(to_group)
    # ... or to themselves, by a forged POST on Passport's page: refused before anything.
    cookie = delegate.get_cookie("passport_csrf")
    assert cookie is not None
    on_passport = delegate.post(
        "/admin/application",
        data={
            "csrf": cookie.value,
            "id": "1",
            "action": "grant",
            "permission": "admin",
            "kind": "user",
            "holder": "delegate",
        },
    )
    assert on_passport.status_code == 403
    # Acting on a user holding a right they lack (users:write): no grant, no revoke.
    refused = post_app(
        delegate, h, action="grant", permission="edit", kind="user", holder="helpdesk"
    )
    assert refused.status_code == 403 and "users:write" in text(refused)
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}
    post_app(root, h, action="grant", permission="edit", kind="user", holder="helpdesk")
    before = table_fingerprints(h)
    revoke = post_app(
        delegate, h, action="revoke", permission="edit", user=str(user_id(h, "helpdesk"))
    )
    assert revoke.status_code == 403
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}
    # A user without Passport rights is fine.
    assert h.register("dave").status_code == 200
    ok = post_app(delegate, h, action="grant", permission="edit", kind="user", holder="dave")
    assert "edit granted to dave." in text(ok)
    assert audit(h, "grant")[-1].actor_id == user_id(h, "delegate")


# -- the new secret ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_reloading_the_new_secret_page_does_not_rotate_again(factory: Any, backend: str) -> None:
    h = factory(backend)
    operator = h.administrator("operator", "apps:read", "apps:write")
    first = register_app(operator)
    page = app_page(operator, h)
    form = {**form_of(page), "action": "rotate", "overlap": "0"}
    assert form["stamp"] and first not in text(page)
    rotated = operator.post("/admin/application", data=form)
    fresh = SECRET.search(text(rotated))
    assert rotated.status_code == 200 and fresh is not None
    reloaded = operator.post("/admin/application", data=form)  # the browser's reload
    assert reloaded.status_code == 409
    assert "already renewed" in text(reloaded) and SECRET.search(text(reloaded)) is None
    with h.app.services.db.session() as db:
        app = db.get(Application, app_id(h, "Notes"))
        assert app is not None and app.secret_hash == clients.hash_secret(fresh.group(1))
        assert form["stamp"] != app.secret_hash and form["stamp"] not in (app.secret_hash or "")
    assert len(audit(h, "app_rotate_secret")) == 1
    without = operator.post("/admin/application", data={**form, "stamp": ""})
    assert without.status_code == 409  # the console always says which secret it saw
    again = operator.post(
        "/admin/application", data={**form_of(app_page(operator, h)), "action": "rotate"}
    )
    assert again.status_code == 200 and SECRET.search(text(again)) is not None


def test_the_operation_without_a_stamp_rotates_as_the_api_always_did(h: Harness) -> None:
    from passport.services.accounts import Caller
    from passport.services.administration import Administration
    from passport.services.policy import Actor

    operator = h.administrator("operator", "apps:write", "apps:read")
    register_app(operator)
    from passport.errors import Conflict

    with h.app.services.db.session(write=True) as db, db.begin():
        accounts = h.app.services.accounts(
            db, audit=lambda record, durable=False: None, after=lambda action: None
        )
        caller = Caller(ip="192.0.2.1", user_agent="test", now=h.clock())
        admin = Administration(
            accounts, Actor.operator("test"), caller, origins_changed=lambda: None
        )
        _app, one = admin.rotate_secret("Notes", 0)
        _app, two = admin.rotate_secret("Notes", 0)
        assert one != two
        with pytest.raises(Conflict, match="already renewed"):
            admin.rotate_secret("Notes", 0, expected="0123456789abcdef")


# -- who holds it: the listing agrees with permissions.py ----------------------------------------

USERS = ("user0", "user1", "user2", "user3")
GROUPS = ("group0", "group1", "group2")
# (application, permission): the Wiki's own, and Passport's (where admin implies the rest).
PERMISSIONS = (
    ("Wiki", "edit"),
    ("Wiki", "view"),
    ("Passport", "users:read"),
    ("Passport", "admin"),
)

grant_sets = st.fixed_dictionaries(
    {
        "disabled": st.sets(st.sampled_from(USERS)),
        "members": st.sets(st.tuples(st.sampled_from(GROUPS), st.sampled_from(USERS))),
        "direct": st.sets(st.tuples(st.sampled_from(USERS), st.sampled_from(PERMISSIONS))),
        "to_groups": st.sets(st.tuples(st.sampled_from(GROUPS), st.sampled_from(PERMISSIONS))),
        "wiki_enabled": st.booleans(),
    }
)


@pytest.mark.parametrize(("backend", "examples"), [("sqlite", 60), ("postgresql", 20)])
def test_who_holds_it_agrees_with_the_permission_check(
    factory: Any, backend: str, examples: int
) -> None:
    h = factory(backend, throttle_registration_limit=100)
    for name in USERS:
        assert h.register(name).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = Application(name="Wiki", name_key="wiki", created_at=h.clock(), confidential=False)
        db.add(wiki)
        db.flush()
        for name in ("edit", "view"):
            directory.create_permission(db, wiki, name)
        for name in GROUPS:
            directory.create_group(db, name)

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(grant_sets)
    def agree(drawn: dict[str, Any]) -> None:
        with h.app.services.db.session(write=True) as db, db.begin():
            users = {
                u.username: u for u in db.scalars(select(User).where(User.username.in_(USERS)))
            }
            groups = {g.name: g for g in db.scalars(select(Group).where(Group.name.in_(GROUPS)))}
            perms = {
                (app.name, p.name): p
                for p, app in db.execute(
                    select(Permission, Application).join(
                        Application, Application.id == Permission.application_id
                    )
                ).all()
            }
            ids = [u.id for u in users.values()]
            db.execute(delete(UserPermission).where(UserPermission.user_id.in_(ids)))
            db.execute(delete(GroupMember).where(GroupMember.user_id.in_(ids)))
            db.execute(
                delete(GroupPermission).where(
                    GroupPermission.group_id.in_([g.id for g in groups.values()])
                )
            )
            for name, user in users.items():
                user.disabled = name in drawn["disabled"]
            for group, user in drawn["members"]:
                db.add(GroupMember(group_id=groups[group].id, user_id=users[user].id))
            for user, key in drawn["direct"]:
                db.add(UserPermission(user_id=users[user].id, permission_id=perms[key].id))
            for group, key in drawn["to_groups"]:
                db.add(GroupPermission(group_id=groups[group].id, permission_id=perms[key].id))
            wiki_app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
            wiki_app.enabled = drawn["wiki_enabled"]
        with h.app.services.db.session() as db:
            users = {
                u.username: u for u in db.scalars(select(User).where(User.username.in_(USERS)))
            }
            for app_name, perm_name in PERMISSIONS:
                app = db.scalars(select(Application).where(Application.name == app_name)).one()
                permission = directory.find_permission(db, app, perm_name)
                assert permission is not None
                listed = listings.holders_of(db, permission, 0, 200)
                shown = {holder.username: holder for holder in listed.items}
                expected = {
                    name
                    for name, user in users.items()
                    if permissions.granted(db, user.id, app.id, perm_name)
                }
                assert set(shown) == expected, (app_name, perm_name, drawn)
                assert listed.total == len(expected) and listed.more == 0
                # Each path is a grant as drawn: directly, or a membership and a group grant.
                implied = {perm_name, "admin"} if app_name == "Passport" else {perm_name}
                for name, holder in shown.items():
                    direct = {p for u, (a, p) in drawn["direct"] if u == name and a == app_name}
                    via = {
                        (g, p)
                        for g, (a, p) in drawn["to_groups"]
                        if a == app_name and (g, name) in drawn["members"]
                    }
                    want = {(None, p) for p in direct & implied} | {
                        (g, p) for g, p in via if p in implied
                    }
                    assert {(p.group, p.permission) for p in holder.paths} == want

    agree()


def test_holders_are_paged_with_how_many_more(factory: Any) -> None:
    h = factory("sqlite", throttle_registration_limit=100)
    root = h.administrator("root", "admin")
    register_app(root)
    post_app(root, h, action="addpermission", name="edit")
    names = [f"user{i:02}" for i in range(55)]
    with h.app.services.db.session(write=True) as db, db.begin():
        group = directory.create_group(db, "Everyone")
        app = db.get(Application, app_id(h, "Notes"))
        assert app is not None
        permission = directory.find_permission(db, app, "edit")
        assert permission is not None
        directory.grant(db, permission, group=group)
        for name in names:
            user = User(
                username=name,
                username_key=name,
                username_skeleton=name,
                password_hash="x",
                created_at=h.clock(),
                password_changed_at=h.clock(),
            )
            db.add(user)
            db.flush()
            db.add(GroupMember(group_id=group.id, user_id=user.id))
    first = text(app_page(root, h, query="&holders=edit"))
    assert "55 enabled users hold it now." in first and "and 5 more" in first
    assert "user49" in first and "user50" not in first
    second = text(app_page(root, h, query="&holders=edit&offset=50"))
    assert "user50" in second and "user54" in second and "more" not in second.split("</table>")[-1]


# -- back-channel deliveries -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_back_channel_delivery_status_is_shown(factory: Any, backend: str) -> None:
    h = factory(backend)
    reader = h.administrator("reader", "apps:read")
    root = h.administrator("root", "admin")
    register_app(root)
    assert "Back-channel logout deliveries" not in text(app_page(reader, h))
    post_app(root, h, **SETTINGS)
    now = h.clock()
    failed_at = now - timedelta(minutes=3)
    with h.app.services.db.session(write=True) as db, db.begin():
        notebook = app_id(h, "Notebook")

        def note(**values: Any) -> LogoutNotification:
            base: dict[str, Any] = {
                "application_id": notebook,
                "logout_token": "t",
                "created_at": now - timedelta(hours=2),
                "next_attempt_at": now,
                "attempts": 0,
                "last_error": "",
            }
            return LogoutNotification(**{**base, **values})

        db.add_all(
            [
                note(),
                note(),
                note(
                    attempts=3, last_error="HTTP 503", next_attempt_at=failed_at + logout_backoff(3)
                ),
                note(
                    attempts=1,
                    last_error="ConnectTimeout",
                    next_attempt_at=now - timedelta(hours=1) + logout_backoff(1),
                ),
                note(
                    attempts=LOGOUT_MAX_ATTEMPTS,
                    last_error="ConnectionError",
                    next_attempt_at=now - timedelta(hours=1) + logout_backoff(LOGOUT_MAX_ATTEMPTS),
                ),
                note(attempts=1, delivered_at=now - timedelta(hours=1)),
                note(attempts=1, delivered_at=now - timedelta(days=3)),
            ]
        )
    with h.app.services.db.session() as db:
        status = listings.backchannel_status(db, notebook, now)
    assert (status.waiting, status.failing, status.given_up, status.delivered) == (2, 2, 1, 1)
    assert status.last_error == "HTTP 503"
    assert status.last_error_at is not None
    assert abs((status.last_error_at - failed_at).total_seconds()) < 1
    page = text(app_page(reader, h, "Notebook"))
    assert "Back-channel logout deliveries" in page
    assert "<dt>Given up</dt><dd>1</dd>" in page and "HTTP 503 at " in page


# -- hostile input --------------------------------------------------------------------------------

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "x" * 5000,
            "' OR 1=1--",
            "<script>alert(1)</script>",
            "\u202eevil",
            "\x00",
            "9" * 40,
            "2147483648",
            "-1",
            "1",
            "Passport",
            "admin",
            "javascript:alert(1)",
            "https://127.0.0.1/x",
            "\U0001f600",
            "edit",
            "Editors",
            "user",
            "group",
        ]
    ),
)
ACTIONS = ["update", "addpermission", "deletepermission", "grant", "revoke", "rotate", "nope"]
FIELDS = [
    "name",
    "description",
    "origins",
    "redirecturis",
    "postlogouturis",
    "backchanneluri",
    "scopes",
    "tokenformat",
    "mfapolicy",
    "firstparty",
    "refreshtokens",
    "par",
    "devicegrant",
    "permission",
    "confirm",
    "kind",
    "holder",
    "user",
    "group",
    "application",
    "overlap",
    "stamp",
    "holders",
    "offset",
]


@pytest.mark.parametrize(("backend", "examples"), [("sqlite", 80), ("postgresql", 25)])
def test_hostile_forms_get_an_answer_never_a_500_and_a_refusal_writes_nothing(
    factory: Any, backend: str, examples: int
) -> None:
    h = factory(backend)
    root = h.administrator("root", "admin")
    register_app(root)
    post_app(root, h, action="addpermission", name="edit")
    make_group(h, "Editors")
    csrf = form_of(app_page(root, h))["csrf"]
    anonymous = h.new_client()
    app_id_of_notes, group_id_of_editors = app_id(h, "Notes"), group_id(h, "Editors")

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        page=st.sampled_from(["application", "group"]),
        action=st.sampled_from([*ACTIONS, "grant", "revoke"]),
        fields=st.dictionaries(st.sampled_from(FIELDS), HOSTILE, max_size=6),
        target=st.one_of(st.none(), HOSTILE),
    )
    def hostile(page: str, action: str, fields: dict[str, str], target: str | None) -> None:
        ref = str(app_id_of_notes if page == "application" else group_id_of_editors)
        form = {"csrf": csrf, "id": ref if target is None else target, "action": action, **fields}
        before = table_fingerprints(h)
        answer = root.post(f"/admin/{page}", data=form)
        body = text(answer)
        assert answer.status_code < 500, (answer.status_code, form)
        assert "Traceback" not in body and "<script>alert" not in body
        if answer.status_code >= 400:
            assert unexpected_writes(h, before, table_fingerprints(h)) == {}, form
        shown = root.get(
            f"/admin/{page}", query_string={k: v for k, v in form.items() if k != "csrf"}
        )
        assert shown.status_code < 500 and "Traceback" not in text(shown)
        assert anonymous.get(f"/admin/{page}", query_string={"id": ref}).status_code == 302
        with h.app.services.db.session(write=True) as db, db.begin():
            # A rename may have taken effect: the next example finds them by these names.
            app = db.get(Application, app_id_of_notes)
            group = db.get(Group, group_id_of_editors)
            assert app is not None and group is not None
            if app.name != "Notes":
                directory.rename_application(db, app, "Notes")
            if group.name != "Editors":
                directory.rename_group(db, group, "Editors")

    hostile()


def test_an_anonymous_client_is_sent_to_sign_in_and_posts_nothing(h: Harness) -> None:
    root = h.administrator("root", "admin")
    register_app(root)
    anonymous = h.new_client()
    answer = anonymous.get(f"/admin/application?id={app_id(h, 'Notes')}&holders=edit")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login?next=")
    before = table_fingerprints(h)
    posted = anonymous.post(
        "/admin/application",
        data={"id": str(app_id(h, "Notes")), "action": "addpermission", "name": "x"},
    )
    assert posted.status_code in (302, 403)
    assert unexpected_writes(h, before, table_fingerprints(h)) == {}
