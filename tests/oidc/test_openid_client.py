"""panva's openid-client (v6, the strictest certified relying-party library) against a
live Passport: every flow an application runs, each step done by the library
(``tests/clients/openid_client_rp.mjs``) and the browser's part played here with
:func:`follow_to_client`.

openid-client checks what a careless client would not: the authorization response's
``state`` and ``iss`` (RFC 9207 §2.4), the PKCE exchange, the ID token's signature
(non-repudiation checks on, against the JWK Set), ``iss``, ``aud``, ``exp``, ``iat``,
``nonce`` and ``auth_time`` against ``max_age`` (OIDC Core §3.1.3.7), that the UserInfo
``sub`` is the ID token's (§5.3.4), and it form-urlencodes ``client_secret_basic``
credentials as RFC 6749 §2.3.1 says (``-`` as ``%2D``: the failure that hit 87 % of the
credentials Passport issues before the fix).  It does not check ``at_hash`` in the code
flow (oauth4webapi checks ``c_hash`` only for hybrid responses, which Passport does not
offer): this file does, with the ID token's other claims.

Pushed Authorization Requests (RFC 9126) are openid-client's
``buildAuthorizationUrlWithPAR``; the Device Authorization Grant (RFC 8628) its
``initiateDeviceAuthorization`` and ``pollDeviceAuthorizationGrant``, polling in a Node
process of its own while requests plays the user on ``/device``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests

import node_clients
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import Provider
from oidc_support import follow_to_client
from oidc_support import hidden_fields
from passport.services import clients
from passport.services import directory
from passport.storage.db import Database

from conftest import make_settings

pytestmark = pytest.mark.live

DRIVER = "openid_client_rp.mjs"
# What form-urlencoding (RFC 6749 Appendix B, as openid-client spells it) changes.
ESCAPED = set("-_.~")


@pytest.fixture(autouse=True)
def _openid_client_installed() -> None:
    """Fail at once, before a server starts, when the library is not installed."""
    node_clients.require("openid-client")


@dataclass
class RP:
    """One application as openid-client sees it, and the steps it runs."""

    issuer: str
    client_id: str
    secret: str | None
    auth: str  # "basic", "post" or "none"
    browser: requests.Session = field(default_factory=requests.Session)

    def payload(self, **extra: Any) -> dict[str, Any]:
        client = {"id": self.client_id, "secret": self.secret, "auth": self.auth}
        return {"issuer": self.issuer, "client": client, **extra}

    def answer(self, step: str, **extra: Any) -> dict[str, Any]:
        return node_clients.run(DRIVER, step, self.payload(**extra), package="openid-client")

    def ok(self, step: str, **extra: Any) -> Any:
        answer = self.answer(step, **extra)
        assert "ok" in answer, (step, answer)
        return answer["ok"]

    def refused(self, step: str, **extra: Any) -> dict[str, Any]:
        answer = self.answer(step, **extra)
        assert "error" in answer, (step, answer)
        return answer["error"]  # type: ignore[no-any-return]

    def start(self, *, par: bool = False, **params: str) -> dict[str, Any]:
        return self.ok(  # type: ignore[no-any-return]
            "start",
            redirect_uri=REDIRECT,
            scope="openid profile email offline_access",
            params=params,
            par=par,
        )

    def through_browser(self, url: str, visited: list[str] | None = None) -> str:
        return follow_to_client(
            self.browser,
            url,
            self.issuer,
            REDIRECT,
            username="alice",
            password=PASSWORD,
            visited=visited,
        )

    def sign_in(
        self, visited: list[str] | None = None, *, par: bool = False, **params: str
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The whole code flow (the request pushed first with ``par``); returns what
        "start" printed, the callback URL and what "finish" printed (tokens and the
        validated ID token claims)."""
        started = self.start(par=par, **params)
        callback = self.through_browser(started["url"], visited)
        done = self.ok("finish", callback=callback, remember=started["remember"])
        return started, callback, done


