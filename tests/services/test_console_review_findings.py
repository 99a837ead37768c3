"""Regression tests for the outside review of the admin console (each fails on the code
before its fix):

1. the escalation rule raced: a delegate's action on a user, checked while the user held
   nothing, committed after an administrator made them one (PostgreSQL, MariaDB — SQLite
   runs its writers one at a time);
2. two posts of one new-secret form at once both rotated (each page showing a secret,
   one already dead);
3. a delegate who may not revoke an administrator's grant or membership could take it
   away by deleting the permission or the group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from passport.errors import ClientError
from passport.errors import Conflict
from passport.errors import Forbidden
from passport.services import clients
from passport.services import directory
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.policy import Actor
from passport.services.policy import rights_of_user
from passport.storage.models import Application
from passport.storage.models import User

from support import STRONG
from support import Harness

NEW_PASSWORD = "a password the delegate chose"
HOLD = 1.0  # seconds the first transaction stays open, uncommitted


@contextmanager
def administration(h: Harness, actor: Actor) -> Iterator[Administration]:
    """One operation's transaction, committed when the block ends."""
    with h.app.services.db.session(write=True) as db, db.begin():
        accounts = h.app.services.accounts(
            db, audit=lambda record, durable=False: None, after=lambda action: None
        )
        caller = Caller(ip="192.0.2.1", user_agent="test", now=h.clock())
        yield Administration(accounts, actor, caller, origins_changed=lambda: None)


def actor(h: Harness, username: str) -> Actor:
    with h.app.services.db.session() as db:
        user = directory.get_user(db, username)
        return Actor.administrator(db, user)


def user_named(h: Harness, username: str) -> User:
    with h.app.services.db.session() as db:
        found = directory.get_user(db, username)
        db.expunge(found)
        return found


def race(h: Harness, first: Callable[[Administration], Any], second: Callable[[], Any]) -> Any:
    """``first`` in a transaction held open for :data:`HOLD` seconds while ``second`` runs
    in another thread; what ``second`` returned or raised, and whether it finished
    before ``first`` committed."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = second()
        except ClientError as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    with administration(h, Actor.operator("root")) as admin:
        first(admin)
        admin.db.flush()
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(HOLD)
        committed = time.monotonic()
    worker.join(timeout=30)
    outcome["before_commit"] = outcome.get("at", committed) < committed
    return outcome


@pytest.fixture(params=["postgresql", "mariadb"])
def server_database(request: pytest.FixtureRequest, factory: Any) -> Harness:
    h: Harness = factory(request.param)
    return h


def test_a_delegates_action_waits_for_an_uncommitted_promotion_and_is_then_refused(
    server_database: Harness,
) -> None:
    h = server_database
    for name in ("helpdesk", "bob"):
        assert h.register(name).status_code == 200
    with administration(h, Actor.operator("root")) as admin:
        admin.create_group("Admins", "")
        admin.change_grant(True, "Passport", "admin", group="Admins")
        admin.create_group("Helpdesk", "")
        admin.change_grant(True, "Passport", "users:write", group="Helpdesk")
        admin.change_grant(True, "Passport", "users:read", group="Helpdesk")
        admin.change_membership(True, "Helpdesk", "helpdesk")
    delegate = actor(h, "helpdesk")

    def reset() -> Any:
        with administration(h, delegate) as admin:
            return admin.reset_password("bob", NEW_PASSWORD)

    outcome = race(h, lambda admin: admin.change_membership(True, "Admins", "bob"), reset)
    assert isinstance(outcome.get("error"), Forbidden), outcome
    assert not outcome["before_commit"], "the delegate's check did not wait for the promotion"
    with h.app.services.db.session() as db:
        assert "admin" in rights_of_user(db, user_named(h, "bob").id)
    assert h.login("bob", NEW_PASSWORD).status_code != 200
    assert h.login("bob", STRONG).status_code == 200


def test_two_posts_of_one_new_secret_form_rotate_once(server_database: Harness) -> None:
    h = server_database
    with administration(h, Actor.operator("root")) as admin:
        admin.create_application("Notes", redirect_uris=["https://notes.example/cb"])
    with h.app.services.db.session() as db:
        app = directory.get_application(db, "Notes")
        stamp = clients.secret_stamp(app)

    def second_post() -> Any:
        with administration(h, Actor.operator("root")) as admin:
            return admin.rotate_secret("Notes", 0, expected=stamp)

    outcome = race(h, lambda admin: admin.rotate_secret("Notes", 0, expected=stamp), second_post)
    assert isinstance(outcome.get("error"), Conflict), outcome


@pytest.fixture
def delegate_world(factory: Any) -> tuple[Harness, Actor]:
    """An administrator ``victim`` holding the Wiki's ``edit`` directly and as a member of
    ``Editors`` (which holds it too), and a delegate holding apps:write and groups:write
    but not ``admin``."""
    h: Harness = factory("sqlite")
    for name in ("victim", "delegate"):
        assert h.register(name).status_code == 200
    with administration(h, Actor.operator("root")) as admin:
        admin.create_application("Wiki", redirect_uris=["https://wiki.example/cb"])
        admin.add_permission("Wiki", "edit")
        admin.change_grant(True, "Wiki", "edit", username="victim")
        admin.create_group("Editors", "")
        admin.change_membership(True, "Editors", "victim")
        admin.change_grant(True, "Wiki", "edit", group="Editors")
        admin.make_administrator("victim")
        for right in ("apps:write", "apps:read", "groups:write", "users:read"):
            admin.change_grant(True, "Passport", right, username="delegate")
    return h, actor(h, "delegate")


def test_a_delegate_may_not_delete_a_permission_an_administrator_holds(
    delegate_world: tuple[Harness, Actor],
) -> None:
    h, delegate = delegate_world
    with pytest.raises(Forbidden), administration(h, delegate) as admin:
        admin.change_grant(False, "Wiki", "edit", username="victim")
    with pytest.raises(Forbidden), administration(h, delegate) as admin:
        admin.delete_permission("Wiki", "edit")
    with h.app.services.db.session() as db:
        wiki = db.query(Application).filter_by(name="Wiki").one()
        assert directory.find_permission(db, wiki, "edit") is not None


def test_a_delegate_may_not_delete_a_group_an_administrator_is_in(
    delegate_world: tuple[Harness, Actor],
) -> None:
    h, delegate = delegate_world
    with pytest.raises(Forbidden), administration(h, delegate) as admin:
        admin.change_membership(False, "Editors", "victim")
    with pytest.raises(Forbidden), administration(h, delegate) as admin:
        admin.delete_group("Editors")
    with h.app.services.db.session() as db:
        assert directory.get_group(db, "Editors") is not None
    # Without the administrator in it, the delegate may.
    with administration(h, Actor.operator("root")) as admin:
        admin.change_membership(False, "Editors", "victim")
    with administration(h, delegate) as admin:
        assert admin.delete_group("Editors") == "Editors"


def test_a_delegate_may_not_revoke_a_groups_grant_from_an_administrator_in_it(
    delegate_world: tuple[Harness, Actor],
) -> None:
    """Second review: revoking from a group was checked against the group's own Passport
    rights only; its members lose the grant too."""
    h, delegate = delegate_world
    with pytest.raises(Forbidden), administration(h, delegate) as admin:
        admin.change_grant(False, "Wiki", "edit", group="Editors")
    with administration(h, Actor.operator("root")) as admin:
        admin.change_membership(False, "Editors", "victim")
    with administration(h, delegate) as admin:
        assert admin.change_grant(False, "Wiki", "edit", group="Editors")[2]
