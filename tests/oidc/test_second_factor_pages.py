"""The second step of a sign-in over HTTP: ``/login`` with a password, then
``/login/verify`` (an authenticator app's code, a recovery code, a passkey) or
``/login/enrol`` (a first factor, when one is owed), ``/login/continue``; and a passkey
sign-in without a username.  On SQLite with the database session store and on
PostgreSQL with Redis sessions (``h``), so that the session's ``amr`` is seen to persist
in both stores."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import text

from oidc_support import KEK
from second_factor_support import CODES
from second_factor_support import SECRET
from second_factor_support import SESSION_COOKIE
from second_factor_support import STEP_COOKIE
from second_factor_support import amr
from second_factor_support import authenticator
from second_factor_support import cookie
from second_factor_support import count
from second_factor_support import form_fields
from second_factor_support import fresh_code
from second_factor_support import options
from second_factor_support import password_step
from second_factor_support import sessions
from second_factor_support import signed_in
from second_factor_support import status
from second_factor_support import text_of
from second_factor_support import token_of
from second_factor_support import user_with_passkey
from second_factor_support import user_with_totp
from webauthn_support import b64url

from support import STRONG
from support import Harness

IN_PROCESS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=IN_PROCESS, ids=[f"{b}-{s}" for b, s in IN_PROCESS])
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


def verify(client: Any, token: str, **data: str) -> Any:
    return client.post("/login/verify", data={"csrf": token, "next": "/account", **data})


def halfway(h: Harness, client: Any) -> tuple[str, Any]:
    """Alice's password accepted and a factor owed: the browser's CSRF token and the
    answer that sent it on."""
    token = token_of(client)
    answer = client.post(
        "/login",
        data={"csrf": token, "username": "alice", "password": STRONG, "next": "/account"},
    )
    assert answer.status_code == 302, text_of(answer)[:500]
    return token, answer


# -- password, then an authenticator app's code ------------------------------------------


def test_password_then_totp_signs_in_with_pwd_otp_mfa(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    assert sessions(h) == 0
    browser = h.new_client()
    token, answer = halfway(h, browser)
    location = answer.headers["Location"]
    assert location.startswith("/login/verify?"), location
    assert parse_qs(urlsplit(location).query) == {"next": ["/account"]}
    # The half-way state is a cookie of its own, bound to a row on the server; no
    # session yet: not in the cookie jar, not in the store, not to Account/status.
    assert cookie(browser, STEP_COOKIE) is not None
    assert cookie(browser, SESSION_COOKIE) is None
    assert SESSION_COOKIE not in " ".join(answer.headers.getlist("Set-Cookie"))
    assert signed_in(browser) is False
    assert sessions(h) == 0
    page = browser.get(location)
    assert page.status_code == 200
    assert "Code from your authenticator app" in text_of(page)
    assert "alice" in text_of(page)
    assert signed_in(browser) is False

    done = verify(browser, token, method="totp", code=fresh_code(h, secret))
    assert done.status_code == 302, text_of(done)[:500]
    assert done.headers["Location"] == "/account"
    assert cookie(browser, SESSION_COOKIE) is not None
    state = status(browser)
    assert state["Data"]["Amr"] == ["pwd", "otp", "mfa"]
    assert state["Data"]["Acr"] == "urn:passport:acr:mfa"
    assert sessions(h) == 1


def test_a_wrong_code_starts_no_session(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    browser = h.new_client()
    token, _ = halfway(h, browser)
    good = fresh_code(h, secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    refused = verify(browser, token, method="totp", code=wrong)
    assert refused.status_code == 401
    assert "not correct" in text_of(refused)
    assert signed_in(browser) is False and sessions(h) == 0
    # The half-way state is still there: the right code goes on.
    assert verify(browser, token, method="totp", code=good).status_code == 302
    assert amr(browser) == ["pwd", "otp", "mfa"]


def test_a_totp_code_is_used_once(h: Harness) -> None:
    """RFC 6238 §5.2: the code that signed in cannot sign in again, even in its window."""
    secret, _ = user_with_totp(h)
    first = h.new_client()
    token, _ = halfway(h, first)
    code = fresh_code(h, secret)
    assert verify(first, token, method="totp", code=code).status_code == 302
    second = h.new_client()
    token, _ = halfway(h, second)
    replay = verify(second, token, method="totp", code=code)
    assert replay.status_code == 401 and signed_in(second) is False


# -- a recovery code -----------------------------------------------------------------------


def test_a_recovery_code_says_how_many_are_left_and_continue_goes_on(h: Harness) -> None:
    _, codes = user_with_totp(h)
    assert len(codes) == 10
    browser = h.new_client()
    token, _ = halfway(h, browser)
    used = verify(browser, token, method="recovery", code=codes[0].upper())
    assert used.status_code == 200, text_of(used)[:500]
    assert "You used a recovery code; 9 are left." in text_of(used)
    # Signed in already (the page only tells): a recovery code is a second factor
    # without an RFC 8176 method value of its own.
    assert status(browser)["Data"]["Amr"] == ["pwd", "mfa"]
    assert status(browser)["Data"]["Acr"] == "urn:passport:acr:mfa"
    assert count(h, "recovery_codes") == 9
    onwards = browser.post("/login/continue", data=form_fields(used))
    assert onwards.status_code == 302 and onwards.headers["Location"] == "/account"
    # Used up: the same code does not sign in again.
    browser.post("/Account/logout")
    other = h.new_client()
    token, _ = halfway(h, other)
    again = verify(other, token, method="recovery", code=codes[0])
    assert again.status_code == 401 and signed_in(other) is False
    # Spaces, hyphens and case do not matter; "1 is left" reads right.
    for n, code in enumerate(codes[1:9]):
        client = h.new_client()
        token, _ = halfway(h, client)
        answer = verify(client, token, method="recovery", code=" " + code.replace("-", " "))
        assert answer.status_code == 200, text_of(answer)[:300]
        left = 8 - n
        assert f"; {left} {'is' if left == 1 else 'are'} left." in text_of(answer)
    assert "Make new ones on your account page." in text_of(answer)


# -- a passkey -----------------------------------------------------------------------------


def test_a_passkey_as_second_factor(h: Harness) -> None:
    device = user_with_passkey(h)
    browser = h.new_client()
    token, answer = halfway(h, browser)
    assert answer.headers["Location"].startswith("/login/verify?")
    page = browser.get(answer.headers["Location"])
    assert 'data-passkey="verify"' in text_of(page)
    assert signed_in(browser) is False
    challenge = options(browser, "verify", token)
    assert challenge.status_code == 200, text_of(challenge)
    assert challenge.headers["Cache-Control"] == "no-store"
    asked = json.loads(text_of(challenge))
    # The signing-in user's passkeys only (§5.5 allowCredentials).
    assert [c["id"] for c in asked["allowCredentials"]] == [b64url(device.credentials[0].id)]
    assert asked["userVerification"] == "required"
    done = verify(browser, token, method="passkey", credential=device.get(text_of(challenge)))
    assert done.status_code == 302, text_of(done)[:500]
    state = status(browser)
    assert state["Data"]["Amr"] == ["pwd", "hwk", "mfa"]
    assert state["Data"]["Acr"] == "phr"


def test_another_users_passkey_is_not_a_second_factor(h: Harness) -> None:
    """Bob's passkey answers Alice's second step: refused, no session for either."""
    assert h.register("bob").status_code == 200
    user_with_totp(h)  # Alice owes a factor
    bobs = user_with_passkey(h, "bob")
    browser = h.new_client()
    token, _ = halfway(h, browser)
    challenge = options(browser, "signin", token)  # not bound to Alice
    refused = verify(browser, token, method="passkey", credential=bobs.get(text_of(challenge)))
    assert refused.status_code == 401, text_of(refused)[:300]
    assert signed_in(browser) is False


def test_a_passkey_signs_in_without_a_username(h: Harness) -> None:
    device = user_with_passkey(h)
    browser = h.new_client()
    token = token_of(browser)
    assert 'data-passkey="signin"' in text_of(browser.get("/login"))
    challenge = options(browser, "signin", token)
    assert challenge.status_code == 200
    assert json.loads(text_of(challenge))["allowCredentials"] == []
    assert cookie(browser, STEP_COOKIE) is not None
    answer = browser.post(
        "/login",
        data={"csrf": token, "credential": device.get(text_of(challenge)), "next": "/account"},
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/account"
    state = status(browser)
    assert state["Data"]["User"]["Username"] == "alice"
    assert state["Data"]["Amr"] == ["hwk", "mfa"]
    assert state["Data"]["Acr"] == "phr"


def test_a_passkey_answer_is_used_once(h: Harness) -> None:
    device = user_with_passkey(h)
    browser = h.new_client()
    token = token_of(browser)
    challenge = options(browser, "signin", token)
    answer = device.get(text_of(challenge))
    assert browser.post("/login", data={"csrf": token, "credential": answer}).status_code == 302
    browser.post("/Account/logout")
    token = token_of(browser)
    replay = browser.post("/login", data={"csrf": token, "credential": answer})
    assert replay.status_code == 401 and signed_in(browser) is False


# -- the half-way state ------------------------------------------------------------------


def test_the_half_way_state_cannot_be_used_from_another_browser(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    browser = h.new_client()
    token, _ = halfway(h, browser)
    code = fresh_code(h, secret)
    thief = h.new_client()
    theirs = token_of(thief)
    stolen = verify(thief, theirs, method="totp", code=code)
    assert stolen.status_code == 400
    assert "sign-in expired" in text_of(stolen)
    assert signed_in(thief) is False and sessions(h) == 0
    # Nor a challenge for Alice's passkeys, nor her enrolment.
    assert options(thief, "verify", theirs).status_code == 401
    assert thief.get("/login/enrol").status_code == 400
    # The other browser's try used nothing: the owner's code still works.
    assert verify(browser, token, method="totp", code=code).status_code == 302
    assert amr(browser) == ["pwd", "otp", "mfa"]


def test_the_half_way_state_expires_after_five_minutes(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    in_time = h.new_client()
    token, _ = halfway(h, in_time)
    h.clock.advance(seconds=240)
    assert verify(in_time, token, method="totp", code=fresh_code(h, secret)).status_code == 302

    late = h.new_client()
    token, _ = halfway(h, late)
    h.clock.advance(seconds=271)  # 301 s with the code's step
    expired = verify(late, token, method="totp", code=fresh_code(h, secret))
    assert expired.status_code == 400 and "sign-in expired" in text_of(expired)
    assert signed_in(late) is False


def test_the_half_way_state_is_single_use(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    browser = h.new_client()
    token, _ = halfway(h, browser)
    step = cookie(browser, STEP_COOKIE)
    assert verify(browser, token, method="totp", code=fresh_code(h, secret)).status_code == 302
    assert count(h, "sign_in_steps", "purpose = 'second-factor'") == 0
    browser.post("/Account/logout")
    assert cookie(browser, STEP_COOKIE) == step  # the browser still sends it
    again = verify(browser, token, method="totp", code=fresh_code(h, secret))
    assert again.status_code == 400 and "sign-in expired" in text_of(again)
    assert signed_in(browser) is False


def test_a_wrong_password_leaves_no_half_way_state(h: Harness) -> None:
    user_with_totp(h)
    browser = h.new_client()
    refused = password_step(browser, "alice", "not the password at all")
    assert refused.status_code == 401
    assert cookie(browser, STEP_COOKIE) is None
    assert count(h, "sign_in_steps") == 0


# -- forced enrolment --------------------------------------------------------------------


def enrol_by_totp(h: Harness, browser: Any, location: str) -> Any:
    assert location.startswith("/login/enrol?"), location
    page = browser.get(location)
    assert page.status_code == 200, text_of(page)[:500]
    assert "Add a second factor" in text_of(page)
    assert signed_in(browser) is False
    found = SECRET.search(text_of(page))
    assert found is not None
    secret = found.group(1)
    code = pyotp.TOTP(secret).at(h.clock())
    return browser.post("/login/enrol", data={**form_fields(page, 'value="totp"'), "code": code})


def check_enrolled_by_totp(h: Harness, browser: Any, done: Any) -> None:
    assert done.status_code == 200, text_of(done)[:500]
    codes = CODES.findall(text_of(done))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert status(browser)["Data"]["Amr"] == ["pwd", "otp", "mfa"]
    onwards = browser.post("/login/continue", data=form_fields(done))
    assert onwards.status_code == 302 and onwards.headers["Location"] == "/account"
    # Shown once: the account page says how many, never the codes.
    account = text_of(browser.get("/account"))
    assert "10 unused recovery codes" in account
    assert not any(code in account for code in codes)
    assert count(h, "totp_credentials") == 1


def test_a_group_with_require_mfa_sends_its_members_to_enrol(h: Harness) -> None:
    before = password_step(h.new_client(), next="/account")
    assert before.headers["Location"] == "/account"  # Editors asks nothing yet
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(
            text("UPDATE groups SET require_mfa = :yes WHERE name = 'Editors'"), {"yes": True}
        )
    browser = h.new_client()
    _, answer = halfway(h, browser)
    assert signed_in(browser) is False
    check_enrolled_by_totp(h, browser, enrol_by_totp(h, browser, answer.headers["Location"]))


@pytest.mark.parametrize("setting", ["admin_mfa", "mfa_policy"])
def test_a_server_rule_sends_users_to_enrol(
    factory: Any, combo: tuple[str, str], setting: str
) -> None:
    """``admin_mfa``: a holder of a Passport right (and only they) must enrol;
    ``mfa_policy=mfa``: everyone."""
    rule = {"admin_mfa": True} if setting == "admin_mfa" else {"mfa_policy": "mfa"}
    h: Harness = factory(*combo, key_encryption_key=KEK, **rule)
    for name in ("alice", "bob"):
        assert h.register(name).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        from passport.services import directory
        from passport.storage.models import Application

        passport = db.get(Application, 1)
        alice = directory.find_user(db, "alice")
        assert passport is not None and alice is not None
        right = directory.find_permission(db, passport, "users:read")
        assert right is not None
        directory.grant(db, right, user=alice)
    bob = password_step(h.new_client(), "bob", next="/account")
    expected = "/login/enrol?" if setting == "mfa_policy" else "/account"
    assert bob.headers["Location"].startswith(expected), bob.headers["Location"]
    browser = h.new_client()
    _, answer = halfway(h, browser)
    check_enrolled_by_totp(h, browser, enrol_by_totp(h, browser, answer.headers["Location"]))


def test_a_passkey_can_be_enrolled_when_one_is_owed(factory: Any, combo: tuple[str, str]) -> None:
    h: Harness = factory(*combo, key_encryption_key=KEK, mfa_policy="mfa")
    assert h.register("alice").status_code == 200
    browser = h.new_client()
    token, answer = halfway(h, browser)
    page = browser.get(answer.headers["Location"])
    assert 'data-passkey="enrol"' in text_of(page)
    # "register" is the account page's (a session's); a sign-in's enrolment is "enrol".
    assert options(browser, "register", token).status_code == 401
    challenge = options(browser, "enrol", token)
    assert challenge.status_code == 200, text_of(challenge)
    assert json.loads(text_of(challenge))["user"]["name"] == "alice"
    device = authenticator(h)
    done = browser.post(
        "/login/enrol",
        data={
            **form_fields(page, 'value="passkey"'),
            "credential": device.create(text_of(challenge)),
            "name": "Phone",
        },
    )
    assert done.status_code == 200, text_of(done)[:500]
    assert len(CODES.findall(text_of(done))) == 10
    assert status(browser)["Data"]["Amr"] == ["pwd", "hwk", "mfa"]
    assert count(h, "webauthn_credentials", "name = 'Phone'") == 1
    # The next sign-in asks for it (verify, not enrol) and the passkey alone will do.
    browser.post("/Account/logout")
    _, again = halfway(h, browser)
    assert again.headers["Location"].startswith("/login/verify?")


def test_enrolment_without_the_half_way_state_is_refused(h: Harness) -> None:
    stranger = h.new_client()
    token = token_of(stranger)
    refused = stranger.post(
        "/login/enrol", data={"csrf": token, "action": "totp", "code": "123456"}
    )
    assert refused.status_code == 400 and "sign-in expired" in text_of(refused)
    assert count(h, "totp_credentials") == 0 and signed_in(stranger) is False


def test_registration_options_for_nobody_are_refused(h: Harness) -> None:
    stranger = h.new_client()
    answer = options(stranger, "register", token_of(stranger))
    assert answer.status_code == 401
    assert count(h, "sign_in_steps", "purpose = 'register'") == 0