def create_application(
    p: Provider,
    name: str,
    *,
    confidential: bool = True,
    credentials: tuple[str, str] | None = None,
    device_grant: bool = False,
    require_par: bool = False,
) -> tuple[str, str | None]:
    """A new application of the live server's database (no consent given yet), returning
    to ``SIGNED_OUT`` after RP-Initiated Logout; its client id and secret are Passport's
    own, or ``credentials`` when given; ``device_grant`` and ``require_par``
    (``require_pushed_authorization_requests``) its switches."""
    settings = make_settings(p.database_url)
    database = Database(settings)
    try:
        with database.session(write=True) as db, db.begin():
            app, secret = directory.create_application(
                db,
                datetime.now(UTC),
                name,
                redirect_uris=[REDIRECT],
                post_logout_redirect_uris=[SIGNED_OUT],
                confidential=confidential,
            )
            if credentials is not None:
                app.client_id, secret = credentials
                app.secret_hash = clients.hash_secret(secret)
            app.device_grant = device_grant
            app.require_pushed_authorization_requests = require_par
            return app.client_id or "", secret
    finally:
        database.dispose()


def basic_client(p: Provider, kind: str) -> RP:
    """A ``client_secret_basic`` application whose credentials hold what form-urlencoding
    changes: Passport's own (``-`` or ``_`` in them, as in 87 % of those issued), or a
    random secret with ``-``, ``_``, ``.`` and ``~`` in both the id and the secret."""
    if kind == "issued":
        for attempt in range(20):
            client_id, secret = create_application(p, f"Basic RP {attempt}")
            assert secret is not None
            if ESCAPED & set(client_id + secret):
                return RP(p.url, client_id, secret, "basic")
        raise AssertionError("20 issued credentials without - or _")
    client_id = f"rp-{secrets.token_hex(4)}_v1.0~x"
    secret = f"{secrets.token_urlsafe(32)}-_.~"
    create_application(p, "Basic RP", credentials=(client_id, secret))
    return RP(p.url, client_id, secret, "basic")


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6 for ES256/RS256: the left half of the SHA-256, base64url."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def challenge(refused: dict[str, Any]) -> tuple[str, str | None]:
    """The scheme and ``error`` of the one ``WWW-Authenticate`` challenge openid-client
    refused with."""
    assert refused["name"] == "WWWAuthenticateChallengeError", refused
    [only] = refused["cause"]
    return only["scheme"].lower(), only["parameters"].get("error")


def check_sign_in(rp: RP, started: dict[str, Any], callback: str, done: dict[str, Any]) -> None:
    """What a sign-in must have given, beyond what openid-client already checked."""
    assert started["server"]["authorization_response_iss_parameter_supported"] is True
    assert query_of(callback)["iss"] == rp.issuer  # RFC 9207 §2
    claims, token = done["claims"], done["token"]
    assert claims["iss"] == rp.issuer and claims["aud"] == rp.client_id
    assert claims["nonce"] == started["remember"]["nonce"]
    assert claims["preferred_username"] == "alice" and claims["email"] == "alice@example.com"
    assert claims["at_hash"] == at_hash(token["access_token"])
    assert "c_hash" not in claims  # the code flow's ID token comes from the token endpoint
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert token["refresh_token"]


