"""The Device Authorization Grant (RFC 8628), in process with an injectable clock: the
device authorization endpoint (§3.1-3.2), the token endpoint's polling (§3.4-3.5), the
hosted ``/device`` page (§3.3, §5.1, §5.4) and the application's switch."""

from __future__ import annotations

import base64
import re
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy import text

from oidc_support import PASSWORD
from oidc_support import body
from oidc_support import form_of
from oidc_support import ids
from oidc_support import rows
from oidc_support import seed
from passport.oidc import device
from passport.oidc.tokens import digest
from passport.services.applications import find_by_name
from passport.storage.models import DeviceAuthorization
from passport.storage.models import User

from support import Harness
from support import PassportClient

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")


def switch(h: Harness, name: str = "Wiki", on: bool = True) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        app.device_grant = on


def basic(h: Harness) -> dict[str, str]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def ask(h: Harness, public: bool = False, **data: str) -> Any:
    """The device's request (§3.1): Wiki with its secret, or Spa by its client_id."""
    if public:
        data = {"client_id": ids(h)["public_client_id"], **data}
        return h.client.post("/oauth2/device_authorization", data=data)
    return h.client.post("/oauth2/device_authorization", data=data, headers=basic(h))


def poll(h: Harness, device_code: str, public: bool = False) -> Any:
    data = {"grant_type": GRANT, "device_code": device_code}
    if public:
        data["client_id"] = ids(h)["public_client_id"]
        return h.client.post("/oauth2/token", data=data)
    return h.client.post("/oauth2/token", data=data, headers=basic(h))


def started(h: Harness, public: bool = False, scope: str = "openid profile") -> dict[str, Any]:
    switch(h, "Spa" if public else "Wiki")
    answer = ask(h, public, scope=scope)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return body(answer)


class Browser(PassportClient):
    """A browser at its own address: every request it makes comes from ``ip`` (Werkzeug's
    ``Client`` reads ``environ_base`` per request, not from an attribute)."""

    def __init__(self, app: Any, ip: str) -> None:
        super().__init__(app)
        self.ip = ip

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if not args or isinstance(args[0], str):
            kwargs.setdefault("environ_base", {"REMOTE_ADDR": self.ip})
        return super().open(*args, **kwargs)


def user(h: Harness, ip: str = "192.0.2.10") -> PassportClient:
    """A browser signed in as alice (its own cookies, its own address)."""
    client = Browser(h.app, ip)
    signed = client.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert signed.status_code == 200, signed.get_data(as_text=True)
    return client


def enter(browser: PassportClient, user_code: str, decision: str | None = None) -> Any:
    """The user types ``user_code`` on /device (and decides, when ``decision``)."""
    form = form_of(browser.get("/device"))
    data = {**form, "user_code": user_code}
    if decision is not None:
        data["decision"] = decision
    return browser.post("/device", data=data)


def decide(h: Harness, user_code: str, decision: str = "allow") -> Any:
    browser = user(h)
    shown = enter(browser, user_code)
    assert shown.status_code == 200, shown.get_data(as_text=True)
    assert "Allow" in shown.get_data(as_text=True)
    return enter(browser, user_code, decision)


def error_of(response: Any) -> str:
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    return str(body(response)["error"])


# -- discovery and the endpoint's answer ---------------------------------------------------


def test_discovery_names_the_endpoint_and_the_grant(h: Harness) -> None:
    for url in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        document = body(h.client.get(url))
        issuer = document["issuer"]
        assert document["device_authorization_endpoint"] == issuer + "/oauth2/device_authorization"
        assert GRANT in document["grant_types_supported"]


