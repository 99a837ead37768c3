"""The account and administration rules, called as services: no HTTP, no CLI.

Each test has its own SQLite database, a copy of one migrated the product's way, and
a :class:`passport.composition.Services` over it (passwords hashed at the smallest
argon2id cost: the rules, not the cost, are the subject here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from passport.errors import ClientError
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import NotSignedIn
from passport.errors import Taken
from passport.errors import Throttled
from passport.errors import WrongLength
from passport.services import directory
from passport.services import permissions
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.accounts import validate_email
from passport.services.accounts import validate_username
from passport.services.administration import Administration
from passport.services.audit import AuditRecord
from passport.services.passwords import check_policy
from passport.services.policy import Actor
from passport.services.policy import ensure_may_act_on
from passport.services.policy import ensure_right
from passport.services.throttle import user_account_key
from passport.storage.models import Application
from passport.storage.models import User

from support import STRONG
from support import FakeClock

pytestmark = pytest.mark.sqlite

OTHER = "another long passphrase here"


class World:
    """The services, a caller, and what the operations audited."""

    def __init__(self, services: object, clock: FakeClock) -> None:
        from passport.composition import Services

        assert isinstance(services, Services)
        self.services = services
        self.clock = clock
        self.audits: list[AuditRecord] = []

    def caller(self, ip: str = "192.0.2.1") -> Caller:
        return Caller(ip=ip, user_agent="test", now=self.clock())

    @contextmanager
    def accounts(self) -> Iterator[Accounts]:
        """The account rules in one transaction (committed unless the block raises); its
        after-actions run once the transaction is over, as the request scope runs them
        (a throttle counter released inside it would wait for SQLite's write lock)."""
        later: list[Callable[[], None]] = []
        try:
            with self.services.db.session(write=True) as db, db.begin():
                yield self.services.accounts(
                    db,
                    audit=lambda record, durable=False: self.audits.append(record),
                    after=later.append,
                )
        finally:
            for action in later:
                action()

    @contextmanager
    def administration(self, actor: Actor) -> Iterator[Administration]:
        with self.accounts() as accounts:
            yield Administration(accounts, actor, self.caller(), origins_changed=lambda: None)

    def register(self, username: str, email: str | None = None) -> User:
        with self.accounts() as accounts:
            return accounts.register(self.caller(), username, STRONG, email, None)

    def grant(self, username: str, *rights: str, group: str | None = None) -> None:
        with self.services.db.session(write=True) as db, db.begin():
            passport = db.get(Application, 1)
            assert passport is not None
            target_group = directory.get_group(db, group) if group else None
            if group and target_group is not None:
                directory.add_member(db, target_group, directory.get_user(db, username))
            for right in rights:
                permission = directory.find_permission(db, passport, right)
                assert permission is not None, right
                if target_group is not None:
                    directory.grant(db, permission, group=target_group)
                else:
                    directory.grant(db, permission, user=directory.get_user(db, username))

    def actor(self, username: str) -> Actor:
        with self.services.db.session() as db:
            return Actor.administrator(db, directory.get_user(db, username))


@pytest.fixture
def world(services: object, clock: FakeClock) -> World:
    return World(services, clock)


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("Alice.B_c-1", "Alice.B_c-1"),
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),
    ],
)
def test_valid_usernames_are_nfkc(raw: str, expected: str) -> None:
    assert validate_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("ab", WrongLength),
        ("a" * 65, WrongLength),
        ("al ice", Invalid),
        ("al@ice", Invalid),
        ("ali\u200bce", Invalid),  # invisible
        ("", ClientError),
        (None, ClientError),
    ],
)
def test_invalid_usernames_are_refused(raw: str | None, error: type[ClientError]) -> None:
    with pytest.raises(error) as refused:
        validate_username(raw)
    assert refused.value.source == "username"


def test_emails() -> None:
    assert validate_email("") is None and validate_email(None) is None
    assert validate_email(" alice@example.com ") == "alice@example.com"
    for bad in ("alice", "alice@", "@example.com", "a b@example.com", "x" * 250 + "@example.com"):
        with pytest.raises(Invalid):
            validate_email(bad)