def check_tokens_lifecycle(rp: RP, done: dict[str, Any], *, introspect: bool) -> None:
    """UserInfo, a refresh, introspection (confidential clients) and revocation, each as
    openid-client does it."""
    claims, token = done["claims"], done["token"]
    info = rp.ok("userinfo", access_token=token["access_token"], sub=claims["sub"])
    assert info["sub"] == claims["sub"] and info["email"] == "alice@example.com"

    renewal = rp.ok("refresh", refresh_token=token["refresh_token"])
    refreshed, renewed_claims = renewal["token"], renewal["claims"]
    # OIDC Core §12.2: the refreshed ID token (validated by openid-client) is about the same
    # authentication — same iss, sub, aud and auth_time.
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert renewed_claims[claim] == claims[claim], claim
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
    again = rp.ok("userinfo", access_token=refreshed["access_token"], sub=claims["sub"])
    assert again["sub"] == claims["sub"]

    if introspect:
        active = rp.ok("introspect", token=refreshed["access_token"])
        assert active["active"] is True and active["client_id"] == rp.client_id
        assert active["sub"] == claims["sub"]
    else:
        # RFC 7662 §2.1: a public client may not introspect; RFC 6749 §5.2: 401 with a
        # Basic challenge (the body's invalid_client is not read by openid-client).
        refused = rp.refused("introspect", token=refreshed["access_token"])
        assert refused["status"] == 401 and challenge(refused)[0] == "basic", refused

    assert rp.ok("revoke", token=refreshed["refresh_token"], token_type_hint="refresh_token")
    # RFC 7009 §2.1: the refresh token and the access tokens issued with it are gone.
    refused = rp.refused("refresh", refresh_token=refreshed["refresh_token"])
    assert refused.get("error") == "invalid_grant", refused
    gone = rp.refused("userinfo", access_token=refreshed["access_token"], sub=claims["sub"])
    assert challenge(gone) == ("bearer", "invalid_token"), gone  # RFC 6750 §3.1
    if introspect:
        assert rp.ok("introspect", token=refreshed["access_token"]) == {"active": False}


@pytest.mark.parametrize("kind", ["issued", "unreserved"])
def test_code_flow_client_secret_basic(provider: Provider, kind: str) -> None:
    rp = basic_client(provider, kind)
    visited: list[str] = []
    started, callback, done = rp.sign_in(visited)
    assert visited == ["login", "consent"]
    check_sign_in(rp, started, callback, done)
    check_tokens_lifecycle(rp, done, introspect=True)


def test_code_flow_client_secret_post(provider: Provider) -> None:
    client_id, secret = create_application(provider, "Post RP")
    rp = RP(provider.url, client_id, secret, "post")
    started, callback, done = rp.sign_in()
    check_sign_in(rp, started, callback, done)
    check_tokens_lifecycle(rp, done, introspect=True)


def test_code_flow_public_client_with_pkce(provider: Provider) -> None:
    client_id, secret = create_application(provider, "Public RP", confidential=False)
    assert secret is None
    rp = RP(provider.url, client_id, None, "none")
    started, callback, done = rp.sign_in()
    check_sign_in(rp, started, callback, done)
    check_tokens_lifecycle(rp, done, introspect=False)


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_client_credentials(provider: Provider, auth: str) -> None:
    rp = RP(provider.url, provider.service_id, provider.service_secret, auth)
    token = rp.ok("client_credentials")["token"]
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert "refresh_token" not in token and "id_token" not in token  # RFC 6749 §4.4.3
    active = rp.ok("introspect", token=token["access_token"])
    assert active["active"] is True and active["client_id"] == provider.service_id
    assert rp.ok("revoke", token=token["access_token"])
    assert rp.ok("introspect", token=token["access_token"]) == {"active": False}


def test_wrong_secret_is_refused(provider: Provider) -> None:
    """The control for the basic tests: openid-client's encoding is not what lets any
    secret through."""
    rp = basic_client(provider, "unreserved")
    rp.secret = (rp.secret or "") + "x"
    refused = rp.refused("client_credentials")
    assert refused["status"] == 401 and challenge(refused)[0] == "basic", refused


def test_max_age_zero_asks_for_the_password_once(provider: Provider) -> None:
    """OIDC Core §3.1.2.1: ``max_age=0`` makes the user sign in again, once — then the
    flow completes (no loop), and openid-client's ``auth_time`` check passes."""
    rp = basic_client(provider, "issued")
    _, _, first = rp.sign_in()
    visited: list[str] = []
    started, callback, done = rp.sign_in(visited, max_age="0")
    assert visited == ["login"]  # the session was there; the consent is remembered
    check_sign_in(rp, started, callback, done)
    assert done["claims"]["auth_time"] >= first["claims"]["auth_time"]


