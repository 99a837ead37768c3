"""Rules of multi-factor sign-in that an attacker who knows only a password, or holds an
old session, would try to get around (services/factors.py, pages/second_factor.py):
each test is the attack, on the real pages and a migrated database."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pyotp
from sqlalchemy import select

from oidc_support import PASSWORD
from oidc_support import authorize
from oidc_support import ids
from oidc_support import query
from oidc_support import rows
from oidc_support import wiki_request
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import RecoveryCode
from webauthn_support import SoftAuthenticator

from support import Harness
from support import PassportClient

WINDOW = 900  # reauthentication_window's default


def csrf_of(client: PassportClient) -> str:
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def signed_in(h: Harness) -> PassportClient:
    client = h.new_client()
    answer = client.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return client


def enrol_totp(h: Harness, client: PassportClient) -> str:
    """Alice adds an authenticator app on her account page; returns its secret."""
    token = csrf_of(client)
    page = client.post("/account", data={"csrf": token, "action": "totp-start"})
    found = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.get_data(as_text=True))
    assert found is not None, page.get_data(as_text=True)
    secret = found.group(1)
    code = pyotp.TOTP(secret).at(h.clock())
    done = client.post("/account", data={"csrf": token, "action": "totp-confirm", "code": code})
    assert "authenticator app was added" in done.get_data(as_text=True)
    h.clock.advance(seconds=30)  # the confirming code is used
    return secret


def add_passkey(h: Harness, client: PassportClient) -> SoftAuthenticator:
    token = csrf_of(client)
    options = client.post("/webauthn/options", data={"csrf": token, "purpose": "register"})
    assert options.status_code == 200, options.get_data(as_text=True)
    authenticator = SoftAuthenticator(origin=h.settings.relying_party_origins[0])
    answer = client.post(
        "/account",
        data={
            "csrf": token,
            "action": "passkey-add",
            "credential": authenticator.create(options.get_data(as_text=True)),
        },
    )
    assert "Your passkey was added" in answer.get_data(as_text=True)
    return authenticator


def code_hashes(h: Harness) -> set[str]:
    with h.app.services.db.session() as db:
        return set(db.scalars(select(RecoveryCode.code_hash)))


def test_a_password_alone_cannot_enrol_a_passkey_on_an_account_with_an_authenticator_app(
    h: Harness,
) -> None:
    """``acr_values=phr`` asks for a passkey that Alice does not have: whoever has only her
    password must first prove the authenticator app she has, never enrol their own
    passkey and take her recovery codes."""
    secret = enrol_totp(h, signed_in(h))
    before = code_hashes(h)
    attacker = h.new_client()
    asked = authorize(h, attacker, **wiki_request(h, acr_values="phr"))
    handle = query(asked)["authorization"]
    token = csrf_of(attacker)
    typed = attacker.post(
        "/login",
        data={"csrf": token, "authorization": handle, "username": "alice", "password": PASSWORD},
    )
    assert typed.headers["Location"].startswith("/login/verify?"), typed.headers["Location"]
    enrol = attacker.get("/login/enrol?authorization=" + handle)
    assert enrol.status_code == 302 and enrol.headers["Location"].startswith("/login/verify?")
    options = attacker.post(
        "/webauthn/options", data={"csrf": token, "purpose": "enrol", "authorization": handle}
    )
    assert options.status_code == 403
    verify = attacker.get("/login/verify?authorization=" + handle).get_data(as_text=True)
    assert 'value="totp"' in verify  # the factor she has is what is asked
    assert rows(h, "webauthn_credentials") == 0
    # With the code (Alice herself), the passkey may be enrolled next; her codes stay.
    code = pyotp.TOTP(secret).at(h.clock())
    proved = attacker.post(
        "/login/verify",
        data={"csrf": token, "authorization": handle, "method": "totp", "code": code},
    )
    assert proved.status_code == 302, proved.get_data(as_text=True)
    # Still half-way (a passkey is owed): on to enrol one, no session yet.
    assert proved.headers["Location"].startswith("/login/enrol?")
    assert attacker.get("/Account/status").get_json()["LoggedIn"] is False
    options = attacker.post(
        "/webauthn/options", data={"csrf": token, "purpose": "enrol", "authorization": handle}
    )
    assert options.status_code == 200, options.get_data(as_text=True)
    authenticator = SoftAuthenticator(origin=h.settings.relying_party_origins[0])
    added = attacker.post(
        "/login/enrol",
        data={
            "csrf": token,
            "authorization": handle,
            "action": "passkey",
            "credential": authenticator.create(options.get_data(as_text=True)),
        },
    )
    assert added.status_code == 302, added.get_data(as_text=True)
    assert added.headers["Location"].startswith("/consent?")  # then on to the application
    assert code_hashes(h) == before  # not replaced, not shown


def test_device_approval_steps_up_for_an_application_that_requires_a_second_factor(
    h: Harness,
) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        app.device_grant, app.mfa_policy = True, "mfa"
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    started = h.client.post(
        "/oauth2/device_authorization",
        data={"scope": "openid"},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert started.status_code == 200, started.get_data(as_text=True)
    user_code = json.loads(started.get_data(as_text=True))["user_code"]
    from enrolled_support import enrol_totp as give_totp

    user = signed_in(h)  # a password session; then Alice gets a factor (not ending it)
    give_totp(h, "alice")
    token = csrf_of(user)
    answer = user.post("/device", data={"csrf": token, "user_code": user_code})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert answer.headers["Location"].startswith("/login/verify?next=%2Fdevice")


def test_the_account_page_adds_a_passkey_only_with_a_recent_sign_in_of_its_own(
    h: Harness,
) -> None:
    """An old session plus the password (a half-way sign-in in the same browser) is not a
    recent sign-in: no registration challenge for the account page, none for enrolment
    either while the authenticator app is unproved."""
    client = signed_in(h)
    enrol_totp(h, client)
    h.clock.advance(seconds=WINDOW + 60)
    token = csrf_of(client)
    typed = client.post("/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    assert typed.headers["Location"].startswith("/login/verify?")
    for purpose in ("register", "enrol"):
        options = client.post("/webauthn/options", data={"csrf": token, "purpose": purpose})
        assert options.status_code == 403, (purpose, options.get_data(as_text=True))
    assert rows(h, "webauthn_credentials") == 0


def test_administering_needs_the_second_factor_a_sign_in_owes_now(factory: Any) -> None:
    """With ``admin_mfa``, a session from before its holder was given a Passport right
    cannot administer until it proves a second factor."""
    from oidc_support import KEK
    from oidc_support import seed

    h = factory("sqlite", "db", key_encryption_key=KEK, admin_mfa=True)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    client = signed_in(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        alice = directory.find_user(db, "alice")
        assert passport is not None and alice is not None
        permission = directory.find_permission(db, passport, "admin")
        assert permission is not None
        directory.grant(db, permission, user=alice)
    answer = client.get("/Users/list")
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.get_json()["ClientExceptions"][0]["Number"] == "8"


def test_changing_the_password_ends_sign_ins_waiting_for_their_second_factor(
    h: Harness,
) -> None:
    owner = signed_in(h)
    secret = enrol_totp(h, owner)
    attacker = h.new_client()
    token = csrf_of(attacker)
    typed = attacker.post("/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    assert typed.headers["Location"].startswith("/login/verify?")
    changed = owner.post(
        "/Account/changePassword",
        data={"oldPassword": PASSWORD, "newPassword": "a brand new passphrase 42"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    code = pyotp.TOTP(secret).at(h.clock())
    late = attacker.post(
        "/login/verify", data={"csrf": token, "method": "totp", "code": code, "next": "/account"}
    )
    assert late.status_code == 400
    assert attacker.get("/Account/status").get_json()["LoggedIn"] is False


def test_a_registration_with_odd_transports_is_kept_without_them(h: Harness) -> None:
    client = signed_in(h)
    token = csrf_of(client)
    options = client.post("/webauthn/options", data={"csrf": token, "purpose": "register"})
    credential = json.loads(
        SoftAuthenticator(origin=h.settings.relying_party_origins[0]).create(
            options.get_data(as_text=True)
        )
    )
    credential["response"]["transports"] = [{"a": 1}, "usb", 7]
    answer = client.post(
        "/account",
        data={"csrf": token, "action": "passkey-add", "credential": json.dumps(credential)},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert rows(h, "webauthn_credentials") == 1


def test_a_recovery_code_through_the_api_is_a_second_factor(h: Harness) -> None:
    client = signed_in(h)
    enrol_totp(h, client)
    token = csrf_of(client)
    page = client.post("/account", data={"csrf": token, "action": "recovery-new"})
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", page.get_data(as_text=True))
    assert len(codes) == 10
    answer = h.new_client().post(
        "/Account/login",
        data={"username": "alice", "password": PASSWORD, "method": "recovery", "code": codes[0]},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data = answer.get_json()["Data"]
    assert data["Amr"] == ["pwd", "mfa"] and data["RecoveryCodesLeft"] == 9


def test_wrong_passwords_do_not_lock_the_owner_out_of_their_passkey(h: Harness) -> None:
    authenticator = add_passkey(h, signed_in(h))
    stranger = h.new_client()
    for _ in range(h.settings.throttle_account_limit + 1):
        stranger.post("/Account/login", data={"username": "alice", "password": "wrong guess"})
    locked = stranger.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    owner = h.new_client()
    token = csrf_of(owner)
    options = owner.post("/webauthn/options", data={"csrf": token, "purpose": "signin"})
    answer = owner.post(
        "/login",
        data={
            "csrf": token,
            "credential": authenticator.get(options.get_data(as_text=True)),
            "next": "/account",
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert owner.get("/Account/status").get_json()["Data"]["Amr"] == ["hwk", "mfa"]


def test_jwt_access_tokens_say_how_the_user_signed_in(h: Harness) -> None:
    """RFC 9068 §2.2.1: ``auth_time``, ``acr`` and ``amr`` in a JWT access token, so that a
    resource server can ask its callers for a second factor too."""
    from oidc_support import exchange
    from oidc_support import get_code

    issued = exchange(h, get_code(h)).get_json()
    payload = issued["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:passport:acr:password"
    assert isinstance(claims["auth_time"], int)


# -- the second review --------------------------------------------------------------------


def test_a_first_factor_ends_the_password_sessions_from_before_it(h: Harness) -> None:
    """Whoever signed in with the password alone before Alice's first factor is signed
    out when she adds it (as at a password change): that session cannot go on to add its
    own passkey or take the recovery codes."""
    stale = signed_in(h)
    owner = signed_in(h)
    enrol_totp(h, owner)
    assert stale.get("/Account/status").get_json()["LoggedIn"] is False
    assert owner.get("/Account/status").get_json()["LoggedIn"] is True


def test_a_session_that_did_not_prove_the_users_factor_changes_no_factor(h: Harness) -> None:
    """A password session of a user who has a factor (given without the account page,
    so nothing ended it): recent, but no factor change — not new recovery codes, not a
    passkey challenge, not a removal."""
    from enrolled_support import enrol_totp as give_totp

    stale = signed_in(h)
    give_totp(h, "alice")
    token = csrf_of(stale)
    for data in ({"action": "recovery-new"}, {"action": "totp-remove"}):
        answer = stale.post("/account", data={"csrf": token, **data})
        assert answer.status_code == 403, (data, answer.get_data(as_text=True)[:300])
    options = stale.post("/webauthn/options", data={"csrf": token, "purpose": "register"})
    assert options.status_code == 403
    assert rows(h, "recovery_codes") == 0 and rows(h, "totp_credentials") == 1


def test_passports_own_policy_holds_for_its_own_sign_ins(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        passport.mfa_policy = "mfa"
    client = h.new_client()
    token = csrf_of(client)
    typed = client.post("/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    assert typed.headers["Location"].startswith("/login/enrol?"), typed.headers["Location"]


def test_a_sign_in_owing_a_passkey_enrols_one_after_the_app_code_before_any_session(
    factory: Any,
) -> None:
    from oidc_support import KEK
    from oidc_support import seed

    h = factory("sqlite", "db", key_encryption_key=KEK, mfa_policy="passkey")
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    from enrolled_support import enrol_totp as give_totp

    secret = give_totp(h, "alice")
    client = h.new_client()
    token = csrf_of(client)
    typed = client.post("/login", data={"csrf": token, "username": "alice", "password": PASSWORD})
    assert typed.headers["Location"].startswith("/login/verify?")
    h.clock.advance(seconds=30)
    proved = client.post(
        "/login/verify",
        data={
            "csrf": token,
            "next": "/account",
            "method": "totp",
            "code": pyotp.TOTP(secret).at(h.clock()),
        },
    )
    assert proved.status_code == 302, proved.get_data(as_text=True)[:300]
    assert proved.headers["Location"].startswith("/login/enrol?")
    assert client.get("/Account/status").get_json()["LoggedIn"] is False


def test_enrolling_from_an_old_session_signs_in_again_first(h: Harness) -> None:
    client = signed_in(h)
    h.clock.advance(seconds=WINDOW + 60)
    asked = authorize(h, client, **wiki_request(h, acr_values="urn:passport:acr:mfa"))
    handle = query(asked)["authorization"]
    enrol = client.get("/login/enrol?authorization=" + handle)
    assert enrol.status_code == 302
    assert enrol.headers["Location"] == "/login?authorization=" + handle


def test_lifting_a_groups_mfa_rule_acts_on_each_member(h: Harness) -> None:
    """A groups:write delegate may not switch off (or delete) a group's "require MFA"
    while it keeps an administrator's sign-in strong."""
    root = h.administrator("root", "admin")
    assert (
        root.post("/Groups/create", data={"name": "Ops", "requireMfa": "true"}).status_code == 200
    )
    added = root.post("/Groups/addMember", data={"group": "Ops", "username": "root"})
    assert added.status_code == 200, added.get_data(as_text=True)
    writer = h.administrator("writer", "groups:write")
    lifted = writer.post("/Groups/update", data={"group": "Ops", "requireMfa": "false"})
    assert lifted.status_code == 403, lifted.get_data(as_text=True)
    assert writer.post("/Groups/delete", data={"group": "Ops"}).status_code == 403
    assert (
        writer.post("/Groups/update", data={"group": "Ops", "description": "x"}).status_code == 200
    )


def test_validate_session_does_not_admit_a_session_below_the_applications_policy(
    h: Harness,
) -> None:
    client = signed_in(h)
    token = client.get_cookie(h.settings.session_cookie_name)
    assert token is not None
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    auth = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    before = h.new_client().post(
        "/Client/validateSession", data={"token": token.value}, headers=auth
    )
    assert before.get_json()["Data"]["Valid"] is True
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        app.mfa_policy = "mfa"
    after = h.new_client().post(
        "/Client/validateSession", data={"token": token.value}, headers=auth
    )
    data = after.get_json()["Data"]
    assert data["Valid"] is False and data["StepUp"] is True