@pytest.mark.parametrize("taken", ["alice", "ALICE", "\u0430lice", "al\u0456ce", "\uff21lice"])
def test_a_name_or_its_look_alike_is_taken_once(world: World, taken: str) -> None:
    world.register("alice")
    with pytest.raises(Taken) as refused:
        world.register(taken)
    assert refused.value.source == "username"
    world.register("alice2")  # a different name is not a look-alike


def test_an_email_is_registered_once_in_any_case(world: World) -> None:
    world.register("alice", "alice@example.com")
    with pytest.raises(Taken) as refused:
        world.register("bob", "ALICE@example.com")
    assert refused.value.source == "email"


# -- sign-in -----------------------------------------------------------------------------------


def login(world: World, name: str, password: str = STRONG, ip: str = "192.0.2.1") -> User:
    with world.accounts() as accounts:
        return accounts.login(world.caller(ip), name, password).user


def test_sign_in_by_name_email_and_look_alike(world: World) -> None:
    alice = world.register("alice", "alice@example.com")
    for name in ("alice", "ALICE", "alice@example.com", " \u0430lice "):
        assert login(world, name).id == alice.id, name
    assert [r.outcome for r in world.audits if r.event == "login"] == ["success"] * 4
    assert world.services.sessions.list_for_user(alice.id, world.clock())


def test_wrong_password_unknown_and_disabled_users_all_fail_alike(world: World) -> None:
    world.register("alice")
    bob = world.register("bob")
    with world.services.db.session(write=True) as db, db.begin():
        directory.get_user(db, "bob").disabled = True
    dummies = world.services.passwords.dummy_verifications
    for name, password in (("alice", OTHER), ("nobody", STRONG), ("bob", STRONG)):
        with pytest.raises(NotSignedIn) as refused:
            login(world, name, password)
        assert refused.value.source == "username"
    assert world.services.passwords.dummy_verifications == dummies + 1  # only for "nobody"
    failures = [r for r in world.audits if r.event == "login"]
    assert [(r.username, r.outcome) for r in failures][-3:] == [
        ("alice", "failure"),
        ("nobody", "failure"),
        ("bob", "failure"),
    ]
    assert world.services.sessions.list_for_user(bob.id, world.clock()) == []


def test_failures_count_per_resolved_account_in_every_form(world: World) -> None:
    alice = world.register("alice", "alice@example.com")
    world.register("bob")
    limit = world.services.settings.throttle_account_limit
    forms = ["alice", "ALICE", "alice@example.com", "\u0430lice", "al\u0456ce"]
    for i in range(limit):
        with pytest.raises(NotSignedIn):
            login(world, forms[i % len(forms)], OTHER, ip=f"192.0.2.{10 + i}")
    count = world.services.throttle.store.peek(user_account_key(alice.id))
    assert count is not None and count.failures == limit
    with pytest.raises(Throttled) as throttled:  # even with the right password
        login(world, "alice", STRONG, ip="198.51.100.7")
    assert throttled.value.retry_after and throttled.value.retry_after > 0
    assert login(world, "bob", ip="198.51.100.7").username == "bob"  # another account


def test_a_success_starts_the_account_count_again(world: World) -> None:
    alice = world.register("alice")
    for _ in range(2):
        with pytest.raises(NotSignedIn):
            login(world, "alice", OTHER)
    login(world, "alice")
    count = world.services.throttle.store.peek(user_account_key(alice.id))
    assert count is None or count.failures == 0


# -- the escalation rule ---------------------------------------------------------------------


def test_a_delegate_may_not_act_on_a_holder_of_rights_they_lack(world: World) -> None:
    world.register("root")
    world.register("delegate")
    world.register("peer")
    world.register("carol")
    world.grant("root", "admin")
    world.grant("delegate", "users:write", "groups:write")
    world.grant("peer", "users:write")
    delegate = world.actor("delegate")
    with world.administration(delegate) as admin:
        admin.reset_password("carol", OTHER)  # a plain user
        admin.reset_password("peer", OTHER)  # holds no more than the delegate
    for target in ("root",):
        with pytest.raises(Forbidden) as refused, world.administration(delegate) as admin:
            admin.reset_password(target, OTHER)
        assert "admin" in refused.value.message
    with pytest.raises(Forbidden), world.administration(world.actor("peer")) as admin:
        admin.set_user_disabled("delegate", True)  # holds groups:write, which peer lacks
    with world.administration(world.actor("root")) as admin:
        admin.set_user_disabled("delegate", True)  # admin acts on everyone
    with world.administration(Actor.operator("ops")) as admin:
        admin.reset_password("root", OTHER)  # the operator holds every right
    assert login(world, "root", OTHER).username == "root"


