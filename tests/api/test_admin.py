"""The administration API, on every database: rights, success, bad input, 404 and 409."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from passport.api import API
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import GroupMember
from passport.storage.models import UserPermission

from support import ORIGIN
from support import STRONG
from support import Harness
from support import PassportClient

ADMIN_CONTROLLERS = {"Applications", "Groups", "Users", "Grants", "Audit"}
ADMIN_ENDPOINTS = [e for e in API if e.controller in ADMIN_CONTROLLERS]


def data(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def error(response: Any) -> dict[str, Any]:
    return data(response)["ClientExceptions"][0]  # type: ignore[no-any-return]


def grant_passport(h: Harness, username: str, *rights: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, username)
        passport = db.get(Application, 1)
        assert user is not None and passport is not None
        for right in rights:
            permission = directory.find_permission(db, passport, right)
            assert permission is not None
            directory.grant(db, permission, user=user)


def signed_in(h: Harness, username: str, *rights: str) -> PassportClient:
    """A client logged in as a new user holding the given Passport rights."""
    h.register(username)
    grant_passport(h, username, *rights)
    client = h.new_client()
    response = client.post("/Account/login", data={"username": username, "password": STRONG})
    assert response.status_code == 200
    return client


@pytest.fixture
def admin(harness: Harness) -> PassportClient:
    return signed_in(harness, "root", "admin")


def call(client: PassportClient, method: str, path: str, **params: Any) -> Any:
    if method == "GET":
        return client.get(path, query_string=params)
    return client.post(path, data=params)


# -- rights --


@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS, ids=[e.path for e in ADMIN_ENDPOINTS])
def test_admin_methods_declare_a_built_in_right(endpoint: Any) -> None:
    """The right is declared on the endpoint and checked before it runs (not remembered
    inside each method), and it is one of Passport's own permissions."""
    assert endpoint.right in directory.BUILT_IN


def test_a_caller_without_the_right_learns_nothing_of_the_object(harness: Harness) -> None:
    """The declared right is checked before the parameters are looked at: an unknown
    user and a missing parameter both get 403, not 404 or 400."""
    nobody = signed_in(harness, "nobody")
    for params in ({"username": "ghost"}, {}):
        refused = nobody.get("/Users/get", query_string=params)
        assert refused.status_code == 403, params


@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS, ids=[e.path for e in ADMIN_ENDPOINTS])
def test_admin_methods_need_login_and_rights(harness: Harness, endpoint: Any) -> None:
    method = "GET" if "GET" in endpoint.http_methods else "POST"
    anonymous = call(harness.new_client(), method, endpoint.path)
    assert anonymous.status_code == 401
    nobody = signed_in(harness, "nobody")
    refused = call(nobody, method, endpoint.path)
    assert refused.status_code == 403
    assert error(refused)["Number"] == "403"


def test_rights_can_be_delegated(harness: Harness) -> None:
    reader = signed_in(harness, "reader", "users:read")
    assert reader.get("/Users/list").status_code == 200
    denied = reader.post("/Users/create", data={"username": "x1y2z3", "password": STRONG})
    assert denied.status_code == 403
    assert reader.get("/Applications/list").status_code == 403


# -- applications and their permissions --