def test_the_answer_has_every_member_and_keeps_both_codes_hashed(h: Harness) -> None:
    answer = started(h)
    assert set(answer) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert USER_CODE.fullmatch(answer["user_code"])
    issuer = h.app.services.issuer
    assert answer["verification_uri"] == issuer + "/device"
    complete = urlsplit(answer["verification_uri_complete"])
    assert f"{complete.scheme}://{complete.netloc}{complete.path}" == issuer + "/device"
    assert parse_qs(complete.query) == {"user_code": [answer["user_code"]]}
    assert answer["expires_in"] == 600 and answer["interval"] == 5
    assert len(answer["device_code"]) >= 43
    with h.app.services.db.engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(text("SELECT * FROM device_authorizations")) for v in row
        )
    canonical = answer["user_code"].replace("-", "")
    assert answer["device_code"] not in stored and canonical not in stored
    assert answer["user_code"] not in stored
    assert digest(answer["device_code"]) in stored


def test_the_answer_is_not_cached(h: Harness) -> None:
    switch(h)
    answer = ask(h, scope="openid")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.mimetype == "application/json"


def test_user_codes_are_random_and_distinct(h: Harness) -> None:
    switch(h)
    codes = {body(ask(h, scope="openid"))["user_code"] for _ in range(20)}
    assert len(codes) == 20


def test_the_lifetime_is_a_setting(factory: Any) -> None:
    from oidc_support import KEK
    from oidc_support import seed

    h = factory("sqlite", "db", key_encryption_key=KEK, device_code_lifetime=120)
    h.ids = seed(h.settings.database_url)
    switch(h)
    assert body(ask(h, scope="openid"))["expires_in"] == 120


# -- who may ask -----------------------------------------------------------------------------


def test_an_application_without_the_switch_is_unauthorized_client(h: Harness) -> None:
    answer = ask(h, scope="openid")
    assert answer.status_code == 400 and body(answer)["error"] == "unauthorized_client"
    assert ask(h, public=True, scope="openid").status_code == 400
    assert rows(h, "device_authorizations") == 0


def test_switching_it_off_stops_the_polling_device(h: Harness) -> None:
    answer = started(h)
    decide(h, answer["user_code"])
    switch(h, on=False)
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "unauthorized_client"


def test_a_confidential_client_must_authenticate(h: Harness) -> None:
    switch(h)
    named = h.client.post(
        "/oauth2/device_authorization", data={"client_id": ids(h)["client_id"], "scope": "openid"}
    )
    assert named.status_code == 401 and body(named)["error"] == "invalid_client"
    wrong = h.client.post(
        "/oauth2/device_authorization",
        data={"scope": "openid"},
        headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()},
    )
    assert wrong.status_code == 401 and body(wrong)["error"] == "invalid_client"
    post = h.client.post(
        "/oauth2/device_authorization",
        data={
            "client_id": ids(h)["client_id"],
            "client_secret": ids(h)["client_secret"],
            "scope": "openid",
        },
    )
    assert post.status_code == 200


def test_a_disabled_application_gets_nothing(h: Harness) -> None:
    answer = started(h)
    decide(h, answer["user_code"])
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.enabled = False
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "invalid_client"
    assert ask(h, scope="openid").status_code == 401


def test_scopes_are_read_as_at_authorize(h: Harness) -> None:
    switch(h)
    mixed = body(ask(h, scope="openid phone email"))
    with h.app.services.db.session() as db:
        row = db.scalars(select(DeviceAuthorization)).one()
        assert row.scope == "openid email"  # the unknown "phone" is ignored
    assert mixed["user_code"]
    unknown = ask(h, scope="phone fax")
    assert unknown.status_code == 400 and body(unknown)["error"] == "invalid_scope"
    huge = ask(h, scope="openid " * 200)
    assert huge.status_code == 400 and body(huge)["error"] == "invalid_scope"
    none = ask(h)
    assert none.status_code == 200


# -- polling ---------------------------------------------------------------------------------


