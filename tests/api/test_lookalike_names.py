"""Group, application and permission names collide with their look-alikes (UTS #39
section 4 skeleton), as usernames do; invisible characters are refused (RFC 8265 §3.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import func
from sqlalchemy import select

from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import Permission

from support import Harness
from support import PassportClient

CYRILLIC_A = "\u0410"  # CYRILLIC CAPITAL LETTER A, drawn as A
CYRILLIC_SMALL_A = "\u0430"  # CYRILLIC SMALL LETTER A, drawn as a


def error(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))["ClientExceptions"][0]  # type: ignore[no-any-return]


def signed_in(h: Harness, username: str, *rights: str) -> PassportClient:
    """A client logged in as a new user holding the given Passport rights."""
    return h.administrator(username, *rights)


@pytest.fixture
def admin(harness: Harness) -> PassportClient:
    return signed_in(harness, "root", "admin")


def snapshot(h: Harness) -> tuple[int, ...]:
    with h.app.services.db.session() as db:
        return tuple(
            db.scalar(select(func.count()).select_from(model)) or 0
            for model in (Application, Group, Permission)
        )


def _taken(response: Any) -> None:
    assert response.status_code == 409, response.get_data(as_text=True)
    assert error(response)["Number"] == "5"
    assert error(response)["Source"] == "name"


def test_a_lookalike_group_name_is_taken(harness: Harness) -> None:
    delegate = signed_in(harness, "grouper", "groups:write")
    assert delegate.post("/Groups/create", data={"name": "Admins"}).status_code == 200
    before = snapshot(harness)
    for name in (f"{CYRILLIC_A}dmins", "Adrnins", "ADMINS"):
        _taken(delegate.post("/Groups/create", data={"name": name}))
    assert snapshot(harness) == before

    other = delegate.post("/Groups/create", data={"name": "Editors"})
    assert other.status_code == 200
    _taken(delegate.post("/Groups/update", data={"group": "Editors", "name": f"{CYRILLIC_A}dmins"}))
    # Renaming a group to another spelling of its own name is no collision.
    renamed = delegate.post("/Groups/update", data={"group": "Admins", "name": "ADMINS"})
    assert renamed.status_code == 200, renamed.get_data(as_text=True)
    assert (
        delegate.post("/Groups/update", data={"group": "admins", "name": "Admins"}).status_code
        == 200
    )


def test_a_lookalike_application_name_is_taken(harness: Harness) -> None:
    delegate = signed_in(harness, "appmaker", "apps:write", "apps:read")
    before = snapshot(harness)
    _taken(delegate.post("/Applications/create", data={"name": f"P{CYRILLIC_SMALL_A}ssport"}))
    assert snapshot(harness) == before

    assert delegate.post("/Applications/create", data={"name": "Wiki"}).status_code == 200
    assert delegate.post("/Applications/create", data={"name": "Blog"}).status_code == 200
    _taken(delegate.post("/Applications/create", data={"name": "W\u0456ki"}))  # Ukrainian i
    _taken(delegate.post("/Applications/create", data={"name": "W\u0406\u041aI"}))  # capitals
    _taken(
        delegate.post(
            "/Applications/update",
            data={"application": "Blog", "name": f"P{CYRILLIC_SMALL_A}ssport"},
        )
    )
    # Lookups by the registered names keep working.
    for name in ("Passport", "Wiki", "wiki", "Blog"):
        found = delegate.get("/Applications/get", query_string={"application": name})
        assert found.status_code == 200, name
    with harness.app.services.db.session() as db:
        names = sorted(db.scalars(select(Application.name)))
    assert names == ["Blog", "Passport", "Wiki"]


def test_a_lookalike_permission_name_is_taken_within_its_application(
    admin: PassportClient, harness: Harness
) -> None:
    for name in ("Wiki", "Blog"):
        assert admin.post("/Applications/create", data={"name": name}).status_code == 200
    added = admin.post("/Applications/addPermission", data={"application": "Wiki", "name": "edit"})
    assert added.status_code == 200
    _taken(
        admin.post(
            "/Applications/addPermission", data={"application": "Wiki", "name": "\u0435dit"}
        )  # CYRILLIC SMALL LETTER IE
    )
    # Another application may define the same name.
    other = admin.post("/Applications/addPermission", data={"application": "Blog", "name": "edit"})
    assert other.status_code == 200


@pytest.mark.parametrize("invisible", ["\u034f", "\u200b", "\u2060", "\u3164", "\u180e"])
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/Groups/create", {}),
        ("/Applications/create", {}),
        ("/Applications/addPermission", {"application": "Passport"}),
    ],
)
def test_invisible_characters_are_refused_in_names(
    admin: PassportClient, harness: Harness, invisible: str, path: str, params: dict[str, str]
) -> None:
    before = snapshot(harness)
    refused = admin.post(path, data={**params, "name": f"Admi{invisible}ns"})
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert error(refused)["Source"] == "name" and error(refused)["Number"] == "3"
    assert snapshot(harness) == before


def test_the_database_refuses_lookalikes_without_the_service(harness: Harness) -> None:
    """The rule is the unique index, not a check-then-insert: a row written directly
    with a look-alike name is refused too (its key comes from the column default)."""
    with harness.app.services.db.session(write=True) as db, db.begin():
        db.add(Group(name="Admins", name_key="admins"))
    for model, extra in ((Group, {}), (Application, {"created_at": harness.clock()})):
        with (
            pytest.raises(sqlalchemy.exc.IntegrityError),
            harness.app.services.db.session(write=True) as db,
            db.begin(),
        ):
            name = f"{CYRILLIC_A}dmins" if model is Group else f"P{CYRILLIC_SMALL_A}ssport"
            db.add(model(name=name, name_key=name.lower(), **extra))
    with (
        pytest.raises(sqlalchemy.exc.IntegrityError),
        harness.app.services.db.session(write=True) as db,
        db.begin(),
    ):
        db.add(Permission(application_id=1, name="\u0430dmin", name_key="\u0430dmin"))