def test_application_lifecycle(harness: Harness, admin: PassportClient) -> None:
    created = admin.post(
        "/Applications/create",
        data={
            "name": "Wiki",
            "origins": "https://wiki.example.com, http://localhost:3000",
            "redirectUris": "https://wiki.example.com/callback",
        },
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    body = data(created)["Data"]
    secret = body["ClientSecret"]
    assert len(secret) >= 43
    app = body["Application"]
    assert app["AllowedOrigins"] == ["https://wiki.example.com", "http://localhost:3000"]
    assert app["Confidential"] and app["Enabled"] and app["ClientId"]

    shown = admin.get("/Applications/get?application=wiki")
    assert secret not in shown.get_data(as_text=True)
    with harness.app.services.db.session() as db:
        stored = db.get(Application, app["ID"])
        assert stored is not None and secret not in (stored.secret_hash or "")

    for name in ("Wiki", "WIKI", "wiki"):
        taken = admin.post("/Applications/create", data={"name": name})
        assert taken.status_code == 409 and error(taken)["Number"] == "5"

    updated = admin.post(
        "/Applications/update", data={"application": "Wiki", "origins": "https://new.example.com"}
    )
    assert data(updated)["Data"]["Application"]["AllowedOrigins"] == ["https://new.example.com"]
    bad = admin.post(
        "/Applications/update", data={"application": "Wiki", "origins": "javascript:alert(1)"}
    )
    assert bad.status_code == 400 and error(bad)["Source"] == "origins"
    bad_uri = admin.post(
        "/Applications/update",
        data={"application": "Wiki", "redirectUris": "http://evil.example/cb"},
    )
    assert bad_uri.status_code == 400

    listed = data(admin.get("/Applications/list?q=wi&sort=-name&limit=1"))["Data"]
    assert listed["Total"] == 1 and listed["Items"][0]["Name"] == "Wiki"
    assert admin.get("/Applications/list?sort=secret").status_code == 400
    assert admin.get("/Applications/list?limit=0").status_code == 400
    assert admin.get("/Applications/get?application=Nope").status_code == 404

    assert (
        admin.post(
            "/Applications/addPermission", data={"application": "Wiki", "name": "edit"}
        ).status_code
        == 200
    )
    dup = admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "EDIT"})
    assert dup.status_code == 409
    names = [
        p["Name"]
        for p in data(admin.get("/Applications/permissions?application=Wiki"))["Data"]["Items"]
    ]
    assert names == ["edit"]

    disabled = admin.post(
        "/Applications/setEnabled", data={"application": "Wiki", "enabled": "false"}
    )
    assert data(disabled)["Data"]["Application"]["Enabled"] is False

    deleted = admin.post("/Applications/delete", data={"application": "Wiki"})
    assert deleted.status_code == 200
    assert admin.get("/Applications/get?application=Wiki").status_code == 404


def test_passport_and_its_rights_cannot_be_deleted(admin: PassportClient) -> None:
    assert admin.post("/Applications/delete", data={"application": "Passport"}).status_code == 403
    assert (
        admin.post(
            "/Applications/setEnabled", data={"application": "Passport", "enabled": "false"}
        ).status_code
        == 403
    )
    refused = admin.post(
        "/Applications/deletePermission", data={"application": "Passport", "permission": "admin"}
    )
    assert refused.status_code == 403


def test_deleting_an_application_removes_its_grants(
    harness: Harness, admin: PassportClient
) -> None:
    admin.post("/Applications/create", data={"name": "Wiki"})
    admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "edit"})
    harness.register("bob")
    admin.post(
        "/Grants/grant", data={"application": "Wiki", "permission": "edit", "username": "bob"}
    )
    with harness.app.services.db.session() as db:
        before = db.scalar(select(func.count()).select_from(UserPermission))
    admin.post("/Applications/delete", data={"application": "Wiki"})
    with harness.app.services.db.session() as db:
        assert db.scalar(select(func.count()).select_from(UserPermission)) == (before or 0) - 1


# -- groups, grants, effective permissions --


