"""The second-factor service (:mod:`passport.services.factors`), called without HTTP.

Each test runs over a real migrated database (SQLite, PostgreSQL, MariaDB: the
``factory`` harness of ``tests/conftest.py``) with a :class:`Factors` built the way
``Accounts.factors`` builds it, inside a transaction that ends as a request's does
(committed, or rolled back keeping only the durable audit records; after-actions run
once it is over).  WebAuthn ceremonies are answered by the software authenticator of
``tests/webauthn_support.py`` and checked by the real ``webauthn`` library; TOTP codes
come from pyotp at the harness clock.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import cbor2
import pyotp
import pytest
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy import update

from passport.config import Settings
from passport.errors import ClientError
from passport.errors import FeatureDisabled
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import Missing
from passport.errors import NotSignedIn
from passport.errors import Taken
from passport.errors import Throttled
from passport.errors import WrongLength
from passport.services import directory
from passport.services import factors as factors_module
from passport.services.accounts import Caller
from passport.services.audit import AuditRecord
from passport.services.audit import write as write_audit
from passport.services.factors import ACR
from passport.services.factors import APPLICATION_POLICIES
from passport.services.factors import MAX_CREDENTIAL_JSON
from passport.services.factors import POLICIES
from passport.services.factors import RECOVERY_CODE_COUNT
from passport.services.factors import STEP_LIFETIME
from passport.services.factors import Factors
from passport.services.factors import FactorSummary
from passport.services.factors import Level
from passport.services.factors import PasskeyView
from passport.services.factors import Verified
from passport.services.factors import acr_of
from passport.services.factors import combine_amr
from passport.services.factors import level_of
from passport.services.factors import needed
from passport.services.factors import new_step_cookie
from passport.services.factors import normalise_recovery_code
from passport.services.factors import policy_level
from passport.services.factors import requested_level
from passport.services.factors import validate_policy
from passport.services.sessions import LoginSessionInfo
from passport.services.throttle import ip_key
from passport.services.throttle import user_account_key
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import RecoveryCode
from passport.storage.models import SignInStep
from passport.storage.models import TotpCredential
from passport.storage.models import User
from passport.storage.models import WebAuthnCredential
from webauthn_support import UP
from webauthn_support import UV
from webauthn_support import SoftAuthenticator
from webauthn_support import b64url
from webauthn_support import unb64url

from support import STRONG
from support import Harness

PUBLIC_URL = "https://sso.example.test"
RP_ID = "sso.example.test"
IP = "192.0.2.10"
UA = "pytest"
AAGUID = bytes.fromhex("00112233445566778899aabbccddeeff")
AAGUID_TEXT = "00112233-4455-6677-8899-aabbccddeeff"
DB_BACKENDS = ("sqlite", "postgresql", "mariadb")
RECOVERY_SHAPE = r"[2-9a-hjkmnp-z]{4}(-[2-9a-hjkmnp-z]{4}){3}"


def new_kek() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class World:
    """A harness's services, the factor operations in request-like transactions, and
    every audit record that such a scope would have written."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.services = h.app.services
        self.settings: Settings = h.settings
        self.written: list[AuditRecord] = []
        self._names = itertools.count()

    def now(self) -> datetime:
        return self.h.clock()

    @contextmanager
    def factors(self, settings: Settings | None = None) -> Iterator[Factors]:
        """:class:`Factors` over one transaction, finished as ``RequestContext.respond``
        finishes a request: committed with every audit record, or rolled back with only
        the durable ones; then the after-actions (throttle counters) run."""
        queued: list[tuple[AuditRecord, bool]] = []
        later: list[Callable[[], None]] = []
        committed = False
        db = self.services.db.session(write=True)
        try:
            with db.begin():
                yield Factors(
                    settings or self.settings,
                    self.services.throttle,
                    db,
                    lambda record, durable=False: queued.append((record, durable)),
                    later.append,
                )
                for record, _ in queued:
                    write_audit(db, record)
            committed = True
            self.written.extend(record for record, _ in queued)
        finally:
            db.close()
            if not committed:
                kept = [record for record, durable in queued if durable]
                if kept:
                    with self.services.db.session(write=True) as audit_db, audit_db.begin():
                        for record in kept:
                            write_audit(audit_db, record)
                self.written.extend(kept)
            for action in later:
                action()

    def run(self, action: Callable[[Factors], Any], settings: Settings | None = None) -> Any:
        with self.factors(settings) as f:
            return action(f)

    def user(self, username: str | None = None) -> User:
        name = username or f"user{next(self._names)}"
        with self.services.db.session(write=True) as db, db.begin():
            accounts = self.services.accounts(
                db, audit=lambda record, durable=False: None, after=lambda action: None
            )
            caller = Caller(ip=IP, user_agent=UA, now=self.now())
            return accounts.register(caller, name, STRONG, None, None, by_admin=True)

    def reload(self, user: User) -> User:
        with self.services.db.session() as db:
            found = db.get(User, user.id)
            assert found is not None
            db.expunge(found)
            return found

    def set_disabled(self, user: User, disabled: bool = True) -> None:
        with self.services.db.session(write=True) as db, db.begin():
            db.execute(update(User).where(User.id == user.id).values(disabled=disabled))

    def rows(self, model: Any, user: User | None = None) -> list[Any]:
        with self.services.db.session() as db:
            query = select(model)
            if user is not None:
                query = query.where(model.user_id == user.id)
            found = list(db.scalars(query))
            db.expunge_all()
            return found

    def failures(self, key: str) -> int:
        count = self.services.throttle.store.peek(key)
        return 0 if count is None else count.failures

    def events(self, event: str) -> list[AuditRecord]:
        return [r for r in self.written if r.event == event]

    def session(self, user: User, age: float, amr: str = "pwd otp mfa") -> LoginSessionInfo:
        """A login session of ``user`` that began ``age`` seconds ago, having proved
        ``amr`` (by default a second factor, as a change of factors needs)."""
        now = self.now()
        return LoginSessionInfo(
            id_hash="x" * 64,
            user_id=user.id,
            created_at=now - timedelta(seconds=age),
            last_seen_at=now,
            expires_at=now + timedelta(hours=8),
            idle_timeout=3600,
            remember=False,
            ip=IP,
            user_agent=UA,
            sid="sid",
            amr=amr,
        )

    # -- passkeys -------------------------------------------------------------------
    def registration(
        self, user: User, via: str = "account", session: LoginSessionInfo | None = None
    ) -> tuple[str, str]:
        cookie = new_step_cookie()
        options = self.run(
            lambda f: f.registration_options(cookie, user, self.now(), via=via, session=session)
        )
        return cookie, options

    def add_passkey(
        self,
        user: User,
        cookie: str,
        response: str | None,
        name: str | None = "My key",
        *,
        via: str = "account",
        session: LoginSessionInfo | None = None,
    ) -> WebAuthnCredential:
        return self.run(
            lambda f: f.add_passkey(
                cookie,
                user,
                response,
                name,
                via=via,
                session=session,
                ip=IP,
                user_agent=UA,
                now=self.now(),
            )
        )

    def enrol_passkey(
        self, user: User, authenticator: SoftAuthenticator, name: str = "My key"
    ) -> WebAuthnCredential:
        cookie, options = self.registration(user)
        return self.add_passkey(user, cookie, authenticator.create(options), name)

    def passkey_options(self, user: User | None = None) -> tuple[str, str]:
        cookie = new_step_cookie()
        options = self.run(
            lambda f: f.authentication_options(
                cookie, self.now(), user_id=user.id if user is not None else None
            )
        )
        return cookie, options

    def verify_passkey(self, cookie: str, response: str | None, ip: str = IP) -> Verified:
        return self.run(
            lambda f: f.verify_passkey(cookie, response, ip=ip, user_agent=UA, now=self.now())
        )

    def sign_in_passkey(
        self, authenticator: SoftAuthenticator, user: User | None = None, **knobs: Any
    ) -> Verified:
        cookie, options = self.passkey_options(user)
        return self.verify_passkey(cookie, authenticator.get(options, **knobs))

    # -- codes ------------------------------------------------------------------------
    def enrol_totp(self, user: User) -> str:
        cookie = new_step_cookie()
        enrolment = self.run(lambda f: f.totp_start(cookie, user, None, self.now(), via="account"))
        code = pyotp.TOTP(enrolment.secret).at(self.now())
        self.run(
            lambda f: f.totp_confirm(
                cookie,
                user,
                code,
                via="account",
                session=None,
                ip=IP,
                user_agent=UA,
                now=self.now(),
            )
        )
        return str(enrolment.secret)

    def verify_code(self, user: User, method: str, code: str | None, ip: str = IP) -> Verified:
        return self.run(
            lambda f: f.verify_code(user.id, method, code, ip=ip, user_agent=UA, now=self.now())
        )

    def recovery_codes(self, user: User) -> list[str]:
        return self.run(
            lambda f: f.new_recovery_codes(user, ip=IP, user_agent=UA, now=self.now(), session=None)
        )


