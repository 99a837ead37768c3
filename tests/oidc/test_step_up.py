"""Step-up at an application's sign-in (OIDC Core §3.1.2.1 ``acr_values``, the
application's ``mfa_policy``): the authorization code flow through the hosted pages, as
the OIDC conformance tests play it, with a second factor (or its enrolment) between
sign-in and code; the ID token's ``amr`` (RFC 8176) and ``acr`` (OIDC Core §2) say what
was reached, also after a refresh (§12.2) and through the device grant (RFC 8628)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import text

from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import form_of
from oidc_support import ids
from second_factor_support import SECRET
from second_factor_support import amr
from second_factor_support import authenticator
from second_factor_support import enrol_passkey
from second_factor_support import enrol_totp
from second_factor_support import form_fields
from second_factor_support import fresh_code
from second_factor_support import options
from second_factor_support import page_sign_in
from second_factor_support import status
from second_factor_support import text_of
from webauthn_support import SoftAuthenticator

from support import ORIGIN
from support import STRONG
from support import Harness
from support import PassportClient

MFA = "urn:passport:acr:mfa"
PASSWORD_ACR = "urn:passport:acr:password"


@dataclass
class Factors:
    """What the user holds to answer a second step."""

    secret: str | None = None
    device: SoftAuthenticator | None = None
    prefer: str = "totp"  # which to use when both are possible
    pages: list[str] = field(default_factory=list)


def request(h: Harness, **extra: str) -> dict[str, str]:
    return {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        **extra,
    }


def browse(h: Harness, browser: PassportClient, answer: Any, factors: Factors) -> dict[str, str]:
    """The user's part until Passport answers the client: sign in, prove or enrol a
    second factor, allow; the callback's parameters."""
    for _ in range(8):
        location = answer.headers.get("Location", "") if answer.status_code == 302 else ""
        path = location.split("?")[0]
        if path in ("/login", "/login/verify", "/login/enrol", "/consent"):
            factors.pages.append(path)
            page = browser.get(location)
            if page.status_code == 302:  # /login/verify sends one without a factor on
                answer = page
                continue
            assert page.status_code == 200, (location, text_of(page)[:500])
        if path == "/login":
            form = form_of(page) | {"username": "alice", "password": STRONG}
            answer = browser.post("/login", data=form)
        elif path == "/login/verify":
            use_passkey = factors.device is not None and (
                factors.prefer == "passkey" or factors.secret is None
            )
            if use_passkey:
                assert factors.device is not None
                fields = form_fields(page, 'value="passkey"')
                challenge = options(browser, "verify", fields["csrf"], **_where(fields))
                assert challenge.status_code == 200, text_of(challenge)
                fields["credential"] = factors.device.get(text_of(challenge))
            else:
                assert factors.secret is not None
                fields = form_fields(page, 'value="totp"')
                fields["code"] = fresh_code(h, factors.secret)
            answer = browser.post("/login/verify", data=fields)
        elif path == "/login/enrol":
            found = SECRET.search(text_of(page))
            assert found is not None
            factors.secret = found.group(1)
            fields = form_fields(page, 'value="totp"')
            fields["code"] = pyotp.TOTP(factors.secret).at(h.clock())
            shown = browser.post("/login/enrol", data=fields)
            assert shown.status_code == 200, text_of(shown)[:500]
            factors.pages.append("/login/continue")
            answer = browser.post("/login/continue", data=form_fields(shown))
        elif path == "/consent":
            answer = browser.post("/consent", data={**form_of(page), "decision": "allow"})
        else:
            break
    assert answer.status_code == 302, text_of(answer)[:500]
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _where(fields: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k == "authorization"}


def authorize(
    h: Harness, browser: PassportClient, factors: Factors | None = None, **extra: str
) -> tuple[dict[str, str], dict[str, str]]:
    params = request(h, **extra)
    answer = browser.get("/oauth2/authorize?" + urlencode(params))
    got = browse(h, browser, answer, factors or Factors())
    assert got.get("state") == params["state"], got
    return params, got


