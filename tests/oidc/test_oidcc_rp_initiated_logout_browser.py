"""RP-Initiated Logout 1.0 §2 by POST in Debian's Chromium (Playwright): an application's
page on another site posts the logout request (a form, no token) to ``/logout``.  The
cross-site POST does not carry Passport's ``SameSite=Lax`` session cookie, so Passport
hands the request on as a GET (303), which does: the signed-in user is asked, and only
the confirmation signs out and returns to the application with ``state``.  The
application's pages are intercepted in the browser, so nothing needs to listen there."""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from oidc_support import PASSWORD
from oidc_support import SIGNED_OUT
from oidc_support import Provider

pytestmark = pytest.mark.live
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
# Another site than Passport's 127.0.0.1 (a site ignores the port): "localhost".
RP_PAGE = "http://localhost:9/signing-out"


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_oidcc_rp_initiated_logout_post_in_a_real_browser(provider: Provider) -> None:
    from playwright.sync_api import sync_playwright

    fields = {
        "client_id": provider.client_id,
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "bye",
        "ui_locales": "en",
    }
    inputs = "".join(
        f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in fields.items()
    )
    rp_page = (
        f'<!doctype html><form method="post" action="{provider.url}/logout">{inputs}'
        '<button id="out" type="submit">Sign out</button></form>'
    )
    posts: list[dict[str, Any]] = []

    def application(route: Any) -> None:
        if route.request.url == RP_PAGE:
            route.fulfill(status=200, content_type="text/html", body=rp_page)
        else:
            route.fulfill(status=200, content_type="text/plain", body="client got it")

    def watch(request: Any) -> None:
        if request.method == "POST" and request.url == f"{provider.url}/logout":
            posts.append({"origin": request.headers.get("origin"), "body": request.post_data})

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.route("http://127.0.0.1:9/**", application)
        page.route("http://localhost:9/**", application)
        page.on("request", watch)
        query = {
            "client_id": provider.client_id,
            "redirect_uri": provider.redirect_uri,
            "response_type": "code",
            "scope": "openid",
            "state": "in",
        }
        page.goto(f"{provider.url}/oauth2/authorize?" + urlencode(query))
        page.get_by_label("Username or email").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{provider.url}/consent**")
        page.click("button[value=allow]")
        page.wait_for_url(f"{provider.redirect_uri}**")

        page.goto(RP_PAGE)
        page.click("#out")
        page.wait_for_url(f"{provider.url}/logout?**")  # the POST, handed on as a GET
        assert "You are signed in as alice" in (page.text_content("main") or "")
        page.click("button[type=submit]")  # the user confirms
        page.wait_for_url(SIGNED_OUT + "?state=bye")
        page.goto(f"{provider.url}/logout")
        assert "You are signed out" in (page.text_content("main") or "")
        browser.close()

    [posted] = [p for p in posts if "csrf" not in (p["body"] or "")]
    assert posted["origin"] == "http://localhost:9"  # cross-site indeed