def test_groups_members_and_grants(harness: Harness, admin: PassportClient) -> None:
    admin.post("/Applications/create", data={"name": "Wiki", "origins": "https://wiki.example.com"})
    admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "edit"})
    admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "read"})
    assert admin.post("/Groups/create", data={"name": "Editors"}).status_code == 200
    assert admin.post("/Groups/create", data={"name": "editors"}).status_code == 409
    harness.register("bob")
    assert data(admin.post("/Groups/addMember", data={"group": "editors", "username": "BOB"}))[
        "Data"
    ] == {"Changed": True}
    assert data(admin.post("/Groups/addMember", data={"group": "editors", "username": "bob"}))[
        "Data"
    ] == {"Changed": False}
    admin.post(
        "/Grants/grant", data={"application": "Wiki", "permission": "edit", "group": "Editors"}
    )
    admin.post(
        "/Grants/grant", data={"application": "Wiki", "permission": "read", "username": "bob"}
    )
    both = admin.post(
        "/Grants/grant",
        data={"application": "Wiki", "permission": "read", "username": "bob", "group": "Editors"},
    )
    assert both.status_code == 400

    bob = harness.new_client()
    bob.post("/Account/login", data={"username": "bob", "password": STRONG})
    assert data(bob.get("/Permission/list?application=Wiki"))["Data"]["Permissions"] == [
        "edit",
        "read",
    ]
    assert data(bob.get("/Permission/check?application=wiki&permission=EDIT"))["Data"] == {
        "Granted": True
    }

    grants = data(admin.get("/Grants/list?application=Wiki"))["Data"]
    assert grants == {
        "Users": [{"Permission": "read", "Username": "bob"}],
        "Groups": [{"Permission": "edit", "Group": "Editors"}],
    }
    members = data(admin.get("/Groups/get?group=Editors"))["Data"]
    assert members["Members"] == ["bob"]

    admin.post("/Groups/removeMember", data={"group": "Editors", "username": "bob"})
    assert data(bob.get("/Permission/check?application=Wiki&permission=edit"))["Data"] == {
        "Granted": False
    }  # revocation takes effect on the next request
    admin.post("/Groups/delete", data={"group": "Editors"})
    with harness.app.services.db.session() as db:
        assert db.scalar(select(func.count()).select_from(GroupMember)) == 0


def test_passport_rights_can_only_be_granted_by_admins(harness: Harness) -> None:
    manager = signed_in(harness, "manager", "apps:write")
    harness.register("bob")
    refused = manager.post(
        "/Grants/grant", data={"application": "Passport", "permission": "admin", "username": "bob"}
    )
    assert refused.status_code == 403


# -- users --


def test_user_administration(harness: Harness, admin: PassportClient) -> None:
    created = admin.post(
        "/Users/create",
        data={"username": "carol", "password": STRONG, "email": "carol@example.com"},
    )
    assert created.status_code == 200
    assert (
        admin.post("/Users/create", data={"username": "CAROL", "password": STRONG}).status_code
        == 409
    )
    carol = harness.new_client()
    assert (
        carol.post("/Account/login", data={"username": "carol", "password": STRONG}).status_code
        == 200
    )

    listed = data(admin.get("/Users/list?q=car"))["Data"]
    assert [u["Username"] for u in listed["Items"]] == ["carol"]
    assert data(admin.get("/Users/list?disabled=true"))["Data"]["Total"] == 0

    harness.register("dave", email="dave@example.com")
    conflict = admin.post("/Users/update", data={"username": "carol", "email": "DAVE@example.com"})
    assert conflict.status_code == 409

    admin.post("/Users/setDisabled", data={"username": "carol", "disabled": "true"})
    assert data(carol.get("/Account/status"))["LoggedIn"] is False
    assert harness.login("carol").status_code == 401
    admin.post("/Users/setDisabled", data={"username": "carol", "disabled": "false"})

    carol.post("/Account/login", data={"username": "carol", "password": STRONG})
    reset = admin.post(
        "/Users/resetPassword", data={"username": "carol", "password": "an entirely new passphrase"}
    )
    assert reset.status_code == 200
    assert data(carol.get("/Account/status"))["LoggedIn"] is False
    assert harness.login("carol", "an entirely new passphrase").status_code == 200
    assert data(admin.post("/Users/logoutAll", data={"username": "carol"}))["Data"]["Ended"] >= 1

    assert admin.post("/Users/delete", data={"username": "root"}).status_code == 403
    assert admin.post("/Users/delete", data={"username": "carol"}).status_code == 200
    assert admin.get("/Users/get?username=carol").status_code == 404