def test_the_whole_flow_for_a_confidential_client(h: Harness) -> None:
    answer = started(h)
    assert error_of(poll(h, answer["device_code"])) == "authorization_pending"
    done = decide(h, answer["user_code"])
    assert done.status_code == 200 and "return to your device" in done.get_data(as_text=True)
    h.clock.advance(seconds=5)
    tokens = poll(h, answer["device_code"])
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    issued = body(tokens)
    assert issued["token_type"] == "Bearer" and issued["scope"] == "openid profile"
    assert "id_token" in issued and "refresh_token" in issued  # Wiki: refresh tokens on
    userinfo = h.client.get(
        "/oauth2/userinfo", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert body(userinfo)["preferred_username"] == "alice"
    # Redeemed once: the second time is invalid_grant, and the row is gone.
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "invalid_grant"
    assert rows(h, "device_authorizations") == 0


def test_the_whole_flow_for_a_public_client(h: Harness) -> None:
    answer = started(h, public=True, scope="profile")
    assert error_of(poll(h, answer["device_code"], public=True)) == "authorization_pending"
    decide(h, answer["user_code"])
    h.clock.advance(seconds=5)
    issued = body(poll(h, answer["device_code"], public=True))
    assert issued["scope"] == "profile" and "id_token" not in issued  # no openid asked


def test_a_device_code_is_good_only_for_its_own_client(h: Harness) -> None:
    answer = started(h)
    decide(h, answer["user_code"])
    switch(h, "Spa")
    assert error_of(poll(h, answer["device_code"], public=True)) == "invalid_grant"
    h.clock.advance(seconds=5)
    assert poll(h, answer["device_code"]).status_code == 200


def test_polling_too_fast_slows_the_device_down(h: Harness) -> None:
    answer = started(h)
    code = answer["device_code"]

    def interval() -> int:
        with h.app.services.db.session() as db:
            return db.scalars(select(DeviceAuthorization.interval)).one()

    assert error_of(poll(h, code)) == "authorization_pending"
    assert error_of(poll(h, code)) == "slow_down"
    assert interval() == 10
    h.clock.advance(seconds=6)  # enough for the first interval, not for the grown one
    assert error_of(poll(h, code)) == "slow_down"
    assert interval() == 15
    h.clock.advance(seconds=15)
    assert error_of(poll(h, code)) == "authorization_pending"
    assert interval() == 15


def test_a_denial_is_access_denied(h: Harness) -> None:
    answer = started(h)
    done = decide(h, answer["user_code"], "deny")
    assert done.status_code == 200 and "refused" in done.get_data(as_text=True)
    assert error_of(poll(h, answer["device_code"])) == "access_denied"


def test_an_expired_code_is_expired_token_and_unusable_on_the_page(h: Harness) -> None:
    answer = started(h)
    h.clock.advance(seconds=601)
    assert error_of(poll(h, answer["device_code"])) == "expired_token"
    refused = enter(user(h), answer["user_code"])
    assert refused.status_code == 400 and device_wrong(refused)


def test_concurrent_redemptions_issue_once(h: Harness) -> None:
    answer = started(h)
    decide(h, answer["user_code"])
    h.clock.advance(seconds=5)

    def one(_: int) -> int:
        client = PassportClient(h.app)
        data = {"grant_type": GRANT, "device_code": answer["device_code"]}
        return client.post("/oauth2/token", data=data, headers=basic(h)).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(one, range(6)))
    assert sorted(statuses) == [200] + [400] * 5
    assert rows(h, "oauth_tokens") == 2  # one access token and one refresh token


def test_a_disabled_user_gets_nothing(h: Harness) -> None:
    answer = started(h)
    decide(h, answer["user_code"])
    with h.app.services.db.session(write=True) as db, db.begin():
        alice = db.scalars(select(User).where(User.username == "alice")).one()
        alice.disabled = True
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "invalid_grant"
    assert rows(h, "oauth_tokens") == 0


@pytest.mark.parametrize(
    "value",
    ["", " ", "x", "é" * 50, "\u202e\ufeff", "' OR '1'='1", "a" * 8192, "A" * 43],
)
def test_hostile_device_codes_are_refused(h: Harness, value: str) -> None:
    started(h)
    answer = poll(h, value)
    assert answer.status_code == 400
    assert body(answer)["error"] in ("invalid_request", "invalid_grant")
    assert "Traceback" not in answer.get_data(as_text=True)