def basic(h: Harness) -> dict[str, str]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def redeem(h: Harness, code: str) -> dict[str, Any]:
    answer = h.new_client().post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=basic(h),
    )
    assert answer.status_code == 200, text_of(answer)
    return body(answer)


def claims_of(h: Harness, id_token: str, nonce: str | None) -> dict[str, Any]:
    """The ID token checked as a relying party does (signature by the JWKS, ``iss``,
    ``aud``, ``nonce``), and its claims."""
    keys = body(h.client.get("/.well-known/jwks.json"))
    decoded = jwt.decode(id_token, KeySet.import_key_set(keys))
    claims = decoded.claims
    assert claims["iss"] == ORIGIN
    assert claims["aud"] == ids(h)["client_id"]
    assert claims.get("nonce") == nonce
    return claims


def id_token_of(h: Harness, params: dict[str, str], got: dict[str, str]) -> dict[str, Any]:
    assert "error" not in got, got
    return claims_of(h, redeem(h, got["code"])["id_token"], params["nonce"])


def password_session_then_totp(h: Harness) -> tuple[PassportClient, str]:
    """Alice signed in by password, then enrolled an authenticator app: a session that
    proved a password only, of a user who has a second factor."""
    from enrolled_support import enrol_totp as give_totp

    browser = h.new_client()
    page_sign_in(browser)
    # Given as an administrator's import would (the account page would sign the other
    # sessions out, and make this one a sign-in with the factor).
    secret = give_totp(h, "alice")
    assert amr(browser) == ["pwd"]
    return browser, secret


def set_policy(h: Harness, policy: str, name: str = "Wiki") -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(
            text("UPDATE applications SET mfa_policy = :p WHERE name = :n"),
            {"p": policy, "n": name},
        )


# -- acr_values ----------------------------------------------------------------------------


def test_acr_values_mfa_steps_a_password_session_up_to_a_second_factor(h: Harness) -> None:
    """A session that proved a password only, of a user who enrolled an authenticator app
    after it began: the factor counts at once (services/factors.py ``sign_in_level``), so
    the code needs it, and acr_values=mfa is then met without another step."""
    browser, secret = password_session_then_totp(h)
    before_sid = None
    stepped = Factors(secret=secret)
    params, got = authorize(h, browser, stepped, acr_values=MFA)
    assert stepped.pages == ["/login/verify", "/consent"]
    claims = id_token_of(h, params, got)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == MFA
    before_sid = claims["sid"]
    again = Factors(secret=secret)
    params, got = authorize(h, browser, again, acr_values=MFA)
    assert again.pages == []  # consented, and the session is strong enough now
    claims = id_token_of(h, params, got)
    # The step-up replaced the session, and kept its sid (one session at the OP) and
    # its user.
    assert claims["sid"] == before_sid and claims["acr"] == MFA
    assert status(browser)["Data"]["Acr"] == MFA


def test_acr_values_in_order_of_preference_and_unknown_ones_ignored(h: Harness) -> None:
    """OIDC Core §3.1.2.1: the values are in order of preference; §15.1: an unknown one
    is not an error (the first known one counts)."""
    browser = h.new_client()
    page_sign_in(browser)  # no second factor: a password is all a sign-in owes
    unknown = Factors()
    params, got = authorize(h, browser, unknown, acr_values="urn:example:gold")
    assert unknown.pages == ["/consent"]
    assert id_token_of(h, params, got)["acr"] == PASSWORD_ACR
    first_known = Factors()
    params, got = authorize(h, browser, first_known, acr_values=f"urn:example:gold {MFA} phr")
    assert "/login/enrol" in first_known.pages, first_known.pages
    assert id_token_of(h, params, got)["acr"] == MFA  # MFA, the first known, not phr


