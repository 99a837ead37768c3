"""No escalation through delegated rights: every path from issue 9, through the API.

A delegate holds ``users:write``, ``groups:write`` and ``apps:write`` but not
``admin``; each way up (reset an administrator's password and sign in as them,
join a group that holds ``admin``, edit the Passport application...) is refused
with 403 and changes nothing, while an administrator may do each of them.
"""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission

from support import STRONG
from support import Harness
from support import PassportClient

NEW_PASSWORD = "the attacker's chosen passphrase"
COMBOS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    backend, store = request.param
    harness: Harness = factory(backend, store)
    return harness


def body(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def grant(h: Harness, *, user: str | None = None, group: str | None = None, rights: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        for right in rights.split():
            permission = directory.find_permission(db, passport, right)
            assert permission is not None
            if user:
                directory.grant(db, permission, user=directory.get_user(db, user))
            else:
                directory.grant(db, permission, group=directory.get_group(db, group))


def signed_in(h: Harness, username: str) -> PassportClient:
    client = h.new_client()
    response = client.post("/Account/login", data={"username": username, "password": STRONG})
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


def scene(h: Harness) -> int:
    """root and boss are administrators (boss through the group Admins); helper is a
    delegate; peer holds users:write only.  Returns the id of Admins."""
    for name in ("root", "boss", "helper", "peer"):
        assert h.register(name).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        admins = directory.create_group(db, "Admins")
        directory.add_member(db, admins, directory.get_user(db, "boss"))
        wiki, _ = directory.create_application(db, datetime.now(UTC), "Wiki")
        directory.create_permission(db, wiki, "edit")
        passport = db.get(Application, 1)
        assert passport is not None
        directory.create_permission(db, passport, "reports")
        group_id = admins.id
    grant(h, user="root", rights="admin")
    grant(h, group="Admins", rights="admin")
    grant(h, user="helper", rights="users:write groups:write apps:write")
    grant(h, user="peer", rights="users:write")
    return group_id


def escalations(admins: int) -> list[tuple[str, dict[str, str]]]:
    """Each way up from the issue, in an order an administrator can run them all."""
    group = str(admins)
    return [
        ("/Users/resetPassword", {"username": "boss", "password": NEW_PASSWORD}),
        ("/Users/update", {"username": "boss", "email": "attacker@example.com"}),
        ("/Users/update", {"username": "boss", "displayName": "Boss"}),
        ("/Users/logoutAll", {"username": "boss"}),
        ("/Users/resetFactors", {"username": "boss"}),
        ("/Users/setDisabled", {"username": "boss", "disabled": "true"}),
        ("/Users/setDisabled", {"username": "boss", "disabled": "false"}),
        ("/Groups/addMember", {"group": group, "username": "helper"}),
        ("/Groups/update", {"group": group, "description": "mine now"}),
        ("/Groups/update", {"group": group, "name": "Renamed"}),
        ("/Groups/update", {"group": group, "requireMfa": "true"}),
        ("/Grants/grant", {"application": "Wiki", "permission": "edit", "username": "boss"}),
        ("/Grants/grant", {"application": "Wiki", "permission": "edit", "group": group}),
        ("/Grants/revoke", {"application": "Wiki", "permission": "edit", "group": group}),
        ("/Grants/grant", {"application": "Passport", "permission": "reports", "username": "peer"}),
        ("/Grants/revoke", {"application": "Passport", "permission": "admin", "username": "boss"}),
        ("/Applications/update", {"application": "Passport", "origins": "https://evil.example"}),
        (
            "/Applications/update",
            {"application": "1", "redirectUris": "https://evil.example/callback"},
        ),
        ("/Applications/update", {"application": "Passport", "description": "pwned"}),
        ("/Applications/update", {"application": "Passport", "mfaPolicy": "optional"}),
        ("/Applications/rotateSecret", {"application": "Passport"}),
        ("/Applications/setEnabled", {"application": "Passport", "enabled": "true"}),
        ("/Applications/addPermission", {"application": "Passport", "name": "backdoor"}),
        ("/Applications/deletePermission", {"application": "Passport", "permission": "reports"}),
        ("/Groups/removeMember", {"group": group, "username": "boss"}),
        ("/Users/delete", {"username": "boss"}),
        ("/Groups/delete", {"group": group}),
    ]


def state(h: Harness) -> tuple[Any, ...]:
    """Everything an escalation could change."""
    with h.app.services.db.session() as db:
        counts = tuple(
            db.scalar(select(func.count()).select_from(model))
            for model in (User, Group, GroupMember, GroupPermission, UserPermission, Permission)
        )
        passport = db.get(Application, 1)
        boss = directory.find_user(db, "boss")
        groups = tuple(db.execute(select(Group.name, Group.description, Group.require_mfa)).all())
        assert passport is not None and boss is not None
        return (
            counts,
            groups,
            (passport.name, passport.description, passport.enabled, passport.mfa_policy),
            (tuple(passport.allowed_origins), tuple(passport.redirect_uris)),
            (passport.client_id, passport.secret_hash),
            (boss.email, boss.display_name, boss.disabled, boss.password_hash),
        )


def test_a_delegate_cannot_climb_and_an_administrator_can(h: Harness) -> None:
    admins = scene(h)
    helper = signed_in(h, "helper")
    boss = signed_in(h, "boss")
    before = state(h)
    for path, params in escalations(admins):
        refused = helper.post(path, data=params)
        assert refused.status_code == 403, (path, params, refused.get_data(as_text=True))
        (problem,) = body(refused)["ClientExceptions"]
        assert problem["Number"] == "403", (path, problem)
        assert state(h) == before, (path, params)
    # Nothing reached boss: the session lives, the old password works, the new one does not.
    assert body(boss.get("/Account/status"))["LoggedIn"] is True
    assert h.login("boss", NEW_PASSWORD).status_code == 401
    assert h.login("boss").status_code == 200
    # Refusals are not audited as done.
    root = signed_in(h, "root")
    done = body(root.get("/Audit/list?limit=200"))["Data"]["Items"]
    assert not [e for e in done if e["ActorID"] is not None and e["Event"] != "login"]

    for path, params in escalations(admins):
        allowed = root.post(path, data=params)
        assert allowed.status_code == 200, (path, params, allowed.get_data(as_text=True))
    assert h.login("boss", NEW_PASSWORD).status_code == 401  # deleted


def test_delegates_still_manage_what_they_may(h: Harness) -> None:
    admins = scene(h)
    allowed = [
        ("/Users/resetPassword", {"username": "peer", "password": NEW_PASSWORD}),
        ("/Users/update", {"username": "peer", "displayName": "Peer"}),
        ("/Users/logoutAll", {"username": "helper"}),
    ]
    helper = signed_in(h, "helper")
    for path, params in allowed:
        response = helper.post(path, data=params)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
    h.register("newbie")
    helper = signed_in(h, "helper")
    for path, params in [
        ("/Groups/create", {"name": "Readers"}),
        ("/Groups/addMember", {"group": "Readers", "username": "newbie"}),
        ("/Grants/grant", {"application": "Wiki", "permission": "edit", "group": "Readers"}),
        ("/Applications/update", {"application": "Wiki", "origins": "https://wiki.example"}),
        ("/Users/setDisabled", {"username": "newbie", "disabled": "true"}),
    ]:
        response = helper.post(path, data=params)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
    # The group is theirs to fill as long as it holds nothing they lack; Admins is not.
    refused = helper.post("/Groups/addMember", data={"group": str(admins), "username": "newbie"})
    assert refused.status_code == 403
    # Delegates cannot disable or delete themselves either (no lock-out by mistake).
    assert helper.post("/Users/delete", data={"username": "helper"}).status_code == 403
