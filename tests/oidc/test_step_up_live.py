"""A real relying party asks a live Passport for a multi-factor sign-in: Authlib's OpenID
Connect client (its ``OpenIDMixin``, as its Flask and Starlette integrations use it)
sends ``acr_values=urn:passport:acr:mfa`` (OIDC Core §3.1.2.1), the browser — played
with requests, form posts only — signs in with a password, adds its authenticator app's
code on ``/login/verify``, allows; Authlib redeems the code with PKCE and validates the
ID token (signature by the JWKS, ``iss``, ``aud``, ``exp``, ``nonce``, ``at_hash``, and
``acr`` as an essential claim with the value asked for)."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urljoin

import pyotp
import pytest
import requests
from authlib.integrations.base_client.sync_app import BaseApp
from authlib.integrations.base_client.sync_app import OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from joserfc.errors import InvalidClaimError

from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import hidden_fields

pytestmark = pytest.mark.live

MFA = "urn:passport:acr:mfa"
SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
FORM = re.compile(r"<form\b.*?</form>", re.S)


class RelyingParty(OAuth2Mixin, OpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's OpenID Connect client without a web framework around it."""

    client_cls = OAuth2Session


def relying_party(p: Provider) -> RelyingParty:
    return RelyingParty(
        None,
        client_id=p.client_id,
        client_secret=p.client_secret,
        server_metadata_url=p.url + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
    )


class Browser:
    """A browser without JavaScript: cookies, redirects followed by hand, forms posted
    with their hidden fields and Passport's Origin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.session.get(urljoin(self.base, url), allow_redirects=False, timeout=10)

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        return self.session.post(
            urljoin(self.base, path),
            data=data,
            allow_redirects=False,
            headers={"Origin": self.base},
            timeout=10,
        )


def form(html: str, marker: str) -> dict[str, str]:
    for found in FORM.findall(html):
        if marker in found:
            return hidden_fields(found)
    raise AssertionError(f"no form with {marker!r}: {html[:500]}")


def next_code(secret: str) -> str:
    """A code of the next time step: the one that confirmed the app is used (RFC 6238
    §5.2), and one step ahead is within the verifier's window."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def enrol_authenticator_app(browser: Browser) -> str:
    """Sign in by password, add an authenticator app on the account page (the session
    becomes a sign-in with it: ``pwd otp mfa``), and sign out: the application's request
    then meets a browser that must sign in, password and code."""
    login = browser.get("/login?next=/account")
    signed = browser.post(
        "/login", form(login.text, 'action="/login"') | {"username": "alice", "password": PASSWORD}
    )
    assert signed.status_code == 302 and signed.headers["Location"] == "/account", signed.text[:300]
    account = browser.get("/account")
    started = browser.post("/account", form(account.text, 'value="totp-start"'))
    assert started.status_code == 200, started.text[:500]
    found = SECRET.search(started.text)
    assert found is not None
    secret = found.group(1)
    confirmed = browser.post(
        "/account",
        form(started.text, 'value="totp-confirm"') | {"code": pyotp.TOTP(secret).now()},
    )
    assert "Your authenticator app was added." in confirmed.text, confirmed.text[:500]
    status = browser.get("/Account/status").json()
    assert status["Data"]["Amr"] == ["pwd", "otp", "mfa"]
    assert browser.post("/Account/logout", {}).status_code == 200
    return secret


def to_client(browser: Browser, url: str, p: Provider, secret: str, seen: list[str]) -> str:
    """Follow the authorization until Passport sends the browser to the client."""
    for _ in range(10):
        if url.startswith(p.redirect_uri):
            return url
        answer = browser.get(url)
        if answer.status_code == 302:
            url = urljoin(p.url, answer.headers["Location"])
            continue
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:500])
        path = url.removeprefix(p.url).split("?")[0]
        seen.append(path)
        if path == "/login":
            posted = browser.post(
                "/login",
                form(answer.text, 'action="/login"') | {"username": "alice", "password": PASSWORD},
            )
        elif path == "/login/verify":
            posted = browser.post(
                "/login/verify", form(answer.text, 'value="totp"') | {"code": next_code(secret)}
            )
        elif path == "/consent":
            posted = browser.post(
                "/consent", form(answer.text, 'action="/consent"') | {"decision": "allow"}
            )
        else:
            raise AssertionError(f"unexpected page {url}: {answer.text[:300]}")
        assert posted.status_code == 302, (path, posted.status_code, posted.text[:500])
        url = urljoin(p.url, posted.headers["Location"])
    raise AssertionError("too many redirects")


def test_authlib_asks_for_mfa_and_validates_amr_and_acr(provider: Provider) -> None:
    browser = Browser(provider.url)
    secret = enrol_authenticator_app(browser)
    rp = relying_party(provider)
    metadata = rp.load_server_metadata()
    assert MFA in metadata["acr_values_supported"]

    started: dict[str, Any] = rp.create_authorization_url(
        redirect_uri=provider.redirect_uri, acr_values=MFA
    )
    seen: list[str] = []
    final = to_client(browser, started["url"], provider, secret, seen)
    assert seen == ["/login", "/login/verify", "/consent"], seen
    token = rp.fetch_access_token(
        redirect_uri=provider.redirect_uri,
        authorization_response=final,
        state=started["state"],
        code_verifier=started["code_verifier"],
    )
    claims = rp.parse_id_token(
        token,
        nonce=started["nonce"],
        claims_options={
            "iss": {"values": [provider.url]},
            "acr": {"essential": True, "values": [MFA]},
        },
    )
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == MFA
    assert claims["preferred_username"] == "alice"
    assert browser.get("/Account/status").json()["Data"]["Acr"] == MFA

    # Authlib's acr check is live: the same token, were "phr" required, is refused.
    phr = {"iss": {"values": [provider.url]}, "acr": {"essential": True, "values": ["phr"]}}
    with pytest.raises(InvalidClaimError):
        rp.parse_id_token(token, nonce=started["nonce"], claims_options=phr)