def test_acr_values_phr_needs_a_passkey_and_refuses_a_code(h: Harness) -> None:
    browser = h.new_client()
    page_sign_in(browser)
    device = authenticator(h)
    enrol_passkey(h, browser, device)
    secret, _ = enrol_totp(h, browser)
    browser.post("/Account/logout")
    # A session of password and authenticator app.
    mfa = Factors(secret=secret)
    params, got = authorize(h, browser, mfa, acr_values=MFA)
    assert mfa.pages == ["/login", "/login/verify", "/consent"]
    assert id_token_of(h, params, got)["acr"] == MFA

    params = request(h, acr_values="phr")
    answer = browser.get("/oauth2/authorize?" + urlencode(params))
    location = answer.headers["Location"]
    assert location.startswith("/login/verify?authorization="), location
    page = browser.get(location)
    assert "This application asks for a passkey." in text_of(page)
    assert 'value="totp"' not in text_of(page) and 'value="recovery"' not in text_of(page)
    # The code of the authenticator app is refused on this page, and consumes nothing.
    fields = form_fields(page, 'value="passkey"') | {"method": "totp"}
    code = fresh_code(h, secret)
    refused = browser.post("/login/verify", data={**fields, "code": code})
    assert refused.status_code == 401 and "needs a passkey" in text_of(refused)
    assert status(browser)["Data"]["Acr"] == MFA
    got = browse(h, browser, answer, Factors(device=device, prefer="passkey"))
    claims = id_token_of(h, params, got)
    assert claims["acr"] == "phr"
    assert claims["amr"] == ["pwd", "otp", "hwk", "mfa"]


# -- the application's policy ------------------------------------------------------------


def test_an_application_policy_of_mfa_steps_up(h: Harness) -> None:
    browser, secret = password_session_then_totp(h)
    set_policy(h, "mfa")
    stepped = Factors(secret=secret)
    params, got = authorize(h, browser, stepped)
    assert stepped.pages == ["/login/verify", "/consent"]
    claims = id_token_of(h, params, got)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == MFA


def test_an_application_policy_of_passkey_refuses_totp(h: Harness) -> None:
    from enrolled_support import enrol_passkey as give_passkey
    from enrolled_support import enrol_totp as give_totp

    browser = h.new_client()
    page_sign_in(browser)  # a password session; then factors given apart from it
    device = give_passkey(h, "alice")
    secret = give_totp(h, "alice")
    set_policy(h, "passkey")
    params = request(h)
    answer = browser.get("/oauth2/authorize?" + urlencode(params))
    location = answer.headers["Location"]
    assert location.startswith("/login/verify?"), location
    page = browser.get(location)
    fields = form_fields(page, 'value="passkey"') | {"method": "totp"}
    refused = browser.post("/login/verify", data={**fields, "code": fresh_code(h, secret)})
    assert refused.status_code == 401
    got = browse(h, browser, answer, Factors(device=device, prefer="passkey"))
    claims = id_token_of(h, params, got)
    assert claims["acr"] == "phr" and "hwk" in claims["amr"]


def test_a_user_without_a_factor_is_sent_to_enrol_one(h: Harness) -> None:
    browser = h.new_client()
    factors = Factors()
    params, got = authorize(h, browser, factors, acr_values=MFA)
    # The password alone is a sign-in of its own (nothing owed at every sign-in); this
    # request's class is then asked for, and there is no factor to prove: enrol one.
    assert factors.pages == [
        "/login",
        "/login/verify",
        "/login/enrol",
        "/login/continue",
        "/consent",
    ], factors.pages
    claims = id_token_of(h, params, got)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == MFA