def test_signed_in_again_without_a_prompt(provider: Provider) -> None:
    """The control for max_age=0: with the session alive no page is shown at all."""
    rp = basic_client(provider, "issued")
    rp.sign_in()
    visited: list[str] = []
    started, callback, done = rp.sign_in(visited)
    assert visited == []
    check_sign_in(rp, started, callback, done)


def test_openid_client_checks_nonce_and_iss(provider: Provider) -> None:
    """openid-client compares the ID token's ``nonce`` and the response's ``iss`` with
    what it expects: another nonce, or an ``iss`` that is not Passport's, is refused — so
    the passing flows above did check Passport's values."""
    rp = basic_client(provider, "issued")
    started = rp.start()
    callback = rp.through_browser(started["url"])
    forged = started["remember"] | {"nonce": "another-nonce"}
    refused = rp.refused("finish", callback=callback, remember=forged)
    assert refused.get("code") == "OAUTH_JWT_CLAIM_COMPARISON_FAILED", refused
    assert '"nonce"' in refused["cause"]["message"], refused

    started = rp.start()
    callback = rp.through_browser(started["url"])
    other_iss = callback.replace(
        "iss=" + quote(rp.issuer, safe=""), "iss=http%3A%2F%2Fevil.example"
    )
    assert other_iss != callback
    refused = rp.refused("finish", callback=other_iss, remember=started["remember"])
    assert refused.get("code") == "OAUTH_INVALID_RESPONSE", refused
    assert '"iss"' in refused["cause"]["message"], refused


def test_prompt_none_without_a_session_is_an_error_openid_client_reads(
    provider: Provider,
) -> None:
    """OIDC Core §3.1.2.6: ``prompt=none`` with nobody signed in is ``login_required``,
    sent to the redirect URI with ``state`` and ``iss`` (RFC 9207 §2: error responses
    too), so openid-client accepts the response as Passport's and reports the error."""
    rp = basic_client(provider, "issued")
    started = rp.start(prompt="none")
    visited: list[str] = []
    callback = rp.through_browser(started["url"], visited)
    assert visited == []
    assert query_of(callback)["iss"] == rp.issuer
    refused = rp.refused("finish", callback=callback, remember=started["remember"])
    assert refused["name"] == "AuthorizationResponseError", refused
    assert refused["error"] == "login_required", refused