def test_nobody_joins_a_group_holding_rights_they_lack(world: World) -> None:
    world.register("delegate")
    world.register("carol")
    world.grant("delegate", "groups:write")
    with world.services.db.session(write=True) as db, db.begin():
        directory.create_group(db, "Admins")
    world.grant("carol", "admin", group="Admins")  # carol is in Admins, which holds admin
    with pytest.raises(Forbidden), world.administration(world.actor("delegate")) as admin:
        admin.change_membership(True, "Admins", "delegate")
    with world.services.db.session() as db:
        assert permissions.effective(db, directory.get_user(db, "delegate").id, 1) == [
            "groups:write"
        ]


def test_passport_itself_is_changed_by_admin_only(world: World) -> None:
    world.register("root")
    world.register("delegate")
    world.grant("root", "admin")
    world.grant("delegate", "apps:write", "users:write", "groups:write")
    delegate, root = world.actor("delegate"), world.actor("root")
    with world.services.db.session() as db:
        passport = db.get(Application, 1)
        assert passport is not None
        admin_permission = directory.find_permission(db, passport, "admin")
        assert admin_permission is not None
        for target in (passport, admin_permission):
            with pytest.raises(Forbidden):
                ensure_may_act_on(db, delegate, target, "application")
            ensure_may_act_on(db, root, target, "application")
    with pytest.raises(Forbidden), world.administration(delegate) as admin:
        admin.change_grant(True, "Passport", "users:write", username="delegate")
    with world.administration(delegate) as admin:  # other applications are theirs to run
        admin.create_application("Wiki", origins=["https://wiki.example.com"])


def test_an_operation_needs_its_right() -> None:
    reader = Actor(7, "user:7", frozenset({"users:read"}))
    with pytest.raises(Forbidden) as refused:
        ensure_right(reader, "users:write")
    assert refused.value.source == "permission"
    ensure_right(reader, "users:read")
    ensure_right(Actor(8, "user:8", frozenset({"admin"})), "apps:write")


def test_changes_are_audited_with_their_actor(world: World) -> None:
    world.register("carol")
    with world.administration(Actor.operator("ops")) as admin:
        admin.set_user_disabled("carol", True)
    (record,) = [r for r in world.audits if r.event == "user_disable"]
    assert record.username == "carol" and record.actor_id is None
    assert json.loads(record.detail)["actor"] == "cli:ops"


# -- the password policy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "short pass",  # under 12 characters
        "x" * 1025,  # over 1024
        "password1234",  # a common password
        "passwordpassword",  # a common password, said twice
        "aaaaaaaaabbbbbbbb",  # too few different characters
        "alice.liddell",  # the username
        "Alice.Liddell",  # the username in another case
    ],
)
def test_the_password_policy_refuses(password: str) -> None:
    with pytest.raises(ClientError) as refused:
        check_policy(password, username="alice.liddell", min_length=12, source="password")
    assert refused.value.source == "password"


def test_the_password_policy_accepts_any_long_uncommon_phrase_normalised() -> None:
    for password in (
        STRONG,
        "ünïcödé pässwörd ok",
        "12 spaces in here!",
        "\uff43orrect horse battery",
    ):
        text = check_policy(password, username="alice", min_length=12, source="password")
        assert text == check_policy(text, username="alice", min_length=12, source="password")
    assert check_policy("\uff43orrect horse battery", username="a", min_length=12, source="p") == (
        "correct horse battery"
    )
    with pytest.raises(ClientError):  # the name of the service, where the length allows it
        check_policy("passport", username="alice", min_length=8, source="password")


def test_registration_applies_the_policy(world: World) -> None:
    with pytest.raises(ClientError) as refused, world.accounts() as accounts:
        accounts.register(world.caller(), "alice", "alice", None, None)
    assert refused.value.source == "password"
    with world.services.db.session() as db:
        assert directory.find_user(db, "alice") is None