def test_admin_actions_are_audited_with_the_actor(harness: Harness, admin: PassportClient) -> None:
    admin.post("/Groups/create", data={"name": "Ops"})
    admin.post("/Groups/create", data={"name": "ops"})  # refused: not audited as done
    with harness.app.services.db.session() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.event == "group_create")).all()
        assert len(events) == 1 and events[0].actor_id is not None
    audit = data(admin.get("/Audit/list?event=group_create"))["Data"]
    assert audit["Total"] == 1 and audit["Items"][0]["Detail"] == '{"group": "Ops"}'
    assert admin.get("/Audit/list?since=yesterday").status_code == 400
    assert data(admin.get("/Audit/list?since=2999-01-01T00:00:00Z"))["Data"]["Total"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC: no datetime holds it
        {"until": "0001-01-01T00:30:00+00:45"},
        {"until": "9999-12-31T23:59:59-01:00"},  # after year 9999 in UTC
        {"since": "2026-01-01T00:00:00"},  # no time zone
    ],
)
def test_audit_times_out_of_range_are_400(admin: PassportClient, params: dict[str, str]) -> None:
    response = admin.get("/Audit/list", query_string=params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error(response)["Source"] in params


BAD_URIS = [
    "https://[zz",
    "https://[zz/callback",
    "https://wiki.example:99999/callback",
    "https://wiki.example:x/callback",
    "https://wiki.example/\x01",
    "https://wiki.example/\u202e",
]


@pytest.mark.parametrize("uri", BAD_URIS)
@pytest.mark.parametrize(
    "param", ["redirectUris", "postLogoutRedirectUris", "origins", "backchannelLogoutUri"]
)
def test_unreadable_urls_are_400_and_change_nothing(
    harness: Harness, admin: PassportClient, param: str, uri: str
) -> None:
    before = snapshot(harness)
    created = admin.post("/Applications/create", data={"name": "Wiki", param: uri})
    assert created.status_code == 400, created.get_data(as_text=True)
    assert error(created)["Source"] == param and error(created)["Number"] == "3"
    assert snapshot(harness) == before
    admin.post("/Applications/create", data={"name": "Blog"})
    updated = admin.post("/Applications/update", data={"application": "Blog", param: uri})
    assert updated.status_code == 400, updated.get_data(as_text=True)


HOSTILE = ["", "x" * 5000, "' OR '1'='1", "<script>", "a\x00b", "😀", "-1", "9" * 30]


@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS, ids=[e.path for e in ADMIN_ENDPOINTS])
def test_hostile_input_to_admin_methods(
    harness: Harness, admin: PassportClient, endpoint: Any
) -> None:
    method = "GET" if "GET" in endpoint.http_methods else "POST"
    for param in endpoint.params:
        for value in HOSTILE:
            before = snapshot(harness)
            response = call(admin, method, endpoint.path, **{param.name: value})
            assert response.status_code < 500, (param.name, value)
            body = data(response)
            assert body["ServerExceptions"] == []
            if response.status_code >= 400:
                assert body["ClientExceptions"]
                assert snapshot(harness) == before, (param.name, value)
    assert data(admin.get("/Account/status"))["LoggedIn"] is True


def snapshot(h: Harness) -> tuple[int, ...]:
    from passport.storage.models import Group
    from passport.storage.models import Permission
    from passport.storage.models import User

    with h.app.services.db.session() as db:
        return tuple(
            db.scalar(select(func.count()).select_from(model)) or 0
            for model in (Application, Group, Permission, User, UserPermission, GroupMember)
        )


# -- applications calling Passport --


