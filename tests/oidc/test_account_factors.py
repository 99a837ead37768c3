"""The account page's second factors: passkeys (add, rename, remove), the authenticator
app (start, confirm, remove), recovery codes (new ones replace the old); changes need a
recent sign-in (``reauthentication_window``) and the page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from sqlalchemy import text

from second_factor_support import CODES
from second_factor_support import SECRET
from second_factor_support import account_post
from second_factor_support import account_token
from second_factor_support import amr
from second_factor_support import authenticator
from second_factor_support import count
from second_factor_support import enrol_passkey
from second_factor_support import enrol_totp
from second_factor_support import fresh_code
from second_factor_support import options
from second_factor_support import page_sign_in
from second_factor_support import password_step
from second_factor_support import signed_in
from second_factor_support import text_of
from second_factor_support import token_of

from support import Harness

PASSKEY_ID = re.compile(r'name="id" value="(\d+)"')
OLD = 901  # seconds: past the default reauthentication_window (900)


def passkey_ids(client: Any) -> list[str]:
    """The ids of the passkeys listed (each has a rename and a remove form)."""
    return sorted(set(PASSKEY_ID.findall(text_of(client.get("/account")))), key=int)


def state(h: Harness) -> tuple[Any, ...]:
    """Everything a factor action could change."""
    with h.app.services.db.session() as db:
        return (
            tuple(db.execute(text("SELECT id, name FROM webauthn_credentials ORDER BY id"))),
            tuple(db.execute(text("SELECT user_id, secret, last_step FROM totp_credentials"))),
            tuple(db.execute(text("SELECT code_hash FROM recovery_codes ORDER BY code_hash"))),
        )


def passkey_sign_in(h: Harness, client: Any, device: Any) -> None:
    token = token_of(client)
    challenge = options(client, "signin", token)
    answer = client.post(
        "/login", data={"csrf": token, "credential": device.get(text_of(challenge))}
    )
    assert answer.status_code == 302, text_of(answer)[:300]


def test_a_passkey_is_added_renamed_and_removed_with_a_recent_sign_in(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    device = authenticator(h)
    added = enrol_passkey(h, browser, device, name="Laptop")
    assert len(CODES.findall(text_of(added))) == 10  # the first factor brings codes
    assert count(h, "recovery_codes") == 10
    [key] = passkey_ids(browser)
    assert "Laptop" in text_of(browser.get("/account"))

    renamed = account_post(browser, "passkey-rename", id=key, name="Yubikey ✓")
    assert renamed.status_code == 200 and "The passkey was renamed." in text_of(renamed)
    assert count(h, "webauthn_credentials", "name = 'Yubikey ✓'") == 1

    h.clock.advance(seconds=OLD)
    refused = account_post(browser, "passkey-remove", id=key)
    assert refused.status_code == 403, text_of(refused)[:300]
    assert "Sign in again" in text_of(refused)
    assert count(h, "webauthn_credentials") == 1
    # Renaming changes no factor: allowed with the old session.
    assert account_post(browser, "passkey-rename", id=key, name="Old").status_code == 200

    browser.post("/Account/logout")
    passkey_sign_in(h, browser, device)
    assert amr(browser) == ["hwk", "mfa"]
    removed = account_post(browser, "passkey-remove", id=key)
    assert removed.status_code == 200 and "The passkey was removed." in text_of(removed)
    assert count(h, "webauthn_credentials") == 0
    # Without a factor the recovery codes go too, and the next sign-in is a password's.
    assert count(h, "recovery_codes") == 0
    browser.post("/Account/logout")
    assert password_step(browser, next="/account").headers["Location"] == "/account"


def test_a_passkey_of_someone_else_cannot_be_renamed_or_removed(h: Harness) -> None:
    assert h.register("bob").status_code == 200
    alice = h.new_client()
    page_sign_in(alice)
    enrol_passkey(h, alice, authenticator(h))
    [key] = passkey_ids(alice)
    bob = h.new_client()
    page_sign_in(bob, "bob")
    before = state(h)
    assert account_post(bob, "passkey-rename", id=key, name="Mine").status_code == 404
    assert account_post(bob, "passkey-remove", id=key).status_code == 404
    assert state(h) == before


def test_adding_a_passkey_needs_a_recent_sign_in(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    h.clock.advance(seconds=OLD)
    page = text_of(browser.get("/account"))
    assert 'data-passkey="register"' not in page and "sign in again" in page
    answer = options(browser, "register", account_token(browser))
    assert answer.status_code == 403
    assert count(h, "sign_in_steps", "purpose = 'register'") == 0


def test_the_authenticator_app_is_started_confirmed_and_removed(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    started = account_post(browser, "totp-start")
    found = SECRET.search(text_of(started))
    assert found is not None and "<svg" in text_of(started)
    secret = found.group(1)
    assert count(h, "totp_credentials") == 0  # not before the first code
    good = fresh_code(h, secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    refused = account_post(browser, "totp-confirm", code=wrong)
    assert refused.status_code == 401 and count(h, "totp_credentials") == 0
    confirmed = account_post(browser, "totp-confirm", code=good)
    assert "Your authenticator app was added." in text_of(confirmed)
    assert len(CODES.findall(text_of(confirmed))) == 10
    assert count(h, "totp_credentials") == 1
    # The confirming code is used: it cannot sign in.
    browser.post("/Account/logout")
    other = h.new_client()
    token = token_of(other)
    assert password_step(other).headers["Location"].startswith("/login/verify")
    replay = other.post(
        "/login/verify", data={"csrf": token, "method": "totp", "code": good, "next": "/account"}
    )
    assert replay.status_code == 401

    # Removal: refused with an old session, done after signing in again.
    page_token = token_of(browser)
    assert password_step(browser).status_code == 302
    browser.post(
        "/login/verify",
        data={"csrf": page_token, "method": "totp", "code": fresh_code(h, secret)},
    )
    assert amr(browser) == ["pwd", "otp", "mfa"]
    h.clock.advance(seconds=OLD)
    assert account_post(browser, "totp-remove").status_code == 403
    assert count(h, "totp_credentials") == 1
    browser.post("/Account/logout")
    page_token = token_of(browser)
    password_step(browser)
    browser.post(
        "/login/verify",
        data={"csrf": page_token, "method": "totp", "code": fresh_code(h, secret)},
    )
    removed = account_post(browser, "totp-remove")
    assert "Your authenticator app was removed." in text_of(removed)
    assert count(h, "totp_credentials") == 0 and count(h, "recovery_codes") == 0


def test_a_totp_enrolment_belongs_to_its_browser(h: Harness) -> None:
    """A secret started in one browser cannot be confirmed from another of the same
    user (the step is bound to the ``passport_step`` cookie)."""
    first = h.new_client()
    page_sign_in(first)
    found = SECRET.search(text_of(account_post(first, "totp-start")))
    assert found is not None
    second = h.new_client()
    page_sign_in(second)
    code = pyotp.TOTP(found.group(1)).at(h.clock())
    refused = account_post(second, "totp-confirm", code=code)
    assert refused.status_code == 400 and count(h, "totp_credentials") == 0


def test_new_recovery_codes_replace_the_old_ones(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    _, old = enrol_totp(h, browser)
    made = account_post(browser, "recovery-new")
    assert "the old ones no longer work" in text_of(made)
    new = CODES.findall(text_of(made))
    assert len(new) == 10 and not set(new) & set(old)
    assert count(h, "recovery_codes") == 10
    browser.post("/Account/logout")

    def sign_in_with(code: str) -> Any:
        client = h.new_client()
        token = token_of(client)
        password_step(client)
        return client, client.post(
            "/login/verify",
            data={"csrf": token, "method": "recovery", "code": code, "next": "/account"},
        )

    client, answer = sign_in_with(old[0])
    assert answer.status_code == 401 and signed_in(client) is False
    client, answer = sign_in_with(new[0])
    assert answer.status_code == 200 and signed_in(client) is True
    # Old session: no new codes.
    h.clock.advance(seconds=OLD)
    assert account_post(client, "recovery-new").status_code == 403
    assert count(h, "recovery_codes") == 9


def test_recovery_codes_need_a_factor(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    answer = account_post(browser, "recovery-new")
    assert answer.status_code == 400 and count(h, "recovery_codes") == 0


def test_every_factor_action_without_the_csrf_token_is_refused(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    device = authenticator(h)
    enrol_passkey(h, browser, device)
    secret, _ = enrol_totp(h, browser)
    [key] = passkey_ids(browser)
    # A registration challenge and a TOTP enrolment in progress, so that the forged
    # passkey-add and totp-confirm would succeed if the token were not checked.
    token = account_token(browser)
    challenge = options(browser, "register", token)
    started = account_post(browser, "totp-start")
    found = SECRET.search(text_of(started))
    assert found is not None
    new_secret = found.group(1)
    forms = {
        "passkey-add": {"credential": authenticator(h).create(text_of(challenge))},
        "passkey-rename": {"id": key, "name": "Forged"},
        "passkey-remove": {"id": key},
        "totp-start": {},
        "totp-confirm": {"code": pyotp.TOTP(new_secret).at(h.clock())},
        "totp-remove": {},
        "recovery-new": {},
    }
    before = state(h)
    steps = count(h, "sign_in_steps")
    for action, data in forms.items():
        for forged in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": token + "x"}):
            answer = browser.post("/account", data={"action": action, **data, **forged})
            assert answer.status_code == 403, (action, forged, answer.status_code)
            assert SECRET.search(text_of(answer)) is None
            assert not CODES.findall(text_of(answer))
        # The right token but from another site (Origin): refused as well.
        answer = browser.post(
            "/account",
            data={"action": action, "csrf": token, **data},
            headers={"Origin": "https://evil.example"},
        )
        assert answer.status_code == 403, (action, answer.status_code)
    assert state(h) == before
    assert count(h, "sign_in_steps") == steps
    # ... and with the token the same posts work (the forgeries were well-formed).
    done = browser.post(
        "/account", data={"action": "passkey-rename", "csrf": token, **forms["passkey-rename"]}
    )
    assert "renamed" in text_of(done)
    assert secret
