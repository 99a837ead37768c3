"""The escalation policy: its table of cases, and the rights it reads from the database."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest

from passport.errors import ClientError
from passport.errors import Forbidden
from passport.services import directory
from passport.services.policy import Actor
from passport.services.policy import ensure_may_act_on
from passport.services.policy import ensure_not_self
from passport.services.policy import ensure_right
from passport.services.policy import refusal
from passport.services.policy import rights_of_group
from passport.services.policy import rights_of_user
from passport.storage.models import Application
from passport.storage.models import User

from support import Harness

ADMIN = {"admin"}
DELEGATE = {"users:write", "groups:write", "apps:write"}

# (the actor's rights, the target's rights, Passport itself?, may act)
CASES = [
    (ADMIN, ADMIN, False, True),  # admin implies every right, over other admins too
    (ADMIN, set(), True, True),  # and over Passport itself
    (ADMIN | {"users:write"}, {"audit:read"}, False, True),
    (DELEGATE, set(), False, True),  # a plain user: any delegate may
    (DELEGATE, {"users:write"}, False, True),  # a peer holding no more than the actor
    (DELEGATE, DELEGATE, False, True),
    (DELEGATE, ADMIN, False, False),  # an administrator
    (DELEGATE, {"users:write", "admin"}, False, False),
    (DELEGATE, {"audit:read"}, False, False),  # one right the actor lacks is enough
    ({"users:write"}, {"groups:write"}, False, False),
    (DELEGATE, set(), True, False),  # Passport itself: admin only
    (DELEGATE | {"apps:read", "audit:read", "users:read"}, set(), True, False),
    (set(), set(), False, True),  # rights to the operation are checked apart (ensure_right)
    (set(), {"users:read"}, False, False),
]


@pytest.mark.parametrize(("actor", "target", "protected", "may"), CASES)
def test_the_policy_table(actor: set[str], target: set[str], protected: bool, may: bool) -> None:
    reason = refusal(frozenset(actor), frozenset(target), protected=protected)
    assert (reason is None) is may, reason
    if not may:
        assert reason and ("admin" in reason or any(r in reason for r in target))


def test_the_operator_holds_every_right() -> None:
    operator = Actor.operator("root")
    assert operator.user_id is None and operator.label == "cli:root"
    assert operator.holds("users:write") and operator.holds("anything")
    ensure_right(operator, "apps:write")
    ensure_not_self(operator, User(id=1, username="root"))
    delegate = Actor(7, "user:7", frozenset({"users:write"}))
    with pytest.raises(ClientError) as refused:
        ensure_right(delegate, "apps:write")
    assert isinstance(refused.value, Forbidden) and "apps:write" in refused.value.message
    with pytest.raises(ClientError):
        ensure_not_self(delegate, User(id=7, username="me"))


def test_rights_come_from_grants_and_groups_even_when_disabled(factory: object) -> None:
    h: Harness = factory("sqlite")  # type: ignore[operator]
    h.register("boss")
    h.register("helper")
    now = datetime.now(UTC)
    with h.app.services.db.session(write=True) as db, db.begin():
        boss = directory.get_user(db, "boss")
        helper = directory.get_user(db, "helper")
        passport = db.get(Application, 1)
        assert passport is not None
        wiki, _ = directory.create_application(db, now, "Wiki")
        edit = directory.create_permission(db, wiki, "edit")
        admins = directory.create_group(db, "Admins")
        admin = directory.find_permission(db, passport, "admin")
        users_write = directory.find_permission(db, passport, "users:write")
        assert admin is not None and users_write is not None
        directory.grant(db, admin, group=admins)
        directory.add_member(db, admins, boss)
        directory.grant(db, users_write, user=helper)
        directory.grant(db, edit, user=helper)  # not a Passport right: not counted
        boss.disabled = True  # a disabled administrator is still one
        db.flush()
        assert rights_of_user(db, boss.id) == {"admin"}
        assert rights_of_group(db, admins.id) == {"admin"}
        assert rights_of_user(db, helper.id) == {"users:write"}
        actor = Actor.administrator(db, helper)
        for target, source in ((boss, "username"), (admins, "group"), (passport, "application")):
            with pytest.raises(ClientError) as refused:
                ensure_may_act_on(db, actor, target, source)
            assert isinstance(refused.value, Forbidden) and refused.value.source == source
        ensure_may_act_on(db, actor, helper, "username")  # no more than their own rights
        ensure_may_act_on(db, actor, wiki, "application")
        ensure_may_act_on(db, actor, edit, "permission")
        with pytest.raises(ClientError):
            ensure_may_act_on(db, actor, admin, "permission")  # one of Passport's own
        operator = Actor.operator("root")
        for target in (boss, admins, passport, admin):
            ensure_may_act_on(db, operator, target, "x")
