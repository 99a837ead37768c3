"""Permission resolution: the union of direct and group grants; disabled objects grant nothing."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from itertools import count

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from passport.services import directory
from passport.services import permissions
from passport.services.applications import find_by_name
from passport.storage.models import Application
from passport.storage.models import User

from support import Harness
from support import user_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_names = count()


def user(db: Session, disabled: bool = False) -> User:
    return user_row(db, disabled=disabled)


def app_with(db: Session, *perms: str, enabled: bool = True) -> Application:
    app, _ = directory.create_application(db, NOW, f"App{next(_names)}")
    app.enabled = enabled
    for name in perms:
        directory.create_permission(db, app, name)
    return app


def perm(db: Session, app: Application, name: str) -> object:
    found = directory.find_permission(db, app, name)
    assert found is not None
    return found


CASES = [
    # (direct grants, group grants, user disabled, app enabled, expected)
    ((), (), False, True, []),
    (("read",), (), False, True, ["read"]),
    ((), ("write",), False, True, ["write"]),
    (("read",), ("write",), False, True, ["read", "write"]),
    (("read",), ("read",), False, True, ["read"]),
    (("read",), ("write",), True, True, []),
    (("read",), ("write",), False, False, []),
]


@pytest.mark.parametrize(("direct", "via_group", "disabled", "enabled", "expected"), CASES)
def test_effective_permissions_table(
    harness: Harness,
    direct: tuple[str, ...],
    via_group: tuple[str, ...],
    disabled: bool,
    enabled: bool,
    expected: list[str],
) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        app = app_with(db, "read", "write", "admin", enabled=enabled)
        other = app_with(db, "read", "write")
        person = user(db, disabled=disabled)
        group = directory.create_group(db, f"G{next(_names)}")
        directory.add_member(db, group, person)
        for name in direct:
            directory.grant(db, perm(db, app, name), user=person)  # type: ignore[arg-type]
            directory.grant(db, perm(db, other, "write"), user=person)  # type: ignore[arg-type]
        for name in via_group:
            directory.grant(db, perm(db, app, name), group=group)  # type: ignore[arg-type]
        assert permissions.effective(db, person.id, app.id) == expected
        for name in ("read", "write"):
            assert permissions.granted(db, person.id, app.id, name.upper()) == (name in expected)
            # The one-statement form of Permission/check: the same answer, by name.
            by_name = permissions.granted_by_name(db, person.id, app.name.upper(), name)
            assert by_name == (name in expected)
            assert permissions.granted_by_name(db, None, app.name, name) is False
        assert not permissions.granted(db, person.id, app.id, "admin")
        assert permissions.granted_by_name(db, person.id, app.name, "admin") is False
        assert permissions.granted_by_name(db, person.id, "no such app", "read") is None


def test_passport_admin_implies_every_passport_right(harness: Harness) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        passport = find_by_name(db, "Passport")
        assert passport is not None
        person = user(db)
        directory.grant(db, perm(db, passport, "admin"), user=person)  # type: ignore[arg-type]
        assert permissions.granted(db, person.id, passport.id, "audit:read")
        assert permissions.granted_by_name(db, person.id, "passport", "audit:read") is True
        wiki = app_with(db, "admin-only")
        assert not permissions.granted(db, person.id, wiki.id, "admin-only")
        assert permissions.granted_by_name(db, person.id, wiki.name, "admin-only") is False


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    direct=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    groups=st.lists(st.sets(st.sampled_from(["a", "b", "c", "d"])), max_size=3),
    member_of=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_effective_is_the_union_of_direct_and_member_groups(
    harness: Harness, direct: set[str], groups: list[set[str]], member_of: list[bool]
) -> None:
    with harness.app.services.db.session(write=True) as db:
        with db.begin():
            app = app_with(db, "a", "b", "c", "d")
            person = user(db)
            expected = set(direct)
            for name in direct:
                directory.grant(db, perm(db, app, name), user=person)  # type: ignore[arg-type]
            for i, names in enumerate(groups):
                group = directory.create_group(db, f"G{next(_names)}")
                if member_of[i]:
                    directory.add_member(db, group, person)
                    expected |= names
                for name in names:
                    directory.grant(db, perm(db, app, name), group=group)  # type: ignore[arg-type]
            assert permissions.effective(db, person.id, app.id) == sorted(expected)
            for name in "abcd":
                assert permissions.granted_by_name(db, person.id, app.name, name) == (
                    name in expected
                )
            db.rollback()
