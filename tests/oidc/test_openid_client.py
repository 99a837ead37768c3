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
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
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

    def start(self, **params: str) -> dict[str, Any]:
        return self.ok(  # type: ignore[no-any-return]
            "start",
            redirect_uri=REDIRECT,
            scope="openid profile email offline_access",
            params=params,
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
        self, visited: list[str] | None = None, **params: str
    ) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """The whole code flow; returns what "start" printed, the callback URL and what
        "finish" printed (tokens and the validated ID token claims)."""
        started = self.start(**params)
        callback = self.through_browser(started["url"], visited)
        done = self.ok("finish", callback=callback, remember=started["remember"])
        return started, callback, done


def create_application(
    p: Provider,
    name: str,
    *,
    confidential: bool = True,
    credentials: tuple[str, str] | None = None,
) -> tuple[str, str | None]:
    """A new application of the live server's database (no consent given yet); its client
    id and secret are Passport's own, or ``credentials`` when given."""
    settings = make_settings(p.database_url)
    database = Database(settings)
    try:
        with database.session(write=True) as db, db.begin():
            app, secret = directory.create_application(
                db,
                datetime.now(UTC),
                name,
                redirect_uris=[REDIRECT],
                confidential=confidential,
            )
            if credentials is not None:
                app.client_id, secret = credentials
                app.secret_hash = clients.hash_secret(secret)
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
            "post_logout_redirect_uri": REDIRECT,
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
    assert back.split("?")[0] == REDIRECT and query_of(back) == {"state": state}

    again = rp.browser.get(url, allow_redirects=False, timeout=10)  # already signed out
    assert again.status_code in (302, 303), again.text[:300]
    assert query_of(urljoin(provider.url, again.headers["Location"])) == {"state": state}

    visited: list[str] = []
    rp.sign_in(visited)
    assert visited == ["login"]