def test_a_passkey_policy_without_a_passkey_enrols_one(h: Harness) -> None:
    """A user with only an authenticator app, at an application that asks for a passkey:
    the app's code first (the factor she has: a password alone never enrols anything
    on an account that has a factor), then a passkey is enrolled; no new authenticator
    app is offered there."""
    browser, secret = password_session_then_totp(h)
    set_policy(h, "passkey")
    answer = browser.get("/oauth2/authorize?" + urlencode(request(h)))
    verify = browser.get(answer.headers["Location"])
    assert verify.status_code == 200 and 'value="totp"' in text_of(verify)
    enrol_first = browser.get(answer.headers["Location"].replace("/login/verify", "/login/enrol"))
    assert enrol_first.headers["Location"].startswith("/login/verify?")
    fields = form_fields(verify, 'value="totp"')
    proved = browser.post("/login/verify", data={**fields, "code": fresh_code(h, secret)})
    assert proved.status_code == 302, text_of(proved)[:300]
    again = browser.get(proved.headers["Location"])
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/login/enrol?authorization=")
    page = browser.get(again.headers["Location"])
    assert "This application asks for a passkey" in text_of(page)
    assert SECRET.search(text_of(page)) is None  # no authenticator app offered


def test_prompt_none_with_a_session_below_the_level_is_interaction_required(
    h: Harness,
) -> None:
    browser = h.new_client()
    page_sign_in(browser)  # no second factor yet: a password session
    authorize(h, browser, Factors())  # consented
    for extra in ({"acr_values": MFA}, {"acr_values": "phr"}):
        params = request(h, prompt="none", **extra)
        answer = browser.get("/oauth2/authorize?" + urlencode(params))
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert location.startswith(REDIRECT), location
        got = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert got["error"] == "interaction_required" and "code" not in got
        assert got["state"] == params["state"]
    set_policy(h, "mfa")
    params = request(h, prompt="none")
    answer = browser.get("/oauth2/authorize?" + urlencode(params))
    assert "error=interaction_required" in answer.headers["Location"]
    # A session that is strong enough gets its code silently.
    secret, _ = enrol_totp(h, browser)
    set_policy(h, "default")
    authorize(h, browser, Factors(secret=secret), acr_values=MFA)
    params = request(h, prompt="none", acr_values=MFA)
    answer = browser.get("/oauth2/authorize?" + urlencode(params))
    assert "code=" in answer.headers["Location"], answer.headers["Location"]


def test_the_consent_page_does_not_skip_the_step_up(h: Harness) -> None:
    """A browser that goes to /consent (not /login/verify) with the pending handle gets
    no code: the step is asked again."""
    browser, _ = password_session_then_totp(h)
    answer = browser.get("/oauth2/authorize?" + urlencode(request(h, acr_values=MFA)))
    handle = parse_qs(urlsplit(answer.headers["Location"]).query)["authorization"][0]
    page = browser.get("/consent?" + urlencode({"authorization": handle}))
    if page.status_code == 200:
        page = browser.post("/consent", data={**form_of(page), "decision": "allow"})
    assert page.status_code == 302, text_of(page)[:300]
    assert page.headers["Location"].startswith("/login/verify?"), page.headers["Location"]


# -- what the tokens say -----------------------------------------------------------------


def test_a_refreshed_id_token_keeps_amr_and_acr(h: Harness) -> None:
    """OIDC Core §12.2: the refreshed ID token is of the same authentication."""
    browser, secret = password_session_then_totp(h)
    params, got = authorize(h, browser, Factors(secret=secret), acr_values=MFA)
    issued = redeem(h, got["code"])
    first = claims_of(h, issued["id_token"], params["nonce"])
    assert issued.get("refresh_token"), issued
    h.clock.advance(seconds=60)
    answer = h.new_client().post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=basic(h),
    )
    assert answer.status_code == 200, text_of(answer)
    refreshed = claims_of(h, body(answer)["id_token"], None)
    assert refreshed["amr"] == first["amr"] == ["pwd", "otp", "mfa"]
    assert refreshed["acr"] == first["acr"] == MFA
    assert refreshed["auth_time"] == first["auth_time"] and refreshed["sid"] == first["sid"]


def test_discovery_lists_the_acr_values(h: Harness) -> None:
    meta = body(h.client.get("/.well-known/openid-configuration"))
    assert meta["acr_values_supported"] == [PASSWORD_ACR, MFA, "phr"]
    assert "acr" in meta["claims_supported"] and "amr" in meta["claims_supported"]