def test_device_code_missing_too_long_in_the_url_or_repeated(h: Harness) -> None:
    started(h)
    missing = h.client.post("/oauth2/token", data={"grant_type": GRANT}, headers=basic(h))
    assert error_of(missing) == "invalid_request"
    too_long = poll(h, "a" * 8193)
    assert error_of(too_long) == "invalid_request"
    in_url = h.client.post(
        "/oauth2/token?device_code=abc", data={"grant_type": GRANT}, headers=basic(h)
    )
    assert error_of(in_url) == "invalid_request"
    assert "device_code" in body(in_url)["error_description"]
    twice = h.client.post(
        "/oauth2/token",
        data=f"grant_type={GRANT}&device_code=a&device_code=b",
        content_type="application/x-www-form-urlencoded",
        headers=basic(h),
    )
    assert error_of(twice) == "invalid_request"


@pytest.mark.parametrize(
    "data",
    [
        {"scope": ["openid"]},
        {"scope": "x" * 9000},
        {"client_id": "\x00"},
        {"client_id": "Ünïcödé 😀"},
        {"client_id": ""},
        {},
    ],
)
def test_hostile_device_authorization_requests(h: Harness, data: dict[str, Any]) -> None:
    switch(h, "Spa")
    import json

    answer = h.client.post(
        "/oauth2/device_authorization", data=json.dumps(data), content_type="application/json"
    )
    assert 400 <= answer.status_code < 500
    assert body(answer)["error"] in ("invalid_request", "invalid_client")
    assert rows(h, "device_authorizations") == 0


def test_the_endpoint_is_post_only(h: Harness) -> None:
    answer = h.client.get("/oauth2/device_authorization")
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert body(answer)["error"] == "invalid_request"


# -- the /device page ------------------------------------------------------------------------


def device_wrong(response: Any) -> bool:
    return "That code is not valid or has expired" in response.get_data(as_text=True)


def test_the_page_sends_a_signed_out_user_to_sign_in_and_back(h: Harness) -> None:
    answer = started(h)
    code = answer["user_code"]
    browser = PassportClient(h.app)
    first = browser.get("/device?" + urlencode({"user_code": code.lower()}))
    assert first.status_code == 302
    location = first.headers["Location"]
    assert location.startswith("/login?")
    back = parse_qs(urlsplit(location).query)["next"][0]
    assert back == "/device?" + urlencode({"user_code": code})
    login = browser.get(location)
    posted = browser.post(
        "/login", data={**form_of(login), "username": "alice", "password": PASSWORD}
    )
    assert posted.status_code == 302 and posted.headers["Location"] == back
    page = browser.get(back)
    html = page.get_data(as_text=True)
    # Prefilled, but nothing decided, nothing shown of the application yet (§5.4).
    assert page.status_code == 200 and f'value="{code}"' in html and "Wiki" not in html
    assert error_of(poll(h, answer["device_code"])) == "authorization_pending"
    confirm = browser.post("/device", data={**form_of(page), "user_code": code})
    assert "Wiki" in confirm.get_data(as_text=True)
    assert error_of(poll(h, answer["device_code"])) == "slow_down"  # still undecided
    done = browser.post("/device", data={**form_of(confirm), "decision": "allow"})
    assert done.status_code == 200
    h.clock.advance(seconds=10)
    assert poll(h, answer["device_code"]).status_code == 200


@pytest.mark.parametrize("value", ["bcdf ghjk", "x" * 40, "<script>", "Ünï", "", "BCDF-GHJ"])
def test_a_malformed_code_is_not_carried_through_sign_in(h: Harness, value: str) -> None:
    first = PassportClient(h.app).get("/device?" + urlencode({"user_code": value}))
    assert first.status_code == 302
    back = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    if value == "bcdf ghjk":
        assert back == "/device?user_code=BCDF-GHJK"
    else:
        assert back == "/device"


