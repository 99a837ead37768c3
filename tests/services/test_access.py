"""``access.admission``, who may sign in to an application, on every database: each
policy, disabled users and applications, an unknown policy (nobody), and a Hypothesis
property against a plain reading of the same memberships and grants."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from itertools import count

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from passport.services import access
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import Group
from passport.storage.models import User

from support import Harness
from support import user_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_names = count()


def user(db: Session, disabled: bool = False) -> User:
    return user_row(db, prefix="acc", disabled=disabled)


def group(db: Session) -> Group:
    return directory.create_group(db, f"Team{next(_names)}")


def application(db: Session, policy: str, permission: str | None = None) -> Application:
    app, _ = directory.create_application(db, NOW, f"Site{next(_names)}")
    app.sign_in_policy = policy
    app.sign_in_permission = permission
    if permission:
        directory.create_permission(db, app, permission)
    db.flush()
    return app


def test_each_policy_admits_whom_it_names(harness: Harness) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        member, outsider, holder = user(db), user(db), user(db)
        staff, other = group(db), group(db)
        directory.add_member(db, staff, member)
        directory.add_member(db, other, outsider)
        anyone = application(db, access.ANYONE)
        by_group = application(db, access.GROUPS)
        db.add(ApplicationSignInGroup(application_id=by_group.id, group_id=staff.id))
        by_permission = application(db, access.PERMISSION, "enter")
        found = directory.find_permission(db, by_permission, "enter")
        assert found is not None
        directory.grant(db, found, user=holder)
        unknown = application(db, "someday")
        nameless = application(db, access.PERMISSION)
        db.flush()

        def admitted(app: Application, who: User) -> bool:
            return access.admission(db, app, who).allowed

        assert [admitted(anyone, u) for u in (member, outsider, holder)] == [True] * 3
        assert [admitted(by_group, u) for u in (member, outsider, holder)] == [
            True,
            False,
            False,
        ]
        assert [admitted(by_permission, u) for u in (member, outsider, holder)] == [
            False,
            False,
            True,
        ]
        assert not any(admitted(unknown, u) for u in (member, outsider, holder))
        assert not any(admitted(nameless, u) for u in (member, outsider, holder))
        refused = access.admission(db, by_group, outsider)
        assert refused.reason and "Team" not in refused.reason  # names nothing configured

        member.disabled = True
        anyone.enabled = False
        db.flush()
        assert not admitted(by_group, member)
        assert access.admission(db, anyone, holder) == access.UNAVAILABLE


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    policy=st.sampled_from([access.ANYONE, access.GROUPS, access.PERMISSION, "other"]),
    listed=st.sets(st.integers(0, 2)),
    member_of=st.sets(st.integers(0, 2)),
    granted_directly=st.booleans(),
    granted_to=st.sets(st.integers(0, 2)),
    disabled=st.booleans(),
    enabled=st.booleans(),
)
def test_admission_agrees_with_a_plain_reading(
    harness: Harness,
    policy: str,
    listed: set[int],
    member_of: set[int],
    granted_directly: bool,
    granted_to: set[int],
    disabled: bool,
    enabled: bool,
) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        # each example adds its own rows (fresh names); the tables empty after the test
        who = user(db, disabled=disabled)
        teams = [group(db) for _ in range(3)]
        for index in member_of:
            directory.add_member(db, teams[index], who)
        app = application(db, policy, "use" if policy == access.PERMISSION else None)
        app.enabled = enabled
        for index in listed:
            db.add(ApplicationSignInGroup(application_id=app.id, group_id=teams[index].id))
        if policy == access.PERMISSION:
            use = directory.find_permission(db, app, "use")
            assert use is not None
            if granted_directly:
                directory.grant(db, use, user=who)
            for index in granted_to:
                directory.grant(db, use, group=teams[index])
        db.flush()
        expected = (
            enabled
            and not disabled
            and (
                policy == access.ANYONE
                or (policy == access.GROUPS and bool(listed & member_of))
                or (
                    policy == access.PERMISSION
                    and (granted_directly or bool(granted_to & member_of))
                )
            )
        )
        assert access.admission(db, app, who).allowed == expected
