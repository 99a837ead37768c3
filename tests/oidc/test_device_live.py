"""The Device Authorization Grant (RFC 8628) against a live ``passport serve``: a real
client (Authlib's ``OAuth2Session.fetch_token`` with the device code grant) polls the
token endpoint while a ``requests.Session`` plays the user on ``/device``; and the
``/device`` page in Debian's Chromium (Playwright), under its CSP, without JavaScript."""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import create_engine
from sqlalchemy import text

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import hidden_fields
from oidc_support import seed
from provision import Backend

from conftest import _empty_tables

pytestmark = pytest.mark.live
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(params=["sqlite", "postgresql"])
def device_provider(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[Provider]:
    """The live provider, its Wiki and Spa allowed the device grant."""
    url = backends[request.param].url
    _empty_tables(url)
    ids = seed(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE applications SET device_grant = :on WHERE name IN ('Wiki', 'Spa')"),
            {"on": True},
        )
    engine.dispose()
    server = live_server(
        url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, "PASSPORT_KEY_ROTATION_DELAY": "0"}
    )
    yield Provider(server.url, **ids)


def device_authorization(p: Provider, scope: str) -> dict[str, Any]:
    document = requests.get(f"{p.url}/.well-known/openid-configuration", timeout=10).json()
    assert GRANT in document["grant_types_supported"]
    answer = requests.post(
        document["device_authorization_endpoint"],
        data={"scope": scope},
        auth=(p.client_id, p.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def user_allows(p: Provider, verification_uri_complete: str, decision: str = "allow") -> str:
    """A person with a browser (requests): opens the link, signs in, confirms the code
    and decides; returns the last page's text."""
    browser = requests.Session()
    url = verification_uri_complete
    headers = {"Origin": p.url}
    page = browser.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?")
    login = browser.get(urljoin(p.url, page.headers["Location"]), timeout=10)
    form = hidden_fields(login.text) | {"username": "alice", "password": PASSWORD}
    signed = browser.post(
        f"{p.url}/login", data=form, headers=headers, allow_redirects=False, timeout=10
    )
    assert signed.status_code == 302, signed.text[:300]
    prefilled = browser.get(urljoin(p.url, signed.headers["Location"]), timeout=10)
    assert prefilled.status_code == 200 and 'name="user_code"' in prefilled.text
    code = verification_uri_complete.rsplit("=", 1)[1]
    confirm = browser.post(
        f"{p.url}/device",
        data=hidden_fields(prefilled.text) | {"user_code": code},
        headers=headers,
        timeout=10,
    )
    assert confirm.status_code == 200 and "Wiki" in confirm.text, confirm.text[:300]
    done = browser.post(
        f"{p.url}/device",
        data=hidden_fields(confirm.text) | {"decision": decision},
        headers=headers,
        timeout=10,
    )
    assert done.status_code == 200, done.text[:300]
    return done.text


def test_authlib_polls_while_the_user_allows_on_device(device_provider: Provider) -> None:
    p = device_provider
    started = device_authorization(p, "openid profile offline_access")
    client = OAuth2Session(p.client_id, p.client_secret, scope="openid profile")
    token_endpoint = f"{p.url}/oauth2/token"

    def fetch() -> dict[str, Any]:
        return dict(
            client.fetch_token(token_endpoint, grant_type=GRANT, device_code=started["device_code"])
        )

    with pytest.raises(OAuthError) as pending:
        fetch()
    assert pending.value.error == "authorization_pending"
    with pytest.raises(OAuthError) as fast:
        fetch()  # at once, not after ``interval``
    assert fast.value.error == "slow_down"
    assert "return to your device" in user_allows(p, started["verification_uri_complete"])
    time.sleep(started["interval"] + 5 + 0.5)  # the interval grew by 5 s with slow_down
    token = fetch()
    assert token["scope"] == "openid profile offline_access"
    assert token["id_token"] and token["refresh_token"]
    userinfo = requests.get(
        f"{p.url}/oauth2/userinfo",
        headers={"Authorization": "Bearer " + token["access_token"]},
        timeout=10,
    ).json()
    assert userinfo["preferred_username"] == "alice"
    with pytest.raises(OAuthError) as again:
        fetch()
    assert again.value.error == "invalid_grant"  # redeemed once


def test_requests_device_sees_a_denial(device_provider: Provider) -> None:
    p = device_provider
    started = device_authorization(p, "openid")
    assert "refused" in user_allows(p, started["verification_uri_complete"], "deny")
    basic = base64.b64encode(f"{p.client_id}:{p.client_secret}".encode()).decode()
    answer = requests.post(
        f"{p.url}/oauth2/token",
        data={"grant_type": GRANT, "device_code": started["device_code"]},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_device_page_in_a_real_browser(device_provider: Provider) -> None:
    from playwright.sync_api import sync_playwright

    p = device_provider
    started = device_authorization(p, "openid email")
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(java_script_enabled=False)  # none is needed
        page = context.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.goto(started["verification_uri_complete"])
        page.wait_for_url(f"{p.url}/login**")
        page.get_by_label("Username or email").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{p.url}/device**")
        # Prefilled from the link, but the user still confirms it (RFC 8628 §5.4).
        assert page.get_by_label("Code").input_value() == started["user_code"]
        page.get_by_role("button", name="Continue").click()
        assert "Wiki" in (page.text_content("h1") or "")
        assert "See your email address" in (page.text_content("main") or "")
        page.get_by_role("button", name="Allow").click()
        assert "Device connected" in (page.text_content("h1") or "")
        # A code typed wrong, in any case, gets the message and no application's name.
        page.goto(f"{p.url}/device")
        page.get_by_label("Code").fill("zzzz zzzz")
        page.get_by_role("button", name="Continue").click()
        assert "not valid or has expired" in (page.text_content("main") or "")
        assert "Wiki" not in (page.text_content("main") or "")
        browser.close()
    assert not [m for m in console if "Content Security Policy" in m], console
    basic = base64.b64encode(f"{p.client_id}:{p.client_secret}".encode()).decode()
    issued = requests.post(
        f"{p.url}/oauth2/token",
        data={"grant_type": GRANT, "device_code": started["device_code"]},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    ).json()
    assert issued["scope"] == "openid email" and "id_token" in issued