def test_the_code_is_read_in_any_case_with_dashes_and_spaces_ignored(h: Harness) -> None:
    answer = started(h)
    code = answer["user_code"]
    typed = " " + code.lower().replace("-", " ")[:6] + "-" + code.lower().replace("-", "")[5:]
    shown = enter(user(h), typed)
    assert shown.status_code == 200 and "Wiki" in shown.get_data(as_text=True)
    assert device.canonical(code.lower()) == code.replace("-", "")
    assert device.canonical("\uff22CDFGHJK") is None  # fullwidth B
    assert device.canonical("BCDFGHJKB") is None and device.canonical("BCDFGHJA") is None


def test_the_pages_have_the_csp_and_need_csrf(h: Harness) -> None:
    answer = started(h)
    browser = user(h)
    page = browser.get("/device")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script" not in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    forged = browser.post(
        "/device", data={"csrf": "x" * 43, "user_code": answer["user_code"], "decision": "allow"}
    )
    assert forged.status_code == 403
    cross = browser.post(
        "/device",
        data={**form_of(page), "user_code": answer["user_code"], "decision": "allow"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert error_of(poll(h, answer["device_code"])) == "authorization_pending"
    confirm = enter(browser, answer["user_code"])
    assert "Content-Security-Policy" in confirm.headers


def test_a_code_is_decided_once(h: Harness) -> None:
    answer = started(h)
    browser = user(h)
    assert enter(browser, answer["user_code"], "allow").status_code == 200
    again = enter(browser, answer["user_code"], "deny")
    assert again.status_code == 400 and device_wrong(again)
    h.clock.advance(seconds=5)
    assert poll(h, answer["device_code"]).status_code == 200


def test_a_decision_other_than_allow_or_deny_is_refused(h: Harness) -> None:
    answer = started(h)
    odd = enter(user(h), answer["user_code"], "maybe")
    assert odd.status_code == 400
    assert error_of(poll(h, answer["device_code"])) == "authorization_pending"


def test_a_wrong_code_tells_nothing_about_applications(h: Harness) -> None:
    answer = started(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.enabled = False
    browser = user(h)
    disabled = enter(browser, answer["user_code"])
    random = enter(browser, "BCDF-GHJK" if answer["user_code"] != "BCDF-GHJK" else "ZZZZ-ZZZZ")
    assert disabled.status_code == random.status_code == 400
    strip = re.compile(r'name="csrf" value="[^"]*"')
    assert strip.sub("", disabled.get_data(as_text=True)) == strip.sub(
        "", random.get_data(as_text=True)
    )
    assert "Wiki" not in disabled.get_data(as_text=True)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "\u202e",
        "\uff22\uff23\uff24\uff26-\uff27\uff28\uff2a\uff2b",  # fullwidth BCDF-GHJK
        "<script>alert(1)</script>",
        "' OR '1'='1",
        "é" * 4000,
    ],
)
def test_hostile_codes_on_the_page(h: Harness, value: str) -> None:
    started(h)
    answer = enter(user(h), value)
    assert answer.status_code == 400 and device_wrong(answer)
    assert "<script>alert" not in answer.get_data(as_text=True)


def test_a_huge_form_is_refused_with_the_error_page(h: Harness) -> None:
    browser = user(h)
    form = form_of(browser.get("/device"))
    answer = browser.post("/device", data={**form, "user_code": "B" * 70000})
    assert answer.status_code in (400, 413) and answer.mimetype == "text/html"


def signed_in(h: Harness, name: str, ip: str) -> PassportClient:
    """A browser at ``ip`` signed in as a new user ``name``."""
    password = "another correct horse battery"
    assert h.register(name, password).status_code == 200
    browser = Browser(h.app, ip)
    signed = browser.post("/Account/login", data={"username": name, "password": password})
    assert signed.status_code == 200, signed.get_data(as_text=True)
    return browser


def test_wrong_codes_are_throttled_per_address(h: Harness) -> None:
    answer = started(h)
    browser = user(h)
    for _ in range(10):
        assert enter(browser, "ZZZZ-ZZZZ").status_code == 400
    limited = enter(browser, answer["user_code"])  # even the right one: the account waits
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "Too many wrong codes" in limited.get_data(as_text=True)
    # Another account on the same address is held back too — for wrong codes.
    bob = signed_in(h, "bob", "192.0.2.10")
    assert enter(bob, "ZZZZ-ZZZZ").status_code == 429
    h.clock.advance(seconds=int(limited.headers["Retry-After"]) + 1)
    assert enter(browser, answer["user_code"]).status_code == 200


def test_a_guesser_behind_the_same_address_cannot_lock_out_a_real_code(h: Harness) -> None:
    """F2 (RFC 8628 §5.1, ASVS anti-automation without malicious lockout): wrong codes
    from one address hold back only wrong codes from it; a user behind the same NAT
    entering the live code their device shows goes through, and can allow it."""
    answer = started(h)
    mallory = signed_in(h, "mallory", "192.0.2.10")
    for _ in range(10):
        assert enter(mallory, "ZZZZ-ZZZZ").status_code == 400
    assert enter(mallory, "ZZZZ-ZZZZ").status_code == 429
    # Mallory keeps the address's window closed with wrong codes: it stays closed to them.
    eve = signed_in(h, "eve", "192.0.2.10")
    assert enter(eve, "ZZZZ-ZZZZ").status_code == 429
    alice = user(h, "192.0.2.10")
    shown = enter(alice, answer["user_code"])
    assert shown.status_code == 200 and "Allow" in shown.get_data(as_text=True)
    assert enter(alice, answer["user_code"], "allow").status_code == 200
    assert "access_token" in body(poll(h, answer["device_code"]))
    # A wrong code from alice at that address is still held back.
    assert enter(alice, "ZZZZ-ZZZZ").status_code == 429


def test_an_account_behind_an_address_over_its_limit_is_no_free_oracle(h: Harness) -> None:
    """M3 (RFC 8628 §5.1, ASVS 5 §6.3.1): behind an address over its limit, a wrong code
    is 429 and a live one the confirm page; were the wrong ones free to the account,
    that difference would be an unlimited oracle.  Each still costs the account an
    attempt: past its own limit, the account gets 429 for the real code too."""
    answer = started(h)
    mallory = signed_in(h, "mallory", "192.0.2.10")
    for _ in range(10):
        assert enter(mallory, "ZZZZ-ZZZZ").status_code == 400
    eve = signed_in(h, "eve", "192.0.2.10")
    for _ in range(10):  # throttle_device_code_limit: eve's own budget of guesses
        assert enter(eve, "ZZZZ-ZZZZ").status_code == 429
    assert enter(eve, answer["user_code"]).status_code == 429
    # Alice, at the same address with her own budget, still gets through with it.
    assert enter(user(h, "192.0.2.10"), answer["user_code"]).status_code == 200


def test_wrong_codes_from_one_ipv6_64_share_a_counter(h: Harness) -> None:
    """F3: an IPv6 client may use any address of its /64; the address counter is the /64."""
    started(h)
    for n in range(10):
        guesser = signed_in(h, f"guesser{n}", f"2001:db8:5:6::{n + 1:x}")
        assert enter(guesser, "ZZZZ-ZZZZ").status_code == 400
    other = signed_in(h, "other", "2001:db8:5:6:ffff:ffff:ffff:fffe")
    assert enter(other, "ZZZZ-ZZZZ").status_code == 429
    elsewhere = signed_in(h, "elsewhere", "2001:db8:5:7::1")
    assert enter(elsewhere, "ZZZZ-ZZZZ").status_code == 400


def test_wrong_codes_are_throttled_per_account(h: Harness) -> None:
    answer = started(h)
    for n in range(10):
        assert enter(user(h, f"198.51.100.{n}"), "ZZZZ-ZZZZ").status_code == 400
    assert enter(user(h, "203.0.113.7"), answer["user_code"]).status_code == 429


def test_right_codes_are_not_counted(h: Harness) -> None:
    browser = user(h)
    switch(h)
    for _ in range(12):
        code = body(ask(h, scope="openid"))["user_code"]
        assert enter(browser, code).status_code == 200


def test_decisions_are_audited(h: Harness) -> None:
    first, second = started(h), started(h)
    decide(h, first["user_code"], "allow")
    decide(h, second["user_code"], "deny")
    enter(user(h), "ZZZZ-ZZZZ")
    with h.app.services.db.engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT outcome, username, application FROM audit_events "
                "WHERE event = 'device_authorization' ORDER BY id"
            )
        ).all()
    outcomes = [tuple(r) for r in found]
    assert ("allowed", "alice", "Wiki") in outcomes and ("denied", "alice", "Wiki") in outcomes
    assert ("wrong_code", "alice", "") in outcomes