def test_the_readme_scenario_from_an_applications_origin(
    harness: Harness, admin: PassportClient
) -> None:
    """Admin registers an app with its origin, a group with a permission, a user in it;
    the app's page asks Permission/check with the user's cookie and gets true."""
    origin = "https://wiki.example.com"
    admin.post("/Applications/create", data={"name": "Wiki", "origins": origin})
    admin.post("/Groups/create", data={"name": "Editors"})
    admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "edit"})
    admin.post(
        "/Grants/grant", data={"application": "Wiki", "permission": "edit", "group": "Editors"}
    )
    admin.post("/Users/create", data={"username": "erin", "password": STRONG})
    admin.post("/Groups/addMember", data={"group": "Editors", "username": "erin"})

    browser = harness.new_client()
    browser.post("/Account/login", data={"username": "erin", "password": STRONG})
    cors = browser.get(
        "/Permission/check?application=Wiki&permission=edit", headers={"Origin": origin}
    )
    assert data(cors)["Data"] == {"Granted": True}
    assert cors.headers["Access-Control-Allow-Origin"] == origin
    jsonp = browser.get(
        "/Permission/check?application=Wiki&permission=edit&callback=cb",
        headers={"Referer": origin + "/page"},
    )
    assert '"Granted": true' in jsonp.get_data(as_text=True)
    foreign = browser.get(
        "/Permission/check?application=Wiki&permission=edit&callback=cb",
        headers={"Referer": "https://evil.example/"},
    )
    assert '"Granted": false' in foreign.get_data(as_text=True)


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_server_to_server_calls(harness: Harness, admin: PassportClient) -> None:
    wiki = data(admin.post("/Applications/create", data={"name": "Wiki"}))["Data"]
    blog = data(admin.post("/Applications/create", data={"name": "Blog"}))["Data"]
    for app in ("Wiki", "Blog"):
        admin.post("/Applications/addPermission", data={"application": app, "name": "edit"})
    harness.register("bob")
    admin.post(
        "/Grants/grant", data={"application": "Blog", "permission": "edit", "username": "bob"}
    )
    server = harness.new_client()
    wiki_auth = basic(wiki["Application"]["ClientId"], wiki["ClientSecret"])

    check = server.get("/Client/checkPermission?username=bob&permission=edit", headers=wiki_auth)
    assert data(check)["Data"] == {"Granted": False}  # Blog's grant is not Wiki's
    blog_auth = basic(blog["Application"]["ClientId"], blog["ClientSecret"])
    assert data(server.get("/Client/listPermissions?username=bob", headers=blog_auth))["Data"] == {
        "Permissions": ["edit"]
    }

    for headers in (
        {},
        basic(wiki["Application"]["ClientId"], "wrong"),
        {"Authorization": "Basic !!"},
    ):
        refused = server.get("/Client/listPermissions?username=bob", headers=headers)
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers

    login = harness.new_client()
    response = login.post("/Account/login", data={"username": "bob", "password": STRONG})
    token = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    valid = server.post("/Client/validateSession", data={"token": token}, headers=blog_auth)
    assert data(valid)["Data"]["Valid"] is True
    assert data(valid)["Data"]["User"]["Username"] == "bob"
    assert data(valid)["Data"]["Permissions"] == ["edit"]
    invalid = server.post("/Client/validateSession", data={"token": "nope"}, headers=blog_auth)
    assert data(invalid)["Data"]["Valid"] is False
    in_url = server.post(f"/Client/validateSession?token={token}", headers=blog_auth)
    assert in_url.status_code == 400


def test_secret_rotation_with_overlap(harness: Harness, admin: PassportClient) -> None:
    wiki = data(admin.post("/Applications/create", data={"name": "Wiki"}))["Data"]
    client_id, old = wiki["Application"]["ClientId"], wiki["ClientSecret"]
    harness.register("bob")
    path = "/Client/listPermissions?username=bob"
    rotated = data(
        admin.post(
            "/Applications/rotateSecret", data={"application": "Wiki", "overlapSeconds": "60"}
        )
    )["Data"]
    new = rotated["ClientSecret"]
    server = harness.new_client()
    assert server.get(path, headers=basic(client_id, old)).status_code == 200
    assert server.get(path, headers=basic(client_id, new)).status_code == 200
    harness.clock.advance(seconds=61)
    assert server.get(path, headers=basic(client_id, old)).status_code == 401
    assert server.get(path, headers=basic(client_id, new)).status_code == 200