@pytest.fixture(params=DB_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_world(factory: Any, backend: str) -> Callable[..., World]:
    def make(**overrides: Any) -> World:
        overrides.setdefault("public_url", PUBLIC_URL)
        overrides.setdefault("key_encryption_key", new_kek())
        return World(factory(backend, "db", **overrides))

    return make


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=PUBLIC_URL, aaguid=AAGUID)


def totp_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


# == registration ======================================================================
def test_a_registered_passkey_keeps_what_the_assertions_need(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user("alice")
    cookie, options = world.registration(alice)
    opts = json.loads(options)
    assert opts["rp"]["id"] == RP_ID
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    assert opts["excludeCredentials"] == []
    response = authenticator.create(options)
    row = world.add_passkey(alice, cookie, response, "  Office key ")

    credential = authenticator.credentials[0]
    stored = world.rows(WebAuthnCredential, alice)
    assert [r.id for r in stored] == [row.id]
    saved = stored[0]
    assert saved.credential_id_hash == hashlib.sha256(credential.id).hexdigest()
    assert unb64url(saved.credential_id) == credential.id
    cose = cbor2.loads(unb64url(saved.public_key))
    numbers = credential.key.public_key().public_numbers()
    assert cose[-2] == numbers.x.to_bytes(32, "big")
    assert cose[-3] == numbers.y.to_bytes(32, "big")
    assert saved.sign_count == 0
    assert saved.transports == "usb"
    assert saved.aaguid == AAGUID_TEXT
    assert saved.backup_eligible is False
    assert saved.name == "Office key"
    assert saved.created_at == world.now() and saved.last_used_at is None
    # The user handle in the options is the user's own, random, and stays.
    handle = world.reload(alice).webauthn_handle
    assert handle and opts["user"]["id"] == handle and len(unb64url(handle)) == 32
    assert credential.user_handle == unb64url(handle)
    # The challenge was used up.
    assert world.rows(SignInStep, alice) == []
    [record] = world.events("mfa.passkey.add")
    assert record.outcome == "success" and record.user_id == alice.id


def test_a_synced_passkey_is_stored_backup_eligible(world: World) -> None:
    alice = world.user()
    synced = SoftAuthenticator(origin=PUBLIC_URL, backup_eligible=True)
    row = world.enrol_passkey(alice, synced)
    assert row.backup_eligible is True
    assert world.rows(WebAuthnCredential, alice)[0].backup_eligible is True


def test_a_passkey_without_a_name_is_called_passkey(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    assert world.add_passkey(alice, cookie, authenticator.create(options), "").name == "Passkey"


def test_a_passkey_name_too_long_is_refused_and_nothing_stored(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    with pytest.raises(WrongLength):
        world.add_passkey(alice, cookie, authenticator.create(options), "k" * 65)
    assert world.rows(WebAuthnCredential, alice) == []


BAD_REGISTRATIONS: dict[str, dict[str, Any]] = {
    "wrong_challenge": {"challenge": b64url(os.urandom(32))},
    "wrong_origin": {"origin": "https://evil.example"},
    "origin_prefix": {"origin": PUBLIC_URL + ".evil.example"},
    "wrong_rp_id_hash": {"rp_id": "evil.example"},
    "parent_domain_rp_id_hash": {"rp_id": "example.test"},
    "no_user_verification": {"flags": UP},
    "no_user_presence": {"flags": UV},
}


REGISTRATION_REASONS = {
    "wrong_challenge": "challenge",
    "wrong_origin": "origin",
    "origin_prefix": "origin",
    "wrong_rp_id_hash": "RP ID hash",
    "parent_domain_rp_id_hash": "RP ID hash",
    "no_user_verification": "User verification",
    "no_user_presence": "User presence",
}


@pytest.mark.parametrize("knob", BAD_REGISTRATIONS)
def test_a_wrong_registration_is_refused_and_nothing_stored(
    world: World, authenticator: SoftAuthenticator, knob: str
) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    response = authenticator.create(options, **BAD_REGISTRATIONS[knob])
    with pytest.raises(Invalid):
        world.add_passkey(alice, cookie, response)
    assert world.rows(WebAuthnCredential) == []
    [record] = world.events("mfa.passkey.add")
    assert record.outcome == "failure" and record.user_id == alice.id and record.detail
    assert REGISTRATION_REASONS[knob] in record.detail
    # The audit record was kept although the transaction was rolled back.
    with world.services.db.session() as db:
        kept = db.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.passkey.add"))
        assert [e.outcome for e in kept] == ["failure"]


MALFORMED = {
    "not_json": ("{not json", Invalid),
    "a_list": ("[]", Invalid),
    "a_string": ('"credential"', Invalid),
    "missing_response": ('{"id": "AAAA", "type": "public-key"}', Invalid),
    "response_not_an_object": ('{"id": "AAAA", "response": "x"}', Invalid),
    "empty": ("", Missing),
    "absent": (None, Missing),
    "huge": ('{"response": {}, "x": "' + "a" * MAX_CREDENTIAL_JSON + '"}', WrongLength),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_registration_is_refused_and_nothing_stored(
    world: World, authenticator: SoftAuthenticator, case: str
) -> None:
    alice = world.user()
    cookie, _ = world.registration(alice)
    raw, kind = MALFORMED[case]
    with pytest.raises(kind):
        world.add_passkey(alice, cookie, raw)
    assert world.rows(WebAuthnCredential) == []


def test_a_registration_answering_another_users_step_is_refused(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice, mallory = world.user(), world.user()
    cookie, options = world.registration(alice)
    with pytest.raises(Invalid):
        world.add_passkey(mallory, cookie, authenticator.create(options))
    assert world.rows(WebAuthnCredential) == []


def test_a_registration_answering_a_sign_in_challenge_is_refused(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    cookie, options = world.passkey_options(alice)
    creation = json.loads(world.registration(alice)[1])
    creation["challenge"] = json.loads(options)["challenge"]
    with pytest.raises(Invalid):
        world.add_passkey(alice, cookie, authenticator.create(creation))
    assert world.rows(WebAuthnCredential) == []


def test_a_registration_asked_for_on_another_page_is_refused(
    world: World, authenticator: SoftAuthenticator
) -> None:
    """A challenge is used only where it was asked for (the account page, a sign-in's
    enrolment)."""
    alice = world.user()
    cookie, options = world.registration(alice, via="enrol")
    with pytest.raises(Invalid):
        world.add_passkey(alice, cookie, authenticator.create(options), via="account")
    assert world.rows(WebAuthnCredential) == []
    world.add_passkey(alice, cookie, authenticator.create(options), via="enrol")
    assert len(world.rows(WebAuthnCredential, alice)) == 1


def test_an_expired_registration_is_refused(world: World, authenticator: SoftAuthenticator) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    response = authenticator.create(options)
    world.h.clock.advance(seconds=STEP_LIFETIME)
    with pytest.raises(Invalid):
        world.add_passkey(alice, cookie, response)
    assert world.rows(WebAuthnCredential) == []


def test_a_registration_just_before_expiry_is_accepted(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    world.h.clock.advance(seconds=STEP_LIFETIME - 1)
    world.add_passkey(alice, cookie, authenticator.create(options))
    assert len(world.rows(WebAuthnCredential, alice)) == 1


def test_a_registration_posted_twice_is_stored_once(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    cookie, options = world.registration(alice)
    response = authenticator.create(options)
    world.add_passkey(alice, cookie, response)
    with pytest.raises(Invalid):  # the step was used up: not even "already registered"
        world.add_passkey(alice, cookie, response)
    assert len(world.rows(WebAuthnCredential)) == 1


def _same_credential_for(response: str, options: str) -> str:
    """The same authenticator's credential (same id, same key) answering a new
    challenge: a "none" attestation signs nothing, so only clientDataJSON changes."""
    parsed = json.loads(response)
    client = json.loads(unb64url(parsed["response"]["clientDataJSON"]))
    client["challenge"] = json.loads(options)["challenge"]
    parsed["response"]["clientDataJSON"] = b64url(json.dumps(client).encode())
    return json.dumps(parsed)


def test_the_same_authenticator_registered_twice_is_taken(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice, bob = world.user(), world.user()
    cookie, options = world.registration(alice)
    first = authenticator.create(options)
    world.add_passkey(alice, cookie, first)
    for who in (alice, bob):
        again, options = world.registration(who)
        with pytest.raises(Taken):
            world.add_passkey(who, again, _same_credential_for(first, options))
    assert [r.user_id for r in world.rows(WebAuthnCredential)] == [alice.id]


def test_exclude_credentials_lists_the_users_passkeys_only(world: World) -> None:
    alice, bob = world.user(), world.user()
    keys = SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(alice, keys)
    world.enrol_passkey(alice, keys)
    world.enrol_passkey(bob, SoftAuthenticator(origin=PUBLIC_URL))
    excluded = json.loads(world.registration(alice)[1])["excludeCredentials"]
    assert sorted(unb64url(c["id"]) for c in excluded) == sorted(c.id for c in keys.credentials)
    assert all(c["transports"] == ["usb"] for c in excluded)
    assert len(json.loads(world.registration(bob)[1])["excludeCredentials"]) == 1


def test_a_disabled_user_gets_no_registration_options(world: World) -> None:
    alice = world.user()
    world.set_disabled(alice)
    with pytest.raises(NotSignedIn):
        world.registration(alice)
    assert world.rows(SignInStep) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_no_more_than_max_passkeys(
    world: World, authenticator: SoftAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factors_module, "MAX_PASSKEYS", 2)
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    world.enrol_passkey(alice, authenticator)
    with pytest.raises(Invalid):
        world.registration(alice)
    assert len(world.rows(WebAuthnCredential, alice)) == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_passkey_limit_holds_for_challenges_fetched_before_it_was_reached(
    world: World, authenticator: SoftAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several browsers (cookies) may each hold a registration challenge: the limit is
    checked again when a passkey is added, not only when a challenge is given."""
    monkeypatch.setattr(factors_module, "MAX_PASSKEYS", 2)
    alice = world.user()
    pending = [world.registration(alice) for _ in range(3)]
    for cookie, options in pending[:2]:
        world.add_passkey(alice, cookie, authenticator.create(options))
    cookie, options = pending[2]
    with pytest.raises(Invalid):
        world.add_passkey(alice, cookie, authenticator.create(options))
    assert len(world.rows(WebAuthnCredential, alice)) == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_registration_transports_of_any_json_type_are_no_crash(
    world: World, authenticator: SoftAuthenticator
) -> None:
    """``response.transports`` is the client's: a nested list or an object in it is
    ignored, never an unhandled error."""
    alice = world.user()
    for transports in ([["usb"]], [{"usb": 1}], "usb", {"usb": True}, [None, 5, "nfc"]):
        cookie, options = world.registration(alice)
        parsed = json.loads(authenticator.create(options))
        parsed["response"]["transports"] = transports
        row = world.add_passkey(alice, cookie, json.dumps(parsed))
        assert set(row.transports.split()) <= {"usb", "nfc"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
CREDENTIAL_FIELDS = st.fixed_dictionaries(
    {
        "response": st.dictionaries(
            st.sampled_from(
                [
                    "clientDataJSON",
                    "attestationObject",
                    "authenticatorData",
                    "signature",
                    "userHandle",
                    "transports",
                ]
            ),
            JSON_VALUES,
        )
    },
    optional={
        "id": JSON_VALUES,
        "rawId": JSON_VALUES | st.just("AAAA"),
        "type": st.sampled_from(["public-key", "x"]) | JSON_VALUES,
        "authenticatorAttachment": JSON_VALUES,
        "clientExtensionResults": JSON_VALUES,
    },
)


@pytest.mark.parametrize("backend", ["sqlite"])
@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(credential=CREDENTIAL_FIELDS)
def test_any_json_registration_is_a_client_error(world: World, credential: Any) -> None:
    if not hasattr(world, "alice"):
        world.alice = world.user()  # type: ignore[attr-defined]
        world.cookie = world.registration(world.alice)[0]  # type: ignore[attr-defined]
    with pytest.raises(ClientError):
        world.add_passkey(world.alice, world.cookie, json.dumps(credential))  # type: ignore[attr-defined]
    assert world.rows(WebAuthnCredential) == []


# == authentication ====================================================================
def test_a_discoverable_passkey_signs_in_without_a_username(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice, bob = world.user(), world.user()
    row = world.enrol_passkey(alice, authenticator)
    world.enrol_passkey(bob, SoftAuthenticator(origin=PUBLIC_URL))
    cookie, options = world.passkey_options()
    opts = json.loads(options)
    assert opts.get("allowCredentials", []) == [] and opts["rpId"] == RP_ID
    assert opts["userVerification"] == "required"
    world.h.clock.advance(seconds=60)
    verified = world.verify_passkey(cookie, authenticator.get(options))
    assert verified.user.id == alice.id and verified.amr == "hwk"
    assert verified.recovery_left is None
    [saved] = world.rows(WebAuthnCredential, alice)
    assert saved.id == row.id and saved.sign_count == 1 and saved.last_used_at == world.now()
    [record] = world.events("mfa.passkey.use")
    assert record.outcome == "success" and record.user_id == alice.id
    assert record.username == alice.username


def test_allow_credentials_lists_the_users_passkeys_only(world: World) -> None:
    alice, bob = world.user(), world.user()
    mine = SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(alice, mine)
    world.enrol_passkey(alice, mine)
    world.enrol_passkey(bob, SoftAuthenticator(origin=PUBLIC_URL))
    _, options = world.passkey_options(alice)
    allowed = json.loads(options)["allowCredentials"]
    assert sorted(unb64url(c["id"]) for c in allowed) == sorted(c.id for c in mine.credentials)
    verified = world.sign_in_passkey(mine, alice)
    assert verified.user.id == alice.id


def test_synced_and_device_bound_passkeys_tell_their_amr(world: World) -> None:
    alice = world.user()
    device = SoftAuthenticator(origin=PUBLIC_URL)
    synced = SoftAuthenticator(origin=PUBLIC_URL, backup_eligible=True, counts=False)
    world.enrol_passkey(alice, device)
    world.enrol_passkey(alice, synced)
    assert world.sign_in_passkey(device).amr == "hwk"
    assert world.sign_in_passkey(synced).amr == "swk"
    assert level_of(combine_amr("swk", "mfa")) == Level.PASSKEY


def test_a_counter_that_stays_zero_is_accepted_every_time(world: World) -> None:
    alice = world.user()
    synced = SoftAuthenticator(origin=PUBLIC_URL, counts=False)
    world.enrol_passkey(alice, synced)
    for _ in range(3):
        assert world.sign_in_passkey(synced).user.id == alice.id
    assert world.rows(WebAuthnCredential, alice)[0].sign_count == 0


def test_the_sign_count_is_kept_after_each_sign_in(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    world.sign_in_passkey(authenticator, count=7)
    assert world.rows(WebAuthnCredential, alice)[0].sign_count == 7
    world.h.clock.advance(hours=1)
    world.sign_in_passkey(authenticator, count=8)
    [row] = world.rows(WebAuthnCredential, alice)
    assert row.sign_count == 8 and row.last_used_at == world.now()


@pytest.mark.parametrize("count", [5, 4, 0])
def test_a_counter_that_did_not_grow_is_a_clone_refused_and_audited(
    world: World, authenticator: SoftAuthenticator, count: int
) -> None:
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    world.sign_in_passkey(authenticator, count=5)
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator, count=count)
    [failure] = [r for r in world.events("mfa.passkey.use") if r.outcome == "failure"]
    assert "cloned authenticator" in failure.detail and failure.user_id == alice.id
    assert world.rows(WebAuthnCredential, alice)[0].sign_count == 5


BAD_ASSERTIONS: dict[str, dict[str, Any]] = {
    "wrong_challenge": {"challenge": b64url(os.urandom(32))},
    "wrong_origin": {"origin": "https://evil.example"},
    "wrong_rp_id_hash": {"rp_id": "evil.example"},
    "no_user_verification": {"flags": UP},
    "no_user_presence": {"flags": UV},
}


ASSERTION_REASONS = {
    "wrong_challenge": "challenge",
    "wrong_origin": "origin",
    "wrong_rp_id_hash": "RP ID hash",
    "no_user_verification": "User verification",
    "no_user_presence": "not present",
}


@pytest.mark.parametrize("knob", BAD_ASSERTIONS)
def test_a_wrong_assertion_is_refused_counted_on_the_address_and_audited(
    world: World, authenticator: SoftAuthenticator, knob: str
) -> None:
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    knobs = dict(BAD_ASSERTIONS[knob])
    authenticator.credentials[0].rp_id = knobs.pop("rp_id", RP_ID)
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator, alice, **knobs)
    [record] = world.events("mfa.passkey.use")
    assert record.outcome == "failure" and record.user_id == alice.id
    assert ASSERTION_REASONS[knob] in record.detail
    assert world.failures(ip_key(IP)) == 1
    assert world.failures(user_account_key(alice.id)) == 0  # by the address only
    assert world.rows(WebAuthnCredential, alice)[0].last_used_at is None


def test_a_replayed_assertion_is_refused(world: World) -> None:
    # A counter that stays 0 (a synced passkey) does not tell a replay: the step does.
    authenticator = SoftAuthenticator(origin=PUBLIC_URL, counts=False)
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    cookie, options = world.passkey_options()
    assertion = authenticator.get(options)
    world.verify_passkey(cookie, assertion)
    with pytest.raises(NotSignedIn):  # the challenge was used up
        world.verify_passkey(cookie, assertion)
    fresh, _ = world.passkey_options()
    with pytest.raises(NotSignedIn):  # and it is not the new challenge's answer
        world.verify_passkey(fresh, assertion)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_an_assertion_replayed_in_parallel_is_accepted_once(world: World) -> None:
    """Two requests that both found the step: only the one whose DELETE wins uses it."""
    authenticator = SoftAuthenticator(origin=PUBLIC_URL, counts=False)
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    cookie, options = world.passkey_options()
    assertion = authenticator.get(options)
    with world.factors() as first:
        found = first.find_step(cookie, "passkey", world.now())  # kept in its identity map
        assert found is not None
        world.verify_passkey(cookie, assertion)  # the other request, committed
        with pytest.raises(NotSignedIn):
            first.verify_passkey(cookie, assertion, ip=IP, user_agent=UA, now=world.now())
    assert [r.outcome for r in world.events("mfa.passkey.use")] == ["success"]


def test_a_user_handle_of_another_user_is_refused(world: World) -> None:
    alice, bob = world.user(), world.user()
    alices, bobs = SoftAuthenticator(origin=PUBLIC_URL), SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(alice, alices)
    world.enrol_passkey(bob, bobs)
    bob_handle = bobs.credentials[0].user_handle
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(alices, user_handle=bob_handle)
    [failure] = world.events("mfa.passkey.use")
    assert failure.detail == "userHandle is not the credential's user"


def test_a_discoverable_sign_in_needs_a_user_handle(
    world: World, authenticator: SoftAuthenticator
) -> None:
    """WebAuthn L3 §7.2 step 6: without a user identified first, ``userHandle`` must be
    present (and be the credential's user's); with one, it may be absent."""
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator, user_handle=b"")
    [failure] = world.events("mfa.passkey.use")
    assert failure.outcome == "failure" and "userHandle" in failure.detail
    assert world.sign_in_passkey(authenticator, alice, user_handle=b"").user.id == alice.id


def test_a_passkey_of_another_user_does_not_answer_a_users_challenge(world: World) -> None:
    alice, bob = world.user(), world.user()
    world.enrol_passkey(alice, SoftAuthenticator(origin=PUBLIC_URL))
    bobs = SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(bob, bobs)
    cookie, options = world.passkey_options(alice)  # Alice's second factor
    with pytest.raises(NotSignedIn):
        world.verify_passkey(cookie, bobs.get(options, credential=bobs.credentials[0]))
    [failure] = world.events("mfa.passkey.use")
    assert failure.detail == "a passkey of another account"


def test_a_disabled_users_passkey_is_refused(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    world.set_disabled(alice)
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator)
    world.set_disabled(alice, False)
    assert world.sign_in_passkey(authenticator).user.id == alice.id


def test_an_unknown_credential_is_refused(world: World, authenticator: SoftAuthenticator) -> None:
    alice = world.user()
    _, creation = world.registration(alice)
    authenticator.create(creation)  # made, never registered
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator)
    [failure] = world.events("mfa.passkey.use")
    assert failure.user_id is None and failure.detail == "not a passkey of an enabled account"
    assert world.failures(ip_key(IP)) == 1


def test_a_signature_by_another_key_is_refused(
    world: World, authenticator: SoftAuthenticator
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    authenticator.credentials[0].key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(authenticator)
    assert world.rows(WebAuthnCredential, alice)[0].sign_count == 0


def test_an_assertion_without_a_step_is_refused_and_not_counted(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    world.enrol_passkey(alice, authenticator)
    _, options = world.passkey_options()
    for cookie in (new_step_cookie(), "short", None):
        with pytest.raises(NotSignedIn):
            world.verify_passkey(cookie, authenticator.get(options))  # type: ignore[arg-type]
    assert world.failures(ip_key(IP)) == 0


def test_a_passkey_is_not_held_back_by_the_accounts_counter(
    make_world: Callable[..., World],
) -> None:
    """Passkeys are throttled by the address only: failed passkeys do not count on the
    account, and wrong codes that locked the account do not stop its owner's passkey
    (else anyone knowing a username could lock its owner out of the phishing-resistant
    way in)."""
    world = make_world(throttle_account_limit=3, throttle_ip_limit=1000)
    alice = world.user()
    authenticator = SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(alice, authenticator)
    secret = world.enrol_totp(alice)
    for _ in range(3):
        with pytest.raises(NotSignedIn):
            world.sign_in_passkey(authenticator, origin="https://evil.example")
    assert world.failures(user_account_key(alice.id)) == 0
    world.h.clock.advance(seconds=30)
    wrong = f"{(int(totp_at(secret, world.now())) + 1) % 1000000:06d}"
    for _ in range(3):
        with pytest.raises(NotSignedIn):
            world.verify_code(alice, "totp", wrong, ip="198.51.100.3")
    with pytest.raises(Throttled):
        world.verify_code(alice, "totp", totp_at(secret, world.now()), ip="198.51.100.3")
    assert world.sign_in_passkey(authenticator, alice).user.id == alice.id
    assert world.events("mfa.passkey.use")[-1].outcome == "success"


def test_failed_passkeys_lock_the_address(make_world: Callable[..., World]) -> None:
    world = make_world(throttle_account_limit=1000, throttle_ip_limit=3)
    alice = world.user()
    authenticator = SoftAuthenticator(origin=PUBLIC_URL)
    world.enrol_passkey(alice, authenticator)
    stranger = SoftAuthenticator(origin=PUBLIC_URL)
    stranger.create(world.registration(world.user())[1])
    for _ in range(3):
        with pytest.raises(NotSignedIn):
            world.sign_in_passkey(stranger)
    with pytest.raises(Throttled):
        world.sign_in_passkey(authenticator)
    cookie, options = world.passkey_options()
    verified = world.verify_passkey(cookie, authenticator.get(options), ip="198.51.100.1")
    assert verified.user.id == alice.id


@pytest.mark.parametrize("backend", ["sqlite"])
@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(credential=CREDENTIAL_FIELDS)
def test_any_json_assertion_is_a_client_error(world: World, credential: Any) -> None:
    if not hasattr(world, "cookie"):
        alice = world.user()
        keys = SoftAuthenticator(origin=PUBLIC_URL)
        row = world.enrol_passkey(alice, keys)
        world.cookie = world.passkey_options()[0]  # type: ignore[attr-defined]
        world.credential_id = row.credential_id  # type: ignore[attr-defined]
    if credential.get("rawId") == "AAAA":
        credential["rawId"] = world.credential_id  # type: ignore[attr-defined]
    with pytest.raises(ClientError):
        world.run(
            lambda f: f.verify_passkey(
                world.cookie,  # type: ignore[attr-defined]
                json.dumps(credential),
                ip=f"203.0.113.{len(world.written) % 250}",
                user_agent=UA,
                now=world.now(),
            )
        )


# == authenticator apps (TOTP) =========================================================
def test_totp_start_shows_a_secret_a_uri_and_a_qr_code(world: World) -> None:
    alice = world.user("alice")
    cookie = new_step_cookie()
    enrolment = world.run(lambda f: f.totp_start(cookie, alice, None, world.now(), via="account"))
    assert len(enrolment.secret) == 32 and len(base64.b32decode(enrolment.secret)) == 20
    parsed = pyotp.parse_uri(enrolment.uri)
    assert parsed.secret == enrolment.secret and parsed.name == "alice"
    assert parsed.issuer == "Passport (sso.example.test)"
    assert parsed.digits == 6 and parsed.interval == 30
    assert enrolment.qr_svg.startswith("<svg") and enrolment.qr_svg.rstrip().endswith("</svg>")
    # Nothing kept but the sealed secret in this browser's step.
    assert world.rows(TotpCredential) == []
    [step] = world.rows(SignInStep, alice)
    assert step.purpose == "totp" and enrolment.secret not in step.payload
    again = world.run(lambda f: f.totp_start(cookie, alice, None, world.now(), via="account"))
    assert again.secret != enrolment.secret and len(world.rows(SignInStep, alice)) == 1


@pytest.mark.parametrize("offset", [0, -30, 30, 29, -1])
def test_totp_confirm_accepts_a_code_of_now_or_one_step_either_side(
    world: World, offset: int
) -> None:
    alice = world.user()
    cookie = new_step_cookie()
    secret = world.run(
        lambda f: f.totp_start(cookie, alice, None, world.now(), via="account")
    ).secret
    code = totp_at(secret, world.now() + timedelta(seconds=offset))
    world.run(
        lambda f: f.totp_confirm(
            cookie, alice, code, via="account", session=None, ip=IP, user_agent=UA, now=world.now()
        )
    )
    [row] = world.rows(TotpCredential, alice)
    assert row.created_at == world.now()
    assert world.rows(SignInStep, alice) == []
    assert world.events("mfa.totp.add")[-1].outcome == "success"


@pytest.mark.parametrize("offset", [60, -60, 90, -31, 3600])
def test_totp_confirm_refuses_a_code_two_steps_away(world: World, offset: int) -> None:
    alice = world.user()
    cookie = new_step_cookie()
    secret = world.run(
        lambda f: f.totp_start(cookie, alice, None, world.now(), via="account")
    ).secret
    code = totp_at(secret, world.now() + timedelta(seconds=offset))
    if code in {totp_at(secret, world.now() + timedelta(seconds=s)) for s in (-30, 0, 30)}:
        pytest.skip("the codes of two steps happen to be equal")
    with pytest.raises(NotSignedIn):
        world.run(
            lambda f: f.totp_confirm(
                cookie,
                alice,
                code,
                via="account",
                session=None,
                ip=IP,
                user_agent=UA,
                now=world.now(),
            )
        )
    assert world.rows(TotpCredential) == []
    assert world.events("mfa.totp.add")[-1].outcome == "failure"
    assert world.failures(user_account_key(alice.id)) == 1
    assert len(world.rows(SignInStep, alice)) == 1  # may try again


def test_totp_confirm_needs_the_page_that_showed_the_secret(world: World) -> None:
    alice = world.user()
    cookie = new_step_cookie()
    secret = world.run(lambda f: f.totp_start(cookie, alice, None, world.now(), via="enrol")).secret

    def confirm(via: str) -> None:
        world.run(
            lambda f: f.totp_confirm(
                cookie,
                alice,
                totp_at(secret, world.now()),
                via=via,
                session=None,
                ip=IP,
                user_agent=UA,
                now=world.now(),
            )
        )

    with pytest.raises(Invalid):
        confirm("account")
    assert world.rows(TotpCredential) == []
    confirm("enrol")
    assert len(world.rows(TotpCredential, alice)) == 1


def test_totp_confirm_needs_this_users_unexpired_step(world: World) -> None:
    alice, mallory = world.user(), world.user()
    cookie = new_step_cookie()
    secret = world.run(
        lambda f: f.totp_start(cookie, alice, None, world.now(), via="account")
    ).secret
    for who, jar in ((mallory, cookie), (alice, new_step_cookie()), (alice, None)):
        with pytest.raises(Invalid):
            world.run(
                lambda f, who=who, jar=jar: f.totp_confirm(
                    jar,
                    who,
                    totp_at(secret, world.now()),
                    via="account",
                    session=None,
                    ip=IP,
                    user_agent=UA,
                    now=world.now(),
                )
            )
    world.h.clock.advance(seconds=STEP_LIFETIME)
    with pytest.raises(Invalid):
        world.run(
            lambda f: f.totp_confirm(
                cookie,
                alice,
                totp_at(secret, world.now()),
                via="account",
                session=None,
                ip=IP,
                user_agent=UA,
                now=world.now(),
            )
        )
    assert world.rows(TotpCredential) == []
    assert world.failures(user_account_key(alice.id)) == 0  # released: no code was checked


@pytest.mark.parametrize("code", ["12345", "1234567", "abcdef", "١٢٣٤٥٦", "12 34 5"])
def test_a_code_that_is_not_six_digits_is_invalid(world: World, code: str) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    with pytest.raises(Invalid):
        world.verify_code(alice, "totp", code)


def test_totp_secret_is_stored_sealed(world: World) -> None:
    alice = world.user()
    secret = world.enrol_totp(alice)
    [row] = world.rows(TotpCredential, alice)
    assert secret not in row.secret and secret.lower() not in row.secret.lower()
    blob = base64.b64decode(row.secret)
    assert secret.encode() not in blob and base64.b32decode(secret) not in blob
    assert len(blob) == 12 + len(secret) + 16  # nonce, AES-GCM ciphertext, tag
    assert world.run(lambda f: f._open(alice.id, row.secret)) == secret
    other = replace(world.settings, key_encryption_key=new_kek())
    with pytest.raises(FeatureDisabled):
        world.run(lambda f: f._open(alice.id, row.secret), settings=other)
    with pytest.raises(FeatureDisabled):  # bound to its user (AES-GCM associated data)
        world.run(lambda f: f._open(alice.id + 1, row.secret))


def test_a_totp_code_is_accepted_once(world: World) -> None:
    alice = world.user()
    secret = world.enrol_totp(alice)
    # The code that confirmed the app is used up: it cannot sign in.
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", totp_at(secret, world.now()))
    world.h.clock.advance(seconds=30)
    code = totp_at(secret, world.now())
    verified = world.verify_code(alice, "totp", code)
    assert verified.user.id == alice.id and verified.amr == "otp"
    assert verified.recovery_left is None
    assert level_of(combine_amr("pwd", verified.amr)) == Level.MFA
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", code)
    world.h.clock.advance(seconds=20)  # still in the window, still used
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", code)
    [row] = world.rows(TotpCredential, alice)
    assert row.last_step == int((world.now() - timedelta(seconds=20)).timestamp()) // 30


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_code_replayed_in_parallel_is_accepted_once(world: World) -> None:
    """Two requests that both read the app's last step before either used the code: the
    conditional UPDATE lets one through (RFC 6238 §5.2)."""
    alice = world.user()
    secret = world.enrol_totp(alice)
    world.h.clock.advance(seconds=30)
    code = totp_at(secret, world.now())
    with world.factors() as first:
        seen = first.db.get(TotpCredential, alice.id)  # read before the other, and kept
        assert seen is not None
        world.verify_code(alice, "totp", code)  # the other request, committed
        with pytest.raises(NotSignedIn):
            first.verify_code(alice.id, "totp", code, ip=IP, user_agent=UA, now=world.now())


def test_a_code_of_an_earlier_step_is_refused_after_a_later_one(world: World) -> None:
    alice = world.user()
    secret = world.enrol_totp(alice)
    world.h.clock.advance(seconds=90)
    earlier = totp_at(secret, world.now())
    later = totp_at(secret, world.now() + timedelta(seconds=30))
    world.verify_code(alice, "totp", later)
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", earlier)


def test_a_totp_code_with_spaces_or_full_width_digits_is_accepted(world: World) -> None:
    alice = world.user()
    secret = world.enrol_totp(alice)
    world.h.clock.advance(seconds=30)
    code = totp_at(secret, world.now())
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code)
    world.verify_code(alice, "totp", f" {wide[:3]} {wide[3:]} ")


def test_a_wrong_code_is_counted_and_the_limit_throttles(
    make_world: Callable[..., World],
) -> None:
    world = make_world(throttle_account_limit=3, throttle_ip_limit=1000)
    alice = world.user()
    secret = world.enrol_totp(alice)
    world.h.clock.advance(seconds=30)
    right = totp_at(secret, world.now())
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    for n in range(1, 4):
        with pytest.raises(NotSignedIn):
            world.verify_code(alice, "totp", wrong)
        assert world.failures(user_account_key(alice.id)) == n
        assert world.failures(ip_key(IP)) == n
    assert [r.event for r in world.written[-2:]] == ["mfa.totp.use", "lockout"]
    with pytest.raises(Throttled):  # even the right code
        world.verify_code(alice, "totp", right, ip="198.51.100.7")
    assert world.events("mfa.totp.use")[-1].outcome == "throttled"
    assert world.rows(TotpCredential, alice)[0].last_step < int(world.now().timestamp()) // 30
    world.h.clock.advance(seconds=world.settings.throttle_window)
    world.verify_code(alice, "totp", totp_at(secret, world.now()))
    assert world.failures(user_account_key(alice.id)) == 0


def test_wrong_codes_from_one_address_throttle_it(make_world: Callable[..., World]) -> None:
    world = make_world(throttle_account_limit=1000, throttle_ip_limit=3)
    users = [world.user() for _ in range(4)]
    secrets_ = [world.enrol_totp(u) for u in users]
    world.h.clock.advance(seconds=30)
    for user, secret in zip(users[:3], secrets_, strict=False):
        right = totp_at(secret, world.now())
        with pytest.raises(NotSignedIn):
            world.verify_code(user, "totp", f"{(int(right) + 1) % 1000000:06d}")
    with pytest.raises(Throttled):
        world.verify_code(users[3], "totp", totp_at(secrets_[3], world.now()))
    world.verify_code(users[3], "totp", totp_at(secrets_[3], world.now()), ip="198.51.100.7")


def test_verify_code_refuses_a_disabled_or_missing_user(world: World) -> None:
    alice = world.user()
    secret = world.enrol_totp(alice)
    world.h.clock.advance(seconds=30)
    world.set_disabled(alice)
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", totp_at(secret, world.now()))
    ghost = User(id=alice.id + 1000, username="ghost")
    with pytest.raises(NotSignedIn):
        world.verify_code(ghost, "totp", "123456")
    assert world.failures(user_account_key(alice.id)) == 0


@pytest.mark.parametrize(("method", "kind"), [(None, Invalid), ("", Invalid), ("sms", Invalid)])
def test_verify_code_knows_two_methods(
    world: World, method: str | None, kind: type[Exception]
) -> None:
    alice = world.user()
    with pytest.raises(kind):
        world.verify_code(alice, method, "123456")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_without_a_key_encryption_key_codes_are_switched_off(
    make_world: Callable[..., World],
) -> None:
    world = make_world(key_encryption_key="")
    alice = world.user()
    world.enrol_passkey(alice, SoftAuthenticator(origin=PUBLIC_URL))
    with pytest.raises(FeatureDisabled):
        world.run(
            lambda f: f.totp_start(new_step_cookie(), alice, None, world.now(), via="account")
        )
    with pytest.raises(FeatureDisabled):
        world.recovery_codes(alice)
    with pytest.raises(FeatureDisabled):
        world.verify_code(alice, "recovery", "abcd-efgh-jkmn-pqrs")
    assert world.rows(SignInStep, alice) == [] and world.rows(RecoveryCode) == []
    assert world.rows(TotpCredential) == []


# == recovery codes ====================================================================
def test_recovery_codes_are_ten_of_the_documented_form(world: World) -> None:
    import re

    alice = world.user()
    world.enrol_totp(alice)
    codes = world.recovery_codes(alice)
    assert len(codes) == RECOVERY_CODE_COUNT == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(RECOVERY_SHAPE, code) for code in codes), codes
    assert world.run(lambda f: f.summary(alice.id)).recovery_codes == 10
    assert world.events("mfa.recovery.new")[-1].outcome == "success"


def test_recovery_codes_are_stored_as_keyed_hashes_only(world: World) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    codes = world.recovery_codes(alice)
    rows = world.rows(RecoveryCode, alice)
    assert len(rows) == 10
    stored = " ".join(f"{r.code_hash} {r.user_id} {r.created_at}" for r in rows)
    for code in codes:
        bare = code.replace("-", "")
        assert code not in stored and bare not in stored
        assert hashlib.sha256(bare.encode()).hexdigest() not in stored  # keyed, not plain
        assert hashlib.sha256(code.encode()).hexdigest() not in stored
    # Under another key-encryption key the digests differ: the key is what protects them.
    other = replace(world.settings, key_encryption_key=new_kek())
    theirs = world.run(lambda f: f._recovery_digest(codes[0]), settings=other)
    assert theirs not in stored
    assert world.run(lambda f: f._recovery_digest(codes[0])) in stored


def test_a_recovery_code_is_used_once_and_tells_how_many_are_left(world: World) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    codes = world.recovery_codes(alice)
    verified = world.verify_code(alice, "recovery", codes[0])
    assert verified.user.id == alice.id and verified.recovery_left == 9
    # No RFC 8176 value of its own: it adds "mfa" to the password's "pwd".
    assert verified.amr == "mfa" and level_of(combine_amr("pwd", verified.amr)) == Level.MFA
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "recovery", codes[0])
    assert world.verify_code(alice, "recovery", codes[1]).recovery_left == 8
    uses = world.events("mfa.recovery.use")
    assert [(r.outcome, r.detail) for r in uses] == [
        ("success", "9 recovery codes left"),
        ("failure", ""),
        ("success", "8 recovery codes left"),
    ]
    assert len(world.rows(RecoveryCode, alice)) == 8


def test_a_recovery_code_of_another_user_is_refused(world: World) -> None:
    alice, bob = world.user(), world.user()
    world.enrol_totp(alice)
    world.enrol_totp(bob)
    codes = world.recovery_codes(bob)
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "recovery", codes[0])
    assert len(world.rows(RecoveryCode, bob)) == 10
    assert world.failures(user_account_key(alice.id)) == 1


def test_new_recovery_codes_invalidate_the_old_ones(world: World) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    old = world.recovery_codes(alice)
    new = world.recovery_codes(alice)
    assert not set(old) & set(new)
    for code in old[:3]:
        with pytest.raises(NotSignedIn):
            world.verify_code(alice, "recovery", code)
    assert world.verify_code(alice, "recovery", new[0]).recovery_left == 9


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


NORMALISATIONS: dict[str, Callable[[str], str]] = {
    "upper_case": str.upper,
    "spaces": lambda c: " " + c.replace("-", " ") + " ",
    "no_hyphens": lambda c: c.replace("-", ""),
    "full_width": _full_width,
    "full_width_upper_with_ideographic_spaces": lambda c: _full_width(c.upper()).replace(
        "\uff0d", "\u3000"
    ),
    "tabs": lambda c: c.replace("-", "\t"),
}


@pytest.mark.parametrize("form", NORMALISATIONS)
def test_a_recovery_code_is_accepted_as_typed(world: World, form: str) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    codes = world.recovery_codes(alice)
    typed = NORMALISATIONS[form](codes[4])
    assert typed != codes[4]
    assert world.verify_code(alice, "recovery", typed).recovery_left == 9
    with pytest.raises(NotSignedIn):  # the same code, used up whatever its form
        world.verify_code(alice, "recovery", codes[4])


@pytest.mark.parametrize(
    ("typed", "kind"),
    [("", Missing), (None, Missing), ("x" * 65, WrongLength), ("abcd", NotSignedIn)],
)
def test_a_malformed_recovery_code_is_refused(
    world: World, typed: str | None, kind: type[Exception]
) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    world.recovery_codes(alice)
    with pytest.raises(kind):
        world.verify_code(alice, "recovery", typed)
    assert len(world.rows(RecoveryCode, alice)) == 10


def test_recovery_codes_need_a_factor_first(world: World) -> None:
    alice = world.user()
    with pytest.raises(Invalid):
        world.recovery_codes(alice)
    assert world.rows(RecoveryCode) == []


def test_recovery_codes_go_with_the_last_factor(world: World) -> None:
    alice = world.user()
    keys = SoftAuthenticator(origin=PUBLIC_URL)
    passkey = world.enrol_passkey(alice, keys)
    world.enrol_totp(alice)
    codes = world.recovery_codes(alice)
    fresh = world.session(alice, 10)
    world.run(lambda f: f.remove_totp(alice, fresh, ip=IP, user_agent=UA, now=world.now()))
    assert len(world.rows(RecoveryCode, alice)) == 10  # the passkey is still there
    world.run(
        lambda f: f.remove_passkey(alice, passkey.id, fresh, ip=IP, user_agent=UA, now=world.now())
    )
    assert world.rows(RecoveryCode, alice) == []
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "recovery", codes[0])
    assert world.run(lambda f: f.summary(alice.id)).methods() == []


# == policy ============================================================================
@pytest.mark.parametrize(
    ("policy", "level"),
    [("optional", Level.PASSWORD), ("mfa", Level.MFA), ("passkey", Level.PASSKEY)],
)
def test_the_servers_policy_is_every_users_level(
    make_world: Callable[..., World], policy: str, level: Level
) -> None:
    world = make_world(mfa_policy=policy)
    alice = world.user()
    assert world.run(lambda f: f.sign_in_level(alice.id)) == level
    world.enrol_totp(alice)
    assert world.run(lambda f: f.sign_in_level(alice.id)) == max(level, Level.MFA)


def test_a_user_with_a_factor_owes_it(world: World) -> None:
    alice, bob = world.user(), world.user()
    world.enrol_passkey(alice, SoftAuthenticator(origin=PUBLIC_URL))
    assert world.run(lambda f: f.sign_in_level(alice.id)) == Level.MFA
    assert world.run(lambda f: f.sign_in_level(bob.id)) == Level.PASSWORD


def test_a_member_of_a_group_requiring_mfa_owes_a_factor(world: World) -> None:
    alice, bob = world.user(), world.user()
    with world.services.db.session(write=True) as db, db.begin():
        strict = directory.create_group(db, "Strict")
        strict.require_mfa = True
        lax = directory.create_group(db, "Lax")
        directory.add_member(db, strict, directory.get_user(db, alice.username))
        directory.add_member(db, lax, directory.get_user(db, bob.username))
    assert world.run(lambda f: f.sign_in_level(alice.id)) == Level.MFA
    assert world.run(lambda f: f.sign_in_level(bob.id)) == Level.PASSWORD


@pytest.mark.parametrize("admin_mfa", [True, False])
def test_holders_of_passport_rights_owe_a_factor_under_admin_mfa(
    make_world: Callable[..., World], admin_mfa: bool
) -> None:
    world = make_world(admin_mfa=admin_mfa)
    direct, member, plain = world.user(), world.user(), world.user()
    with world.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        right = directory.find_permission(db, passport, "users:read")
        assert right is not None
        directory.grant(db, right, user=directory.get_user(db, direct.username))
        staff = directory.create_group(db, "Staff")
        directory.add_member(db, staff, directory.get_user(db, member.username))
        directory.grant(db, right, group=staff)
    expected = Level.MFA if admin_mfa else Level.PASSWORD
    assert world.run(lambda f: f.sign_in_level(direct.id)) == expected
    assert world.run(lambda f: f.sign_in_level(member.id)) == expected
    assert world.run(lambda f: f.sign_in_level(plain.id)) == Level.PASSWORD


def _summary(passkeys: int = 0, totp: bool = False, codes: int = 0) -> FactorSummary:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    views = [PasskeyView(n, "k", now, None, False, "") for n in range(passkeys)]
    return FactorSummary(views, totp, now if totp else None, codes)


NEEDED = [
    # (passkeys, totp, codes, amr, level, needed)
    (0, False, 0, "pwd", Level.PASSWORD, ""),
    (0, False, 0, "pwd", Level.MFA, "enrol"),
    (0, False, 10, "pwd", Level.MFA, "enrol"),  # codes alone are no factor
    (0, True, 0, "pwd", Level.MFA, "verify"),
    (0, True, 0, "pwd", Level.PASSKEY, "verify"),  # the factor they have, first
    (0, True, 10, "pwd", Level.PASSKEY, "verify"),
    (0, False, 10, "pwd", Level.PASSKEY, "enrol"),  # codes alone are no factor
    (1, False, 0, "pwd", Level.PASSKEY, "verify"),
    (1, False, 0, "pwd", Level.MFA, "verify"),
    (0, True, 0, "pwd otp mfa", Level.MFA, ""),
    (0, True, 0, "pwd otp mfa", Level.PASSKEY, "enrol"),
    (1, True, 0, "pwd otp mfa", Level.PASSKEY, "verify"),
    (1, False, 0, "hwk mfa", Level.PASSKEY, ""),
    (1, False, 0, "swk", Level.PASSKEY, ""),
    (0, False, 0, None, Level.PASSWORD, ""),
    (0, True, 0, None, Level.MFA, "verify"),
]


@pytest.mark.parametrize(("passkeys", "totp", "codes", "amr", "level", "expected"), NEEDED)
def test_needed(
    passkeys: int, totp: bool, codes: int, amr: str | None, level: Level, expected: str
) -> None:
    assert needed(_summary(passkeys, totp, codes), amr, level) == expected


@pytest.mark.parametrize(
    ("amr", "level", "acr"),
    [
        (None, Level.PASSWORD, "urn:passport:acr:password"),
        ("", Level.PASSWORD, "urn:passport:acr:password"),
        ("pwd", Level.PASSWORD, "urn:passport:acr:password"),
        ("pwd otp", Level.PASSWORD, "urn:passport:acr:password"),
        ("pwd otp mfa", Level.MFA, "urn:passport:acr:mfa"),
        ("pwd mfa", Level.MFA, "urn:passport:acr:mfa"),
        ("hwk mfa", Level.PASSKEY, "phr"),
        ("swk", Level.PASSKEY, "phr"),
        ("pwd hwk mfa", Level.PASSKEY, "phr"),
    ],
)
def test_level_and_acr_of_an_amr(amr: str | None, level: Level, acr: str) -> None:
    assert level_of(amr) == level and acr_of(amr) == acr == ACR[level]


@pytest.mark.parametrize(
    ("acr_values", "level"),
    [
        (None, None),
        ("", None),
        ("phr", Level.PASSKEY),
        ("urn:passport:acr:mfa phr", Level.MFA),
        ("unknown urn:passport:acr:password phr", Level.PASSWORD),
        ("PHR urn:passport:acr:MFA", None),  # values are case-sensitive
        ("  phr  ", Level.PASSKEY),
        ("phrx", None),
    ],
)
def test_requested_level_is_the_first_known_value(
    acr_values: str | None, level: Level | None
) -> None:
    assert requested_level(acr_values) == level


KNOWN_ACR = st.sampled_from(list(ACR.values()))


@given(st.lists(st.text(max_size=30), max_size=6))
def test_requested_level_of_any_text_never_raises_and_ignores_unknown_values(
    words: list[str],
) -> None:
    unknown = [w for w in " ".join(words).split() if w not in ACR.values()]
    assert requested_level(" ".join(unknown)) is None
    assert requested_level(" ".join(words)) in (None, *Level)


@given(st.lists(st.text(max_size=12), max_size=4), KNOWN_ACR, st.lists(st.text(max_size=12)))
def test_requested_level_skips_unknown_values_before_a_known_one(
    before: list[str], known: str, after: list[str]
) -> None:
    noise = [w for w in " ".join(before).split() if w not in ACR.values()]
    expected = next(level for level, name in ACR.items() if name == known)
    assert requested_level(" ".join([*noise, known, *after])) == expected


@pytest.mark.parametrize("server", ["optional", "mfa", "passkey"])
def test_policy_level(server: str) -> None:
    settings = Settings(mfa_policy=server)
    assert policy_level(settings, "default") == POLICIES[server]
    assert policy_level(settings, "") == POLICIES[server]
    assert policy_level(settings, "nonsense") == POLICIES[server]
    for name, level in POLICIES.items():
        assert policy_level(settings, name) == level


@pytest.mark.parametrize(
    ("server", "policy", "acr_values", "level"),
    [
        ("optional", "default", None, Level.PASSWORD),
        ("mfa", "default", None, Level.MFA),
        ("optional", "passkey", None, Level.PASSKEY),
        ("optional", "default", "phr", Level.PASSKEY),
        ("passkey", "default", "urn:passport:acr:password", Level.PASSKEY),  # never lower
        ("optional", "mfa", "unknown urn:passport:acr:password phr", Level.MFA),
    ],
)
def test_application_level(server: str, policy: str, acr_values: str | None, level: Level) -> None:
    from passport.services.factors import application_level

    assert application_level(Settings(mfa_policy=server), policy, acr_values) == level


def test_required_level_is_the_higher_of_the_user_and_the_application(world: World) -> None:
    alice, bob = world.user(), world.user()
    world.enrol_totp(alice)
    assert world.run(lambda f: f.required_level(alice.id, "default", None)) == Level.MFA
    assert world.run(lambda f: f.required_level(bob.id, "default", None)) == Level.PASSWORD
    assert world.run(lambda f: f.required_level(bob.id, "mfa", None)) == Level.MFA
    assert world.run(lambda f: f.required_level(alice.id, "default", "phr")) == Level.PASSKEY


@pytest.mark.parametrize(
    ("raw", "value"),
    [("default", "default"), (" MFA ", "mfa"), ("Passkey", "passkey"), ("optional", "optional")],
)
def test_validate_policy_accepts_the_policies(raw: str, value: str) -> None:
    assert validate_policy(raw) == value


@given(st.one_of(st.none(), st.text(max_size=80)))
def test_validate_policy_of_any_text_is_a_policy_or_invalid(raw: str | None) -> None:
    try:
        value = validate_policy(raw)
    except Invalid as refused:
        assert refused.source == "mfaPolicy"
        assert len(str(refused.value)) <= 32
    else:
        assert value in APPLICATION_POLICIES


AMR_VALUES = st.sampled_from(["pwd", "otp", "hwk", "swk", "mfa"])
AMR_PARTS = st.lists(
    st.lists(AMR_VALUES | st.text(alphabet="abcdefxyz", min_size=1, max_size=4), max_size=4).map(
        " ".join
    ),
    max_size=4,
)


@given(AMR_PARTS)
def test_combine_amr_is_idempotent(parts: list[str]) -> None:
    once = combine_amr(*parts)
    assert combine_amr(once) == once
    assert combine_amr(once, once) == once
    assert combine_amr(*parts, *parts) == once


@given(AMR_PARTS, st.randoms(use_true_random=False))
def test_combine_amr_does_not_depend_on_order(parts: list[str], rnd: Any) -> None:
    shuffled = [" ".join(rnd.sample(p.split(), len(p.split()))) for p in parts]
    rnd.shuffle(shuffled)
    assert combine_amr(*shuffled) == combine_amr(*parts)


@given(AMR_PARTS)
def test_combine_amr_adds_mfa_iff_more_than_one_factor(parts: list[str]) -> None:
    given_values = {v for p in parts for v in p.split()}
    factors = given_values & {"pwd", "otp", "hwk", "swk"}
    result = combine_amr(*parts).split()
    assert set(result) == factors | ({"mfa"} if "mfa" in result else set())
    assert ("mfa" in result) == (len(factors) > 1 or "mfa" in given_values)
    assert result == [v for v in ("pwd", "otp", "hwk", "swk", "mfa") if v in result]


def test_combine_amr_ignores_unknown_values() -> None:
    assert combine_amr("pwd", "sms") == "pwd"
    assert level_of(combine_amr("pwd", "sms")) == Level.PASSWORD


# == recent sign-in ====================================================================
def test_removing_a_factor_needs_a_recent_sign_in(world: World) -> None:
    alice = world.user()
    passkey = world.enrol_passkey(alice, SoftAuthenticator(origin=PUBLIC_URL))
    world.enrol_totp(alice)
    window = world.settings.reauthentication_window
    old = world.session(alice, window + 1)
    with pytest.raises(Forbidden) as refused:
        world.run(lambda f: f.remove_totp(alice, old, ip=IP, user_agent=UA, now=world.now()))
    assert refused.value.value == "reauthenticate"
    with pytest.raises(Forbidden):
        world.run(
            lambda f: f.remove_passkey(
                alice, passkey.id, old, ip=IP, user_agent=UA, now=world.now()
            )
        )
    with pytest.raises(Forbidden):
        world.run(
            lambda f: f.new_recovery_codes(
                alice, ip=IP, user_agent=UA, now=world.now(), session=old
            )
        )
    with pytest.raises(Forbidden):
        world.run(lambda f: f.totp_start(new_step_cookie(), alice, old, world.now(), via="account"))
    summary = world.run(lambda f: f.summary(alice.id))
    assert summary.totp and len(summary.passkeys) == 1 and summary.recovery_codes == 0

    recent = world.session(alice, window)
    world.run(lambda f: f.remove_totp(alice, recent, ip=IP, user_agent=UA, now=world.now()))
    world.run(
        lambda f: f.remove_passkey(alice, passkey.id, recent, ip=IP, user_agent=UA, now=world.now())
    )
    assert world.run(lambda f: f.summary(alice.id)).methods() == []


def test_adding_a_factor_needs_a_recent_sign_in(
    world: World, authenticator: SoftAuthenticator
) -> None:
    alice = world.user()
    window = world.settings.reauthentication_window
    recent = world.session(alice, 0)
    cookie, options = world.registration(alice, session=recent)
    world.h.clock.advance(seconds=window + 1)
    with pytest.raises(Forbidden):  # the challenge was fetched in time, the answer not
        world.add_passkey(alice, cookie, authenticator.create(options), session=recent)
    with pytest.raises(Forbidden):
        world.registration(alice, session=recent)
    assert world.rows(WebAuthnCredential) == []

    fresh = world.session(alice, 0)
    totp_cookie = new_step_cookie()
    secret = world.run(
        lambda f: f.totp_start(totp_cookie, alice, fresh, world.now(), via="account")
    ).secret
    world.h.clock.advance(seconds=window + 1)
    with pytest.raises(Forbidden):
        world.run(
            lambda f: f.totp_confirm(
                totp_cookie,
                alice,
                totp_at(secret, world.now()),
                via="account",
                session=fresh,
                ip=IP,
                user_agent=UA,
                now=world.now(),
            )
        )
    assert world.rows(TotpCredential) == []


def test_a_session_grows_old_with_the_clock(world: World) -> None:
    alice = world.user()
    world.enrol_totp(alice)
    session = world.session(alice, 0)
    world.h.clock.advance(seconds=world.settings.reauthentication_window + 1)
    with pytest.raises(Forbidden):
        world.run(lambda f: f.remove_totp(alice, session, ip=IP, user_agent=UA, now=world.now()))
    assert len(world.rows(TotpCredential, alice)) == 1


def test_a_passkey_of_another_user_cannot_be_removed_or_renamed(world: World) -> None:
    alice, bob = world.user(), world.user()
    passkey = world.enrol_passkey(alice, SoftAuthenticator(origin=PUBLIC_URL))
    from passport.errors import NotFound

    for ref in (passkey.id, str(passkey.id), "0", "-1", "x", "9" * 30, "1e3"):
        with pytest.raises(NotFound):
            world.run(
                lambda f, ref=ref: f.remove_passkey(
                    bob, ref, world.session(bob, 0), ip=IP, user_agent=UA, now=world.now()
                )
            )
        with pytest.raises(NotFound):
            world.run(lambda f, ref=ref: f.rename_passkey(bob, ref, "mine", world.now()))
    assert world.rows(WebAuthnCredential, alice)[0].name == "My key"


# == audit =============================================================================
def test_every_factor_event_is_audited_without_a_secret(world: World) -> None:
    alice = world.user()
    keys = SoftAuthenticator(origin=PUBLIC_URL)
    fresh = world.session(alice, 0)
    passkey = world.enrol_passkey(alice, keys)
    world.sign_in_passkey(keys)
    with pytest.raises(NotSignedIn):
        world.sign_in_passkey(keys, origin="https://evil.example")

    cookie = new_step_cookie()
    secret = world.run(
        lambda f: f.totp_start(cookie, alice, fresh, world.now(), via="account")
    ).secret
    typed = [totp_at(secret, world.now() + timedelta(seconds=120))]
    with pytest.raises(NotSignedIn):
        world.run(
            lambda f: f.totp_confirm(
                cookie,
                alice,
                typed[0],
                via="account",
                session=None,
                ip=IP,
                user_agent=UA,
                now=world.now(),
            )
        )
    typed.append(totp_at(secret, world.now()))
    world.run(
        lambda f: f.totp_confirm(
            cookie,
            alice,
            typed[-1],
            via="account",
            session=None,
            ip=IP,
            user_agent=UA,
            now=world.now(),
        )
    )
    world.h.clock.advance(seconds=30)
    typed.append(totp_at(secret, world.now()))
    world.verify_code(alice, "totp", typed[-1])
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "totp", typed[-1])

    codes = world.recovery_codes(alice)
    world.verify_code(alice, "recovery", codes[0])
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "recovery", codes[0])
    with pytest.raises(NotSignedIn):
        world.verify_code(alice, "recovery", "2345-6789-abcd-efgh")
    typed.append("2345-6789-abcd-efgh")
    world.run(lambda f: f.remove_totp(alice, fresh, ip=IP, user_agent=UA, now=world.now()))
    world.run(
        lambda f: f.remove_passkey(alice, passkey.id, fresh, ip=IP, user_agent=UA, now=world.now())
    )

    seen = [(r.event, r.outcome) for r in world.written]
    assert seen == [
        ("mfa.passkey.add", "success"),
        ("mfa.passkey.use", "success"),
        ("mfa.passkey.use", "failure"),
        ("mfa.totp.add", "failure"),
        ("mfa.totp.add", "success"),
        ("mfa.totp.use", "success"),
        ("mfa.totp.use", "failure"),
        ("mfa.recovery.new", "success"),
        ("mfa.recovery.use", "success"),
        ("mfa.recovery.use", "failure"),
        ("mfa.recovery.use", "failure"),
        ("mfa.totp.remove", "success"),
        ("mfa.passkey.remove", "success"),
    ]
    assert all(r.user_id == alice.id and r.ip == IP for r in world.written)
    with world.services.db.session() as db:
        table = [
            (e.event, e.outcome, e.detail, e.username, e.user_agent, e.application)
            for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    assert [(event, outcome) for event, outcome, *_ in table] == seen
    secrets_ = [secret, secret.lower(), *typed, *codes, *(c.replace("-", "") for c in codes)]
    texts = [" ".join(str(x) for x in row) for row in table]
    texts += [f"{r.event} {r.detail} {r.username} {r.user_agent}" for r in world.written]
    for text in texts:
        for value in secrets_:
            assert value not in text, (value, text)


# == reset =============================================================================
def test_reset_removes_every_factor_of_one_user_only(world: World) -> None:
    alice, bob = world.user(), world.user()
    for who in (alice, bob):
        world.enrol_passkey(who, SoftAuthenticator(origin=PUBLIC_URL))
        world.enrol_passkey(who, SoftAuthenticator(origin=PUBLIC_URL))
        world.enrol_totp(who)
        world.recovery_codes(who)
        world.registration(who)  # a step in progress
    assert world.run(lambda f: f.reset(alice.id)) == 3
    for model in (WebAuthnCredential, TotpCredential, RecoveryCode, SignInStep):
        assert world.rows(model, alice) == [], model
    summary = world.run(lambda f: f.summary(bob.id))
    assert len(summary.passkeys) == 2 and summary.totp and summary.recovery_codes == 10
    assert len(world.rows(SignInStep, bob)) == 1
    assert world.run(lambda f: f.sign_in_level(alice.id)) == Level.PASSWORD
    assert world.run(lambda f: f.reset(alice.id)) == 0


# == hostile input =====================================================================
@given(st.one_of(st.none(), st.text(max_size=100)))
@example("\u00af")  # NFKC: " \u0304", a leading space once normalised
@example("\u3000 Key \u2003")
def test_any_passkey_name_is_a_name_or_a_client_error(raw: str | None) -> None:
    from passport.services.factors import validate_passkey_name

    try:
        name = validate_passkey_name(raw)
    except ClientError:
        return
    assert 0 < len(name) <= 64 and name == name.strip()


@pytest.mark.parametrize("name", ["a\x00b", "\u202egnp.exe", "x\ny", "<script>" * 10])
def test_a_passkey_name_with_control_characters_or_too_long_is_refused(name: str) -> None:
    from passport.services.factors import validate_passkey_name

    with pytest.raises(ClientError):
        validate_passkey_name(name)


@pytest.mark.parametrize("backend", ["sqlite"])
@hsettings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["totp", "recovery"]),
    code=st.one_of(
        st.none(),
        st.text(max_size=80),
        st.text(alphabet="0123456789 \uff10\uff11-", max_size=12),
        st.just("' OR 1=1 --"),
    ),
)
def test_any_typed_code_is_a_client_error(world: World, method: str, code: str | None) -> None:
    if not hasattr(world, "alice"):
        world.alice = world.user()  # type: ignore[attr-defined]
        world.enrol_totp(world.alice)  # type: ignore[attr-defined]
        world.recovery_codes(world.alice)  # type: ignore[attr-defined]
    with pytest.raises(ClientError):  # Missing, Invalid, WrongLength, NotSignedIn, Throttled
        world.verify_code(world.alice, method, code)  # type: ignore[attr-defined]
    assert len(world.rows(RecoveryCode)) == 10


def test_a_pasted_recovery_code_with_a_line_break_or_a_unicode_dash_is_the_same_code() -> None:
    assert normalise_recovery_code("ABCD\u2010efgh\u2013 2345 6789\r\n") == "abcdefgh23456789"


def test_a_session_that_did_not_prove_a_factor_the_user_has_changes_none(world: World) -> None:
    """A recent password session of a user who has a factor (signed in before it was
    added): no removal, no new recovery codes, no passkey challenge."""
    alice = world.user()
    world.enrol_totp(alice)
    stale = world.session(alice, 10, amr="pwd")
    for change in (
        lambda f: f.remove_totp(alice, stale, ip=IP, user_agent=UA, now=world.now()),
        lambda f: f.new_recovery_codes(alice, ip=IP, user_agent=UA, now=world.now(), session=stale),
    ):
        with pytest.raises(Forbidden):
            world.run(change)
    assert len(world.rows(TotpCredential, alice)) == 1
