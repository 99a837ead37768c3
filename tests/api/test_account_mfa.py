"""The Passport API's side of multi-factor sign-in: ``Account/login`` with ``code`` and
``method`` (Number 8 when a second factor is owed and not sent), the throttle on wrong
codes, and what ``Account/status`` and ``Client/validateSession`` say of a session
(``Amr``, RFC 8176; ``Acr``).  On SQLite with database sessions and PostgreSQL with
Redis sessions."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from oidc_support import KEK
from second_factor_support import SESSION_COOKIE
from second_factor_support import cookie
from second_factor_support import fresh_code
from second_factor_support import status
from second_factor_support import user_with_passkey
from second_factor_support import user_with_totp

from support import STRONG
from support import Harness

COMBOS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    harness: Harness = factory(*request.param, key_encryption_key=KEK)
    assert harness.register("alice").status_code == 200
    return harness


def login(h: Harness, **data: str) -> tuple[Any, Any, dict[str, Any]]:
    """Alice's ``Account/login`` from a new client: the client, the answer, its JSON."""
    client = h.new_client()
    answer = client.post("/Account/login", data={"username": "alice", "password": STRONG, **data})
    return client, answer, json.loads(answer.get_data(as_text=True))


def number(envelope: dict[str, Any]) -> str:
    return str(envelope["ClientExceptions"][0]["Number"])


def test_a_totp_user_without_a_code_gets_number_8_and_no_session(h: Harness) -> None:
    user_with_totp(h)
    client, answer, envelope = login(h)
    assert answer.status_code == 401 and number(envelope) == "8"
    assert envelope["ClientExceptions"][0]["Source"] == "code"
    assert cookie(client, SESSION_COOKIE) is None
    assert status(client)["LoggedIn"] is False
    # A wrong password is still a wrong password (not Number 8: no oracle of factors).
    client, answer, envelope = login(h, password="not the password at all")
    assert answer.status_code == 401 and number(envelope) == "401"


def test_a_totp_code_signs_in_with_amr(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    client, answer, envelope = login(h, code=fresh_code(h, secret))
    assert answer.status_code == 200, envelope
    assert envelope["Data"]["Amr"] == ["pwd", "otp", "mfa"]
    assert "RecoveryCodesLeft" not in envelope["Data"]
    state = status(client)
    assert state["LoggedIn"] is True
    assert state["Data"]["Amr"] == ["pwd", "otp", "mfa"]
    assert state["Data"]["Acr"] == "urn:passport:acr:mfa"
    # method=totp is the default, and may be named; full-width digits are digits.
    code = fresh_code(h, secret)
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code)
    _, answer, _ = login(h, code=wide, method="totp")
    assert answer.status_code == 200


def test_a_recovery_code_signs_in_and_says_how_many_are_left(h: Harness) -> None:
    _, codes = user_with_totp(h)
    client, answer, envelope = login(h, code=codes[0], method="recovery")
    assert answer.status_code == 200, envelope
    assert envelope["Data"]["Amr"] == ["pwd", "mfa"]
    assert envelope["Data"]["RecoveryCodesLeft"] == 9
    assert status(client)["Data"]["Acr"] == "urn:passport:acr:mfa"
    _, again, envelope = login(h, code=codes[0], method="recovery")
    assert again.status_code == 401 and number(envelope) == "401"
    # A recovery code sent as a TOTP code is not one.
    _, wrong, _ = login(h, code=codes[1])
    assert wrong.status_code == 400