def test_signing_out_ends_what_the_session_allowed(h: Harness) -> None:
    """An allowed, unredeemed device is dropped with the session that allowed it (as its
    unused codes are), and with every session of the user when their access ends."""
    first, second = started(h), started(h)
    browser = user(h)
    assert enter(browser, first["user_code"], "allow").status_code == 200
    other = user(h, "192.0.2.20")
    assert enter(other, second["user_code"], "allow").status_code == 200
    assert browser.post("/Account/logout").status_code == 200
    h.clock.advance(seconds=5)
    assert error_of(poll(h, first["device_code"])) == "invalid_grant"
    changed = other.post(
        "/Account/changePassword",
        data={"oldPassword": PASSWORD, "newPassword": "a brand new correct horse"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert error_of(poll(h, second["device_code"])) == "invalid_grant"


# -- what anyone may store in a public client's name (F1) ----------------------------------


def public_ask(h: Harness, ip: str = "192.0.2.1") -> Any:
    data = {"client_id": ids(h)["public_client_id"], "scope": "openid"}
    return h.client.post(
        "/oauth2/device_authorization", data=data, environ_base={"REMOTE_ADDR": ip}
    )


def test_pending_authorizations_per_client_are_capped_without_dropping_one(
    factory: Any,
) -> None:
    """A client has at most ``max_device_authorizations_per_client`` pending; one more is
    429 ``invalid_request`` with Retry-After, and every pending one still completes."""
    h: Harness = factory("sqlite", "db", max_device_authorizations_per_client=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    switch(h, "Spa")
    first = [public_ask(h, f"198.51.100.{n}") for n in range(3)]
    assert [a.status_code for a in first] == [200] * 3
    refused = public_ask(h, "198.51.100.9")
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert body(refused)["error"] == "invalid_request"
    assert 0 < int(refused.headers["Retry-After"]) <= 600
    assert rows(h, "device_authorizations") == 3
    switch(h, "Wiki")
    assert ask(h).status_code == 200  # another client is not held back
    # None was dropped: the first still completes.
    code = body(first[0])
    assert enter(user(h), code["user_code"], "allow").status_code == 200
    assert "access_token" in body(poll(h, code["device_code"], public=True))
    assert public_ask(h).status_code == 200  # one decided and redeemed: room again
    h.clock.advance(seconds=601)
    assert [public_ask(h, f"203.0.113.{n}").status_code for n in range(3)] == [200] * 3


def test_one_address_fills_only_its_share_of_a_public_clients_authorizations(
    factory: Any,
) -> None:
    """M2 (RFC 8628 §5.2, ASVS 5 §6.3.1: no malicious lockout): one address holds at most
    ``max_live_requests_per_client_address`` pending authorizations of a public client;
    another address still gets through, and a confidential client with its secret is
    not held to it."""
    h: Harness = factory("sqlite", "db", max_live_requests_per_client_address=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    switch(h, "Spa")
    switch(h, "Wiki")
    assert [public_ask(h).status_code for _ in range(3)] == [200] * 3
    refused = public_ask(h)
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert body(refused)["error"] == "invalid_request"
    assert 0 < int(refused.headers["Retry-After"]) <= 600
    assert rows(h, "device_authorizations") == 3
    code = body(public_ask(h, "192.0.2.2"))  # the user elsewhere
    assert enter(user(h), code["user_code"], "allow").status_code == 200
    assert "access_token" in body(poll(h, code["device_code"], public=True))
    for _ in range(5):
        assert ask(h).status_code == 200  # proven: the client cap only
    h.clock.advance(seconds=601)
    assert public_ask(h).status_code == 200


def test_requests_without_credentials_are_throttled_per_address(factory: Any) -> None:
    h: Harness = factory("sqlite", "db", throttle_client_request_limit=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    switch(h, "Spa")
    switch(h, "Wiki")
    assert [public_ask(h).status_code for _ in range(3)] == [200] * 3
    limited = public_ask(h)
    assert limited.status_code == 429 and body(limited)["error"] == "invalid_request"
    wait = int(limited.headers["Retry-After"])
    assert wait > 0
    assert public_ask(h, "::ffff:192.0.2.1").status_code == 429  # the same IPv4 client
    assert public_ask(h, "192.0.2.2").status_code == 200
    for _ in range(4):
        assert ask(h).status_code == 200  # an authenticated client is not counted
    h.clock.advance(seconds=wait + 1)
    assert public_ask(h).status_code == 200


@pytest.mark.parametrize(
    "headers, extra",
    [
        ({}, {"client_assertion": "x"}),
        ({}, {"client_secret": ""}),
        ({"Authorization": "Bearer x"}, {}),
    ],
    ids=["client_assertion", "empty client_secret", "Bearer header"],
)
def test_credentials_that_prove_nothing_are_counted_per_address(
    factory: Any, headers: dict[str, str], extra: dict[str, str]
) -> None:
    """M1 (RFC 8628 §5.2, ASVS 5 §6.3.1): only a proven secret skips the address's
    counter; an assertion or a Bearer header is refused invalid_client (RFC 6749 §2.3)."""
    h: Harness = factory("sqlite", "db", throttle_client_request_limit=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    switch(h, "Spa")
    data = {"client_id": ids(h)["public_client_id"], "scope": "openid", **extra}
    env = {"REMOTE_ADDR": "192.0.2.1"}
    for _ in range(3):
        answer = h.client.post(
            "/oauth2/device_authorization", data=data, headers=headers, environ_base=env
        )
        assert answer.status_code in (200, 401), answer.get_data(as_text=True)
    assert public_ask(h).status_code == 429
    assert public_ask(h, "192.0.2.2").status_code == 200


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def test_concurrent_requests_never_overshoot_the_cap(factory: Any, backend: str) -> None:
    """The cap is a count and an insert: requests arriving at once, from many addresses,
    must not all see room (RFC 8628 §5.2; ASVS 5 §2.4.1) — the client's row is locked
    before counting (``device.pending_room``)."""
    h: Harness = factory(
        backend, "db", max_device_authorizations_per_client=3, throttle_client_request_limit=1_000
    )
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    switch(h, "Spa")
    data = {"client_id": ids(h)["public_client_id"], "scope": "openid"}
    start = Barrier(12)

    def one(n: int) -> int:
        client = PassportClient(h.app)
        start.wait()
        address = {"REMOTE_ADDR": f"198.51.100.{n + 1}"}
        answer = client.post("/oauth2/device_authorization", data=data, environ_base=address)
        return answer.status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(one, range(12)))
    assert sorted(statuses) == [200] * 3 + [429] * 9, statuses
    assert rows(h, "device_authorizations") == 3