def test_a_device_approval_keeps_the_sessions_amr(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(
            text("UPDATE applications SET device_grant = :y WHERE name = 'Wiki'"), {"y": True}
        )
    browser = h.new_client()
    page_sign_in(browser)
    secret, _ = enrol_totp(h, browser)
    browser.post("/Account/logout")
    token = form_of(browser.get("/login"))["csrf"]
    assert (
        browser.post("/login", data={"csrf": token, "username": "alice", "password": STRONG})
        .headers["Location"]
        .startswith("/login/verify")
    )
    browser.post(
        "/login/verify", data={"csrf": token, "method": "totp", "code": fresh_code(h, secret)}
    )
    assert amr(browser) == ["pwd", "otp", "mfa"]
    started = body(
        h.client.post("/oauth2/device_authorization", data={"scope": "openid"}, headers=basic(h))
    )
    form = form_of(browser.get("/device"))
    done = browser.post(
        "/device", data={**form, "user_code": started["user_code"], "decision": "allow"}
    )
    assert done.status_code == 200, text_of(done)[:300]
    h.clock.advance(seconds=10)
    tokens = h.client.post(
        "/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
        },
        headers=basic(h),
    )
    assert tokens.status_code == 200, text_of(tokens)
    claims = claims_of(h, body(tokens)["id_token"], None)
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == MFA


def test_a_password_sign_in_says_so(h: Harness) -> None:
    """A control: a password-only sign-in's ID token says ``pwd`` and the password
    class, so that the assertions above can fail."""
    browser = h.new_client()
    params, got = authorize(h, browser, Factors())
    claims = id_token_of(h, params, got)
    assert claims["amr"] == ["pwd"] and claims["acr"] == PASSWORD_ACR
    assert status(browser)["Data"]["Acr"] == PASSWORD_ACR


@pytest.mark.parametrize("policy", ["mfa", "passkey"])
def test_a_device_cannot_be_approved_below_the_applications_policy(h: Harness, policy: str) -> None:
    """Regression: the device page let a password-only session allow a device for an
    application whose ``mfa_policy`` asks for more (its tokens then said ``pwd``)."""
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(
            text("UPDATE applications SET device_grant = :y WHERE name = 'Wiki'"), {"y": True}
        )
    set_policy(h, policy)
    browser = h.new_client()
    page_sign_in(browser)
    started = body(
        h.client.post("/oauth2/device_authorization", data={"scope": "openid"}, headers=basic(h))
    )
    form = form_of(browser.get("/device"))
    for decision in ({}, {"decision": "allow"}):
        answer = browser.post(
            "/device", data={**form, "user_code": started["user_code"], **decision}
        )
        if policy == "passkey":  # /login/verify cannot insist on a passkey for /device
            assert answer.status_code == 403, text_of(answer)[:500]
            assert "asks for" in text_of(answer)
        else:  # a second factor: asked, then back to /device
            assert answer.status_code == 302, text_of(answer)[:500]
            assert answer.headers["Location"].startswith("/login/verify?next=%2Fdevice")
    h.clock.advance(seconds=10)
    polled = h.client.post(
        "/oauth2/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "device_code": started["device_code"],
        },
        headers=basic(h),
    )
    assert body(polled)["error"] == "authorization_pending"
    # Strong enough (a passkey sign-in reaches both): allowed.
    device = authenticator(h)
    enrol_passkey(h, browser, device)
    browser.post("/Account/logout")
    token = form_of(browser.get("/login"))["csrf"]
    challenge = options(browser, "signin", token)
    browser.post("/login", data={"csrf": token, "credential": device.get(text_of(challenge))})
    form = form_of(browser.get("/device"))
    done = browser.post(
        "/device", data={**form, "user_code": started["user_code"], "decision": "allow"}
    )
    assert done.status_code == 200, text_of(done)[:500]
