"""Setting who may sign in to an application: one service path
(``Administration.create_application``/``update_application``) behind the API
(``Applications/create|update|get``), the CLI (tests/test_parity.py) and the console
form; validation, audit in the same record, the escalation rule, fail closed when the
listed group or the permission goes, nothing changed on a refusal, and a Hypothesis
property of hostile values on the API and the console form."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import select

from oidc_support import form_of
from passport.services import access
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import User

from support import Harness
from support import PassportClient

BACKENDS = ("sqlite", "postgresql", "mariadb")


@pytest.fixture(params=BACKENDS)
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    harness: Harness = factory(request.param)
    return harness


def data(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def state(h: Harness, name: str = "Wiki") -> tuple[str, list[str], str | None]:
    with h.app.services.db.session() as db:
        app = db.scalars(select(Application).where(Application.name == name)).one()
        return app.sign_in_policy, app.sign_in_groups, app.sign_in_permission


def admitted(h: Harness, username: str, name: str = "Wiki") -> bool:
    with h.app.services.db.session() as db:
        app = db.scalars(select(Application).where(Application.name == name)).one()
        user = db.scalars(select(User).where(User.username == username)).one()
        return access.admission(db, app, user).allowed


def setup(h: Harness, admin: PassportClient) -> None:
    assert admin.post("/Applications/create", data={"name": "Wiki"}).status_code == 200
    assert admin.post("/Groups/create", data={"name": "Team Blue"}).status_code == 200
    assert h.register("carol").status_code == 200
    member = {"group": "Team Blue", "username": "carol"}
    assert admin.post("/Groups/addMember", data=member).status_code == 200


def test_the_api_sets_shows_and_audits_the_policy(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    setup(h, admin)
    changed = admin.post(
        "/Applications/update",
        data={"application": "Wiki", "signInPolicy": "groups", "signInGroups": "team blue"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    shown = data(admin.get("/Applications/get?application=Wiki"))["Data"]["Application"]
    assert shown["SignInPolicy"] == "groups" and shown["SignInGroups"] == ["Team Blue"]
    assert shown["SignInPermission"] is None
    assert admitted(h, "carol") and not admitted(h, "root")
    with h.app.services.db.session() as db:
        record = db.scalars(
            select(AuditEvent).where(AuditEvent.event == "app_update").order_by(AuditEvent.id)
        ).all()[-1]
    detail = json.loads(record.detail)
    assert detail["changed"] == ["signInPolicy", "signInGroups"]
    assert detail["signInPolicy"] == "groups" and detail["signInGroups"] == ["Team Blue"]
    # The permission policy, the permission created with the application.
    made = admin.post(
        "/Applications/create",
        data={"name": "Desk", "signInPolicy": "permission", "signInPermission": "enter"},
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    assert data(made)["Data"]["Application"]["SignInPermission"] == "enter"
    assert not admitted(h, "carol", "Desk")
    grant = {"application": "Desk", "permission": "enter", "group": "Team Blue"}
    assert admin.post("/Grants/grant", data=grant).status_code == 200
    assert admitted(h, "carol", "Desk")


@pytest.mark.parametrize(
    ("fields", "status", "source"),
    [
        ({"signInPolicy": "everyone"}, 400, "signInPolicy"),
        ({"signInPolicy": "groups"}, 400, "signInGroups"),  # no group listed
        ({"signInPolicy": "groups", "signInGroups": "Nobody Here"}, 404, "signInGroups"),
        ({"signInPolicy": "permission"}, 400, "signInPermission"),
        ({"signInPolicy": "permission", "signInPermission": "absent"}, 404, "signInPermission"),
        ({"signInGroups": ",".join(f"g{i}" for i in range(101))}, 400, "signInGroups"),
        ({"signInPolicy": "x" * 17}, 400, "signInPolicy"),
    ],
)
def test_bad_values_are_refused_with_their_source_and_change_nothing(
    h: Harness, fields: dict[str, str], status: int, source: str
) -> None:
    admin = h.administrator("root", "admin")
    setup(h, admin)
    before = state(h)
    refused = admin.post("/Applications/update", data={"application": "Wiki", **fields})
    assert refused.status_code == status, refused.get_data(as_text=True)
    assert source in refused.get_data(as_text=True)
    assert state(h) == before


def test_passports_own_application_keeps_anyone(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    setup(h, admin)
    refused = admin.post(
        "/Applications/update",
        data={"application": "1", "signInPolicy": "groups", "signInGroups": "Team Blue"},
    )
    assert refused.status_code == 403
    assert state(h, "Passport")[0] == access.ANYONE


def test_a_delegate_may_set_ordinary_applications_not_passports_own(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    setup(h, admin)
    # A group holding a Passport right may be listed: listing grants nothing.
    assert admin.post("/Groups/create", data={"name": "Admins"}).status_code == 200
    rights = {"application": "1", "permission": "admin", "group": "Admins"}
    assert admin.post("/Grants/grant", data=rights).status_code == 200
    delegate = h.administrator("dee", "apps:write", "apps:read")
    listed = delegate.post(
        "/Applications/update",
        data={"application": "Wiki", "signInPolicy": "groups", "signInGroups": "Admins"},
    )
    assert listed.status_code == 200, listed.get_data(as_text=True)
    refused = delegate.post(
        "/Applications/update", data={"application": "1", "signInPolicy": "groups"}
    )
    assert refused.status_code == 403
    assert state(h, "Passport") == (access.ANYONE, [], None)


def test_deleting_the_last_group_or_the_permission_fails_closed(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    setup(h, admin)
    update = {"application": "Wiki", "signInPolicy": "groups", "signInGroups": "Team Blue"}
    assert admin.post("/Applications/update", data=update).status_code == 200
    assert admin.post("/Groups/delete", data={"group": "Team Blue"}).status_code == 200
    assert state(h) == ("groups", [], None)
    assert not admitted(h, "carol") and not admitted(h, "root")
    defined = {"application": "Wiki", "name": "enter"}
    assert admin.post("/Applications/addPermission", data=defined).status_code == 200
    update = {"application": "Wiki", "signInPolicy": "permission", "signInPermission": "enter"}
    assert admin.post("/Applications/update", data=update).status_code == 200
    grant = {"application": "Wiki", "permission": "enter", "username": "carol"}
    assert admin.post("/Grants/grant", data=grant).status_code == 200
    assert admitted(h, "carol")
    gone = {"application": "Wiki", "permission": "enter"}
    assert admin.post("/Applications/deletePermission", data=gone).status_code == 200
    assert state(h) == ("permission", [], "enter")
    assert not admitted(h, "carol") and not admitted(h, "root")


def test_the_console_form_shows_and_changes_the_policy(factory: Any) -> None:
    h: Harness = factory("sqlite")
    admin = h.administrator("root", "admin")
    setup(h, admin)
    app_id = data(admin.get("/Applications/get?application=Wiki"))["Data"]["Application"]["ID"]
    page = admin.get(f"/admin/application?id={app_id}")
    html = page.get_data(as_text=True)
    assert "Who may sign in" in html and 'name="signinpolicy"' in html
    assert "anyone with an enabled account" in html
    form = form_of(page)
    form = {k: v for k, v in form.items() if k in ("csrf", "id")}
    saved = admin.post(
        "/admin/application",
        data={
            **form,
            "action": "update",
            "name": "Wiki",
            "signinpolicy": "groups",
            "signingroups": "Team Blue\r\n",
            "signinpermission": "",
        },
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)[:500]
    assert "members of Team Blue" in saved.get_data(as_text=True)
    assert state(h) == ("groups", ["Team Blue"], None)
    bad = admin.post(
        "/admin/application",
        data={**form, "action": "update", "signinpolicy": "<script>", "signingroups": ""},
    )
    assert bad.status_code == 400 and "<script>" not in bad.get_data(as_text=True)
    assert state(h) == ("groups", ["Team Blue"], None)


HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "anyone",
            "groups",
            "permission",
            "'; DROP TABLE applications;--",
            "\u202e",
            "x" * 5000,
            "\uff11",
            "%00",
            "Team Blue",
            "team blue\nNobody",
        ]
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(policy=HOSTILE, groups=HOSTILE, permission=HOSTILE)
def test_hostile_values_never_500_and_a_refusal_changes_nothing(
    factory: Any, policy: str, groups: str, permission: str
) -> None:
    h: Harness = factory("sqlite")
    admin = h.administrator("root", "admin")
    setup(h, admin)
    before = state(h)
    fields = {"signInPolicy": policy, "signInGroups": groups, "signInPermission": permission}
    answer = admin.post("/Applications/update", data={"application": "Wiki", **fields})
    assert answer.status_code in (200, 400, 403, 404, 409, 413, 414), answer.status_code
    if answer.status_code != 200:
        assert state(h) == before
    app_id = data(admin.get("/Applications/get?application=Wiki"))["Data"]["Application"]["ID"]
    page = admin.get(f"/admin/application?id={app_id}")
    csrf = form_of(page)["csrf"]
    before = state(h)
    posted = admin.post(
        "/admin/application",
        data={
            "csrf": csrf,
            "id": str(app_id),
            "action": "update",
            "signinpolicy": policy,
            "signingroups": groups,
            "signinpermission": permission,
        },
    )
    assert posted.status_code in (200, 400, 403, 404, 409, 413, 414), posted.status_code
    assert "Traceback" not in posted.get_data(as_text=True)
    if posted.status_code != 200:
        assert state(h) == before
    anonymous = h.new_client().post("/admin/application", data={"id": str(app_id)})
    assert anonymous.status_code in (302, 303, 403)