def test_rp_initiated_logout(provider: Provider) -> None:
    """RP-Initiated Logout 1.0: openid-client's end-session URL asks the user to confirm,
    signs out and returns to the registered ``post_logout_redirect_uri`` with ``state``
    (§3); again when already signed out (§2); then a sign-in asks for the password."""
    rp = basic_client(provider, "issued")
    _, _, done = rp.sign_in()
    state = secrets.token_urlsafe(12)
    url = rp.ok(
        "end_session",
        params={
            "id_token_hint": done["token"]["id_token"],
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": state,
        },
    )["url"]
    assert url.startswith(provider.url + "/")

    page = rp.browser.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and 'action="/logout"' in page.text
    posted = rp.browser.post(
        provider.url + "/logout",
        data=hidden_fields(page.text),
        headers={"Origin": provider.url},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code in (302, 303), posted.text[:300]
    back = urljoin(provider.url, posted.headers["Location"])
    assert back.split("?")[0] == SIGNED_OUT and query_of(back) == {"state": state}

    again = rp.browser.get(url, allow_redirects=False, timeout=10)  # already signed out
    assert again.status_code in (302, 303), again.text[:300]
    assert query_of(urljoin(provider.url, again.headers["Location"])) == {"state": state}

    visited: list[str] = []
    rp.sign_in(visited)
    assert visited == ["login"]


# -- Pushed Authorization Requests (RFC 9126): buildAuthorizationUrlWithPAR --


def check_pushed(rp: RP, started: dict[str, Any]) -> None:
    """openid-client pushed its request to the endpoint discovery names, and the URL the
    browser gets carries nothing else but ``client_id`` and the ``request_uri``."""
    server = started["server"]
    endpoint = server["pushed_authorization_request_endpoint"]
    assert endpoint == rp.issuer + "/oauth2/par"  # RFC 9126 §5
    assert [(r["method"], r["url"]) for r in started["sent"]] == [("POST", endpoint)]
    url = started["url"]
    assert url.split("?")[0] == server["authorization_endpoint"]
    front = query_of(url)
    assert sorted(parse_qs(urlsplit(url).query)) == ["client_id", "request_uri"]  # §4
    assert front["client_id"] == rp.client_id
    assert front["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")  # §2.2


def par_client(p: Provider, auth: str, *, require_par: bool = False) -> RP:
    client_id, secret = create_application(
        p, f"PAR RP {auth}", confidential=auth != "none", require_par=require_par
    )
    return RP(p.url, client_id, secret, auth)


@pytest.mark.parametrize("auth", ["basic", "post", "none"])
def test_par_code_flow(provider: Provider, auth: str) -> None:
    """RFC 9126 as openid-client does it: the request pushed with the client's
    authentication (§2.1: client_secret_basic, client_secret_post, or a public client's
    client_id), the browser sent with the request_uri only (§4), the code exchanged."""
    rp = par_client(provider, auth)
    visited: list[str] = []
    started, callback, done = rp.sign_in(visited, par=True)
    check_pushed(rp, started)
    assert visited == ["login", "consent"]
    check_sign_in(rp, started, callback, done)
    # The pushed state and nonce came back: openid-client compared them, and
    # check_sign_in the nonce with what "start" remembered.
    assert query_of(callback)["state"] == started["remember"]["state"]
    info = rp.ok("userinfo", access_token=done["token"]["access_token"], sub=done["claims"]["sub"])
    assert info["sub"] == done["claims"]["sub"]


def test_par_required_refuses_openid_clients_plain_request(provider: Provider) -> None:
    """An application registered with ``require_pushed_authorization_requests`` (RFC 9126
    §6): openid-client's plain ``buildAuthorizationUrl`` comes back to the redirect URI
    with ``invalid_request`` (and ``state``, ``iss``: openid-client accepts the response
    as Passport's and reports the error), before any page is shown; the same client with
    ``buildAuthorizationUrlWithPAR`` signs in."""
    rp = par_client(provider, "basic", require_par=True)
    started = rp.start()
    assert started["sent"] == []  # nothing pushed
    assert "request_uri" not in query_of(started["url"])
    visited: list[str] = []
    callback = rp.through_browser(started["url"], visited)
    assert visited == []
    assert query_of(callback)["error"] == "invalid_request"
    assert query_of(callback)["iss"] == rp.issuer
    refused = rp.refused("finish", callback=callback, remember=started["remember"])
    assert refused["name"] == "AuthorizationResponseError", refused
    assert refused["error"] == "invalid_request", refused

    started, callback, done = rp.sign_in(visited, par=True)
    check_pushed(rp, started)
    assert visited == ["login", "consent"]
    check_sign_in(rp, started, callback, done)


# -- The Device Authorization Grant (RFC 8628): initiateDeviceAuthorization, then
# pollDeviceAuthorizationGrant while requests plays the user on /device --

USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")  # §6.1


def device_client(p: Provider, auth: str, name: str) -> RP:
    client_id, secret = create_application(p, name, confidential=auth != "none", device_grant=True)
    return RP(p.url, client_id, secret, auth)


def user_decides(rp: RP, started: dict[str, Any], application: str, decision: str) -> str:
    """The user, with a browser (requests): opens ``verification_uri``, signs in, types
    the ``user_code`` the device shows and allows or denies; the last page's text."""
    browser, base = requests.Session(), rp.issuer
    headers = {"Origin": base}
    page = browser.get(started["verification_uri"], allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?")
    login = browser.get(urljoin(base, page.headers["Location"]), timeout=10)
    form = hidden_fields(login.text) | {"username": "alice", "password": PASSWORD}
    signed = browser.post(
        f"{base}/login", data=form, headers=headers, allow_redirects=False, timeout=10
    )
    assert signed.status_code == 302, signed.text[:300]
    entry = browser.get(urljoin(base, signed.headers["Location"]), timeout=10)
    assert entry.status_code == 200 and 'name="user_code"' in entry.text, entry.text[:300]
    confirm = browser.post(
        f"{base}/device",
        data=hidden_fields(entry.text) | {"user_code": started["user_code"]},
        headers=headers,
        timeout=10,
    )
    assert confirm.status_code == 200 and application in confirm.text, confirm.text[:300]
    done = browser.post(
        f"{base}/device",
        data=hidden_fields(confirm.text) | {"decision": decision},
        headers=headers,
        timeout=10,
    )
    assert done.status_code == 200, done.text[:300]
    return done.text


@dataclass
class DeviceRun:
    started: dict[str, Any]  # the device authorization response openid-client got
    polls: list[dict[str, Any]]  # each token endpoint answer: at, status, error
    answer: dict[str, Any]  # {"ok": {token, claims, sent}} or {"error": ...}


def device_flow(
    rp: RP,
    decision: str,
    application: str,
    *,
    scope: str = "openid profile email",
    interval: int | None = None,
    wait_for: str | None = None,
) -> DeviceRun:
    """openid-client's device grant in a Node process of its own; once it printed the
    device authorization response (and, with ``wait_for``, once a poll was answered with
    that error), the user decides on /device, then the process's answer is read.
    Bounded: openid-client stops polling after ``deadline`` seconds."""
    deadline = 45
    payload = rp.payload(scope=scope, deadline=deadline)
    if interval is not None:
        payload["interval"] = interval
    polls: list[dict[str, Any]] = []
    with node_clients.start(DRIVER, "device", payload, package="openid-client") as running:
        first = running.next(timeout=20)
        assert "device" in first, first
        started = first["device"]
        while wait_for is not None:
            line = running.next(timeout=20)
            assert "poll" in line, line
            polls.append(line["poll"])
            if line["poll"]["error"] == wait_for:
                break
        user_decides(rp, started, application, decision)
        seen: list[dict[str, Any]] = []
        answer = running.answer(timeout=deadline + 10, seen=seen)
    polls += [line["poll"] for line in seen]
    return DeviceRun(started, polls, answer)


def check_device_response(rp: RP, started: dict[str, Any]) -> None:
    """RFC 8628 §3.2, as openid-client received it."""
    assert USER_CODE.fullmatch(started["user_code"]), started
    assert started["verification_uri"] == rp.issuer + "/device"
    assert started["verification_uri_complete"] == (
        rp.issuer + "/device?user_code=" + started["user_code"]
    )
    assert started["interval"] == 5 and started["expires_in"] > 0
    assert started["device_code"]


def check_device_tokens(rp: RP, run: DeviceRun, scope: str) -> None:
    """The tokens openid-client returned (it validated the ID token: signature against
    the JWK Set, iss, aud, exp, iat), their claims, and UserInfo through openid-client."""
    assert "ok" in run.answer, run.answer
    token, claims = run.answer["ok"]["token"], run.answer["ok"]["claims"]
    assert token["token_type"].lower() == "bearer" and token["expires_in"] > 0
    assert token["scope"] == scope and token["id_token"]
    assert claims["iss"] == rp.issuer and claims["aud"] == rp.client_id
    assert claims["email"] == "alice@example.com"
    # The claims of the scopes allowed, and only those (OIDC Core §5.4).
    assert ("preferred_username" in claims) == ("profile" in scope.split()), claims
    assert claims["at_hash"] == at_hash(token["access_token"])
    assert "nonce" not in claims  # the device grant has none (RFC 8628 §3.1)
    assert run.polls and run.polls[-1]["status"] == 200, run.polls
    info = rp.ok("userinfo", access_token=token["access_token"], sub=claims["sub"])
    assert info["sub"] == claims["sub"] and info["email"] == "alice@example.com"


def check_polled_at_interval(run: DeviceRun) -> None:
    """openid-client waits ``interval`` before each poll (RFC 8628 §3.5), so Passport
    never answers it ``slow_down``."""
    interval = run.started["interval"]
    times = [poll["at"] for poll in run.polls]
    assert times[0] >= interval - 0.05, run.polls
    assert all(b - a >= interval - 0.05 for a, b in pairwise(times))
    assert not [poll for poll in run.polls if poll["error"] == "slow_down"], run.polls


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_device_grant_allowed(provider: Provider, auth: str) -> None:
    rp = device_client(provider, auth, f"TV {auth}")
    run = device_flow(rp, "allow", f"TV {auth}")
    check_device_response(rp, run.started)
    check_polled_at_interval(run)
    check_device_tokens(rp, run, "openid profile email")
    # Every poll went to the token endpoint; the ID token's signature was checked
    # against the JWK Set (openid-client's non-repudiation checks).
    sent = {(r["method"], r["url"]) for r in run.answer["ok"]["sent"]}
    assert sent == {
        ("POST", provider.url + "/oauth2/token"),
        ("GET", provider.url + "/.well-known/jwks.json"),
    }


def test_device_grant_public_client(provider: Provider) -> None:
    rp = device_client(provider, "none", "Public TV")
    run = device_flow(rp, "allow", "Public TV", scope="openid email")
    check_device_response(rp, run.started)
    check_polled_at_interval(run)
    check_device_tokens(rp, run, "openid email")


def test_device_grant_denied(provider: Provider) -> None:
    """RFC 8628 §3.5: the user's denial ends the polling with ``access_denied``, which
    openid-client surfaces as the token endpoint's error."""
    rp = device_client(provider, "basic", "Denied TV")
    run = device_flow(rp, "deny", "Denied TV")
    assert "error" in run.answer, run.answer
    refused = run.answer["error"]
    assert refused["name"] == "ResponseBodyError", refused
    assert refused["error"] == "access_denied" and refused["status"] == 400, refused
    assert run.polls[-1] == run.polls[-1] | {"status": 400, "error": "access_denied"}
    check_polled_at_interval(run)


def test_device_grant_slow_down_grows_openid_clients_interval(provider: Provider) -> None:
    """A client told to poll every second, faster than Passport's 5 s: the poll that comes
    too soon is answered ``slow_down`` (RFC 8628 §3.5), openid-client adds 5 seconds to
    its interval and goes on polling, and gets the tokens once the user allowed."""
    rp = device_client(provider, "post", "Fast TV")
    run = device_flow(rp, "allow", "Fast TV", interval=1, wait_for="slow_down")
    errors = [poll["error"] for poll in run.polls]
    assert errors[:2] == ["authorization_pending", "slow_down"], run.polls
    slowed = errors.index("slow_down")
    gap = run.polls[slowed + 1]["at"] - run.polls[slowed]["at"]
    assert gap >= 1 + 5 - 0.05, run.polls
    check_device_tokens(rp, run, "openid profile email")


def test_device_grant_needs_the_switch(provider: Provider) -> None:
    """An application not registered for the device grant: openid-client's
    ``initiateDeviceAuthorization`` is refused ``unauthorized_client`` (RFC 6749 §5.2)."""
    client_id, secret = create_application(provider, "Not a TV")
    rp = RP(provider.url, client_id, secret, "basic")
    refused = rp.refused("device", scope="openid", deadline=5)
    assert refused["name"] == "ResponseBodyError", refused
    assert refused["error"] == "unauthorized_client", refused