def test_wrong_codes_are_counted_by_the_throttle(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    good = fresh_code(h, secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    answers = []
    for _ in range(h.settings.throttle_account_limit + 2):
        _, answer, envelope = login(h, code=wrong)
        answers.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
            assert number(envelope) == "429"
            break
    assert answers[0] == 401 and answers[-1] == 429, answers
    assert len(answers) <= h.settings.throttle_account_limit + 1, answers
    # While it waits, the right code does not get in either.
    client, answer, _ = login(h, code=good)
    assert answer.status_code == 429 and status(client)["LoggedIn"] is False
    h.clock.advance(seconds=3600)
    _, answer, envelope = login(h, code=fresh_code(h, secret))
    assert answer.status_code == 200, envelope


def test_wrong_codes_on_the_page_and_the_api_share_the_count(h: Harness) -> None:
    """The sign-in page's second step counts on the same counters as the API."""
    from second_factor_support import token_of

    secret, _ = user_with_totp(h)
    good = fresh_code(h, secret)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    for _ in range(h.settings.throttle_account_limit):
        browser = h.new_client()
        token = token_of(browser)
        browser.post("/login", data={"csrf": token, "username": "alice", "password": STRONG})
        browser.post("/login/verify", data={"csrf": token, "method": "totp", "code": wrong})
    _, answer, _ = login(h, code=good)
    assert answer.status_code == 429


def test_a_method_other_than_totp_or_recovery_is_refused(h: Harness) -> None:
    secret, _ = user_with_totp(h)
    for method in ("passkey", "TOTP", "sms", "' OR 1=1 --", "\uff54\uff4f\uff54\uff50"):
        client, answer, envelope = login(h, code=fresh_code(h, secret), method=method)
        assert answer.status_code == 400, (method, envelope)
        assert status(client)["LoggedIn"] is False


def test_a_passkey_or_enrolment_needs_the_page(factory: Any) -> None:
    """Number 8 also when the API cannot finish: a first factor to enrol, or a server
    asking for passkeys."""
    for setting in ({"mfa_policy": "mfa"}, {"mfa_policy": "passkey"}):
        h = factory("sqlite", key_encryption_key=KEK, **setting)
        assert h.register("alice").status_code == 200
        client, answer, envelope = login(h, code="123456")
        assert answer.status_code == 401 and number(envelope) == "8", envelope
        assert "sign-in page" in envelope["ClientExceptions"][0]["Message"]
        assert status(client)["LoggedIn"] is False


def test_status_says_pwd_for_a_password_sign_in(h: Harness) -> None:
    client, answer, envelope = login(h)
    assert answer.status_code == 200 and envelope["Data"]["Amr"] == ["pwd"]
    assert status(client)["Data"]["Acr"] == "urn:passport:acr:password"
    assert (
        "Amr" not in status(h.new_client()).get("Data", {})
        or not status(h.new_client())["LoggedIn"]
    )


def _application(h: Harness) -> dict[str, str]:
    admin = h.administrator("root", "admin")
    created = json.loads(
        admin.post("/Applications/create", data={"name": "Blog"}).get_data(as_text=True)
    )["Data"]
    raw = f"{created['Application']['ClientId']}:{created['ClientSecret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_validate_session_says_amr_and_acr(h: Harness) -> None:
    auth = _application(h)
    server = h.new_client()

    def validate(client: Any) -> dict[str, Any]:
        token = cookie(client, SESSION_COOKIE)
        assert token is not None
        answer = server.post("/Client/validateSession", data={"token": token}, headers=auth)
        assert answer.status_code == 200
        return json.loads(answer.get_data(as_text=True))["Data"]  # type: ignore[no-any-return]

    plain, _, _ = login(h)
    assert validate(plain)["Amr"] == ["pwd"]
    assert validate(plain)["Acr"] == "urn:passport:acr:password"
    plain.post("/Account/logout")
    secret, _ = user_with_totp(h)
    strong, answer, _ = login(h, code=fresh_code(h, secret))
    assert answer.status_code == 200
    got = validate(strong)
    assert got["Valid"] is True and got["User"]["Username"] == "alice"
    assert got["Amr"] == ["pwd", "otp", "mfa"] and got["Acr"] == "urn:passport:acr:mfa"


def test_validate_session_of_a_passkey_sign_in(h: Harness) -> None:
    from second_factor_support import options
    from second_factor_support import token_of

    auth = _application(h)
    device = user_with_passkey(h)
    browser = h.new_client()
    token = token_of(browser)
    challenge = options(browser, "signin", token)
    browser.post(
        "/login", data={"csrf": token, "credential": device.get(challenge.get_data(as_text=True))}
    )
    value = cookie(browser, SESSION_COOKIE)
    answer = h.new_client().post("/Client/validateSession", data={"token": value}, headers=auth)
    data = json.loads(answer.get_data(as_text=True))["Data"]
    assert data["Amr"] == ["hwk", "mfa"] and data["Acr"] == "phr"
