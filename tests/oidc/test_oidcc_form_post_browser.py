"""``response_mode=form_post`` in Debian's Chromium (Playwright): the answer page's CSP lets
its one script submit the form to the redirect URI (no CSP report in the console), and
with JavaScript off its ``<noscript>`` button sends the same form.  The client's
redirect URI is intercepted in the browser, so nothing needs to listen there."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode

import pytest
import requests

from oidc_support import PASSWORD
from oidc_support import Provider

pytestmark = pytest.mark.live
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _sign_in_and_allow(page: Any, provider: Provider, javascript: bool) -> None:
    page.goto(
        f"{provider.url}/oauth2/authorize?"
        + urlencode(
            {
                "client_id": provider.client_id,
                "redirect_uri": provider.redirect_uri,
                "response_type": "code",
                "scope": "openid phone",
                "state": "xyz",
                "response_mode": "form_post",
            }
        )
    )
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{provider.url}/consent**")
    page.click("button[value=allow]")
    if not javascript:
        page.get_by_role("button", name="Continue").click()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
@pytest.mark.parametrize("javascript", [True, False], ids=["script", "noscript"])
def test_oidcc_response_mode_form_post_in_a_real_browser(
    provider: Provider, javascript: bool
) -> None:
    from playwright.sync_api import sync_playwright

    posted: list[dict[str, Any]] = []
    console: list[str] = []

    def client(route: Any) -> None:
        request = route.request
        posted.append(
            {
                "method": request.method,
                "url": request.url,
                "body": request.post_data or "",
                "origin": request.headers.get("origin"),
            }
        )
        route.fulfill(status=200, content_type="text/plain", body="client got it")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(java_script_enabled=javascript)
        page = context.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.route("http://127.0.0.1:9/**", client)
        _sign_in_and_allow(page, provider, javascript)
        page.wait_for_url(provider.redirect_uri)
        assert page.text_content("body") == "client got it"
        browser.close()

    assert not [m for m in console if "Content Security Policy" in m], console
    [request] = posted
    assert request["method"] == "POST" and request["url"] == provider.redirect_uri
    assert request["origin"] == provider.url  # referrer policy "origin": not "null"
    fields = {k: v[0] for k, v in parse_qs(request["body"]).items()}
    assert set(fields) == {"code", "state", "iss"} and fields["state"] == "xyz"
    assert fields["iss"] == provider.url
    basic = base64.b64encode(f"{provider.client_id}:{provider.client_secret}".encode()).decode()
    issued = requests.post(
        f"{provider.url}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": fields["code"],
            "redirect_uri": provider.redirect_uri,
        },
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    ).json()
    assert issued["scope"] == "openid" and "id_token" in issued