def test_origin_header_and_admin_writes(admin: PassportClient) -> None:
    refused = admin.post(
        "/Groups/create", data={"name": "X"}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert ORIGIN == "http://localhost"


NOT_FOUND_CALLS = [
    ("GET", "/Applications/get", {"application": "Nope"}),
    ("POST", "/Applications/update", {"application": "Nope", "description": "x"}),
    ("POST", "/Applications/setEnabled", {"application": "Nope", "enabled": "true"}),
    ("POST", "/Applications/rotateSecret", {"application": "Nope"}),
    ("POST", "/Applications/delete", {"application": "Nope"}),
    ("POST", "/Applications/addPermission", {"application": "Nope", "name": "x"}),
    ("GET", "/Applications/permissions", {"application": "Nope"}),
    ("POST", "/Applications/deletePermission", {"application": "Passport", "permission": "nope"}),
    (
        "POST",
        "/Grants/grant",
        {"application": "Passport", "permission": "nope", "username": "root"},
    ),
    ("POST", "/Grants/revoke", {"application": "Passport", "permission": "admin", "group": "Nope"}),
    ("GET", "/Grants/list", {"application": "Nope"}),
    ("GET", "/Grants/holders", {"application": "Passport", "permission": "nope"}),
    ("GET", "/Groups/get", {"group": "Nope"}),
    ("POST", "/Groups/update", {"group": "Nope", "description": "x"}),
    ("POST", "/Groups/delete", {"group": "Nope"}),
    ("POST", "/Groups/addMember", {"group": "Nope", "username": "root"}),
    ("POST", "/Groups/removeMember", {"group": "Nope", "username": "root"}),
    ("GET", "/Users/get", {"username": "ghost"}),
    ("POST", "/Users/update", {"username": "ghost", "displayName": "x"}),
    ("POST", "/Users/setDisabled", {"username": "ghost", "disabled": "true"}),
    ("POST", "/Users/resetPassword", {"username": "ghost", "password": STRONG}),
    ("POST", "/Users/logoutAll", {"username": "ghost"}),
    ("GET", "/Users/sessions", {"username": "ghost"}),
    ("POST", "/Users/endSession", {"username": "ghost", "session": "x"}),
    ("POST", "/Users/endSession", {"username": "root", "session": "no-such-session"}),
    ("POST", "/Users/revokeApplication", {"username": "ghost", "application": "Wiki"}),
    ("POST", "/Users/revokeApplication", {"username": "root", "application": "Nope"}),
    ("GET", "/Users/factors", {"username": "ghost"}),
    ("POST", "/Users/resetFactors", {"username": "ghost"}),
    ("GET", "/Users/logoutNotifications", {"username": "ghost"}),
    ("POST", "/Users/delete", {"username": "ghost"}),
    ("POST", "/Users/invite", {"email": "new@example.com", "groups": "Nope"}),
    ("POST", "/Users/resendInvitation", {"invitation": "999999"}),
    ("POST", "/Users/revokeInvitation", {"invitation": "999999"}),
]


@pytest.mark.parametrize(
    ("method", "path", "params"), NOT_FOUND_CALLS, ids=[c[1] for c in NOT_FOUND_CALLS]
)
def test_unknown_objects_are_404(
    admin: PassportClient, method: str, path: str, params: dict[str, str]
) -> None:
    response = call(admin, method, path, **params)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert error(response)["Number"] == "2"


def test_every_admin_method_has_a_404_case() -> None:
    covered = {path for _, path, _ in NOT_FOUND_CALLS}
    lists_and_creates = {
        "/Applications/list",
        "/Applications/create",
        "/Groups/list",
        "/Groups/create",
        "/Users/list",
        "/Users/create",
        "/Users/invitations",
        "/Audit/list",
    }
    assert {e.path for e in ADMIN_ENDPOINTS} - lists_and_creates == covered


def test_refresh_tokens_setting(harness: Harness, admin: PassportClient) -> None:
    """``refreshTokens`` (OIDC Core §11 policy): on unless said otherwise, changed only when
    given, and a value that is not a boolean is refused with nothing written."""
    created = admin.post("/Applications/create", data={"name": "Notes"})
    assert data(created)["Data"]["Application"]["RefreshTokens"] is True
    off = admin.post("/Applications/create", data={"name": "Cal", "refreshTokens": "false"})
    assert data(off)["Data"]["Application"]["RefreshTokens"] is False
    updated = admin.post(
        "/Applications/update", data={"application": "Notes", "refreshTokens": "false"}
    )
    assert data(updated)["Data"]["Application"]["RefreshTokens"] is False
    kept = admin.post("/Applications/update", data={"application": "Notes", "description": "d"})
    assert data(kept)["Data"]["Application"]["RefreshTokens"] is False
    back_on = admin.post(
        "/Applications/update", data={"application": "Notes", "refreshTokens": "true"}
    )
    assert data(back_on)["Data"]["Application"]["RefreshTokens"] is True
    before = snapshot(harness)
    refused = admin.post(
        "/Applications/update", data={"application": "Notes", "refreshTokens": "x"}
    )
    assert refused.status_code == 400 and error(refused)["Source"] == "refreshTokens"
    assert snapshot(harness) == before


def test_device_grant_setting(harness: Harness, admin: PassportClient) -> None:
    """``deviceGrant`` (RFC 8628): off unless said otherwise, changed only when given,
    audited with what changed, and a value that is not a boolean is refused with nothing
    written."""
    created = admin.post("/Applications/create", data={"name": "Notes"})
    assert data(created)["Data"]["Application"]["DeviceGrant"] is False
    on = admin.post("/Applications/create", data={"name": "Tv", "deviceGrant": "true"})
    assert data(on)["Data"]["Application"]["DeviceGrant"] is True
    updated = admin.post("/Applications/update", data={"application": "Notes", "deviceGrant": "1"})
    assert data(updated)["Data"]["Application"]["DeviceGrant"] is True
    kept = admin.post("/Applications/update", data={"application": "Notes", "description": "d"})
    assert data(kept)["Data"]["Application"]["DeviceGrant"] is True
    off = admin.post("/Applications/update", data={"application": "Notes", "deviceGrant": "false"})
    assert data(off)["Data"]["Application"]["DeviceGrant"] is False
    with harness.app.services.db.session() as db:
        details = list(
            db.scalars(
                select(AuditEvent.detail)
                .where(AuditEvent.event == "app_update")
                .order_by(AuditEvent.id)
            )
        )
    assert json.loads(details[-1])["changed"] == ["deviceGrant"]
    before = snapshot(harness)
    for bad in ("x", "", "\u00fcber", "2"):
        refused = admin.post(
            "/Applications/update", data={"application": "Notes", "deviceGrant": bad}
        )
        assert refused.status_code == 400 and error(refused)["Source"] == "deviceGrant", bad
    assert snapshot(harness) == before


def test_registered_scopes(harness: Harness, admin: PassportClient) -> None:
    created = admin.post("/Applications/create", data={"name": "Batch", "scopes": "jobs:run, r"})
    assert data(created)["Data"]["Application"]["Scopes"] == ["jobs:run", "r"]
    updated = admin.post("/Applications/update", data={"application": "Batch", "scopes": "x y x"})
    assert data(updated)["Data"]["Application"]["Scopes"] == ["x", "y"]
    kept = admin.post("/Applications/update", data={"application": "Batch", "description": "d"})
    assert data(kept)["Data"]["Application"]["Scopes"] == ["x", "y"]
    for bad in ('say"hi', "back\\slash", "é", " ".join(f"scope{i:03}" for i in range(60))):
        before = snapshot(harness)
        refused = admin.post("/Applications/create", data={"name": "Other", "scopes": bad})
        assert refused.status_code == 400 and error(refused)["Source"] == "scopes", bad
        assert snapshot(harness) == before
        refused = admin.post("/Applications/update", data={"application": "Batch", "scopes": bad})
        assert refused.status_code == 400, bad
    emptied = admin.post("/Applications/update", data={"application": "Batch", "scopes": ""})
    assert data(emptied)["Data"]["Application"]["Scopes"] == []


# -- free text: no control, bidi or invisible characters (services/text.py) --

HOSTILE_DESCRIPTIONS = [
    "\x1b]0;PWNED\x07\x1b[2J Totally normal group",
    "Invoice \u202egpj.exe",
    "Ops \u2066team\u2069",
    "Ops\u200bteam",
    "Ops \ue000",
]
LABELS = {"description": "description", "displayName": "Display name", "email": "Email"}


def test_descriptions_with_control_bidi_or_invisible_characters_are_400_and_store_nothing(
    harness: Harness,
) -> None:
    delegate = signed_in(
        harness, "delegate", "groups:write", "apps:write", "users:write", "users:read", "apps:read"
    )
    for path, params in (
        ("/Groups/create", {"name": "Plain"}),
        ("/Applications/create", {"name": "Wiki"}),
        ("/Users/create", {"username": "plainuser", "password": STRONG}),
    ):
        assert delegate.post(path, data=params).status_code == 200, path
    added = delegate.post("/Applications/addPermission", data={"application": "Wiki", "name": "a"})
    assert added.status_code == 200
    calls: list[tuple[str, dict[str, str], str]] = []
    for text in HOSTILE_DESCRIPTIONS:
        calls += [
            ("/Groups/create", {"name": "Ops", "description": text}, "description"),
            ("/Applications/create", {"name": "Blog", "description": text}, "description"),
            (
                "/Applications/addPermission",
                {"application": "Wiki", "name": "edit", "description": text},
                "description",
            ),
            ("/Groups/update", {"group": "Plain", "description": text}, "description"),
            ("/Applications/update", {"application": "Wiki", "description": text}, "description"),
        ]
    for char in ("\u202e", "\u200b", "\x1b"):
        calls += [
            (
                "/Users/create",
                {"username": "mallory", "password": STRONG, "displayName": f"M{char}"},
                "displayName",
            ),
            (
                "/Users/create",
                {"username": "mallory", "password": STRONG, "email": f"m{char}@example.com"},
                "email",
            ),
            ("/Users/update", {"username": "plainuser", "displayName": f"P{char}"}, "displayName"),
            ("/Users/update", {"username": "plainuser", "email": f"p{char}@example.com"}, "email"),
        ]

    def stored() -> tuple[Any, ...]:
        shown = [
            data(delegate.get(path))["Data"]
            for path in (
                "/Groups/get?group=Plain",
                "/Groups/list",
                "/Applications/get?application=Wiki",
                "/Applications/list",
                "/Applications/permissions?application=Wiki",
                "/Users/get?username=plainuser",
            )
        ]
        assert all(shown)
        return snapshot(harness), *shown

    before = stored()
    for path, params, source in calls:
        response = delegate.post(path, data=params)
        assert response.status_code == 400, (path, params, response.get_data(as_text=True))
        refused = error(response)
        assert refused["Number"] == "3" and refused["Source"] == source, (path, refused)
        assert refused["Message"].startswith(f"{LABELS[source]} must not contain U+"), refused
        assert stored() == before, (path, params)

    text = "Équipe d'exploitation\n\t運用チーム 👩\u200d💻"
    kept = delegate.post("/Groups/create", data={"name": "Ops", "description": text})
    assert kept.status_code == 200, kept.get_data(as_text=True)
    assert data(delegate.get("/Groups/get?group=Ops"))["Data"]["Group"]["Description"] == text


@pytest.mark.parametrize("ref", ["2147483647", "2147483648", "9" * 18])
def test_a_number_past_any_row_id_is_not_found_on_every_database(
    harness: Harness, ref: str
) -> None:
    """A found-by-Hypothesis 500: PostgreSQL refuses a parameter past a 32-bit INTEGER,
    so such a number is no id (and, no group or application being all digits, no name)."""
    root = harness.administrator("root", "admin")
    for path, name in (
        ("/Groups/get", "group"),
        ("/Users/get", "username"),
        ("/Applications/get", "application"),
    ):
        answer = root.get(f"{path}?{name}={ref}")
        assert answer.status_code == 404, (path, answer.get_data(as_text=True))
