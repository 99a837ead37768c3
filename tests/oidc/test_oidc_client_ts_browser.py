"""oidc-client-ts, the single-page-application library, in Debian's Chromium against a
live Passport: a public client with PKCE whose calls to Passport — discovery, the token
endpoint (code exchange, refresh), UserInfo, revocation — are cross-origin ``fetch``es,
so CORS must let the registered origin read each answer.

The application (``tests/clients/spa``: one HTML page and its script, loading the
library's browser build) is served from ``127.0.0.1:<free port>`` by a thread of this
test, and registered as a public client with that origin and its redirect URIs before
Passport starts — twice: one client gets refresh tokens and renews with them, the other
gets none and renews as oidc-client-ts then does, by a ``prompt=none`` request in a
hidden iframe (Passport's ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` are
on every answer, but a browser applies them to the document a frame shows, not to a
redirect that passes through it; with ``prompt=none`` Passport never shows a page, it
redirects back to the application).

The browser's console and failed requests are recorded: a CORS refusal shows up there
and fails the test.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests

import node_clients
from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import seed
from passport.services import directory
from passport.storage.db import Database
from provision import Backend

from conftest import _empty_tables
from conftest import make_settings

pytestmark = [pytest.mark.live, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SPA = node_clients.CLIENTS / "spa"
LIBRARY = node_clients.NODE_MODULES / "oidc-client-ts" / "dist" / "browser"
PAGES = ("/", "/callback", "/silent", "/signed-out")
# signinSilent with a refresh token (a POST to the token endpoint, through CORS), or for
# an application that gets none (its refresh_tokens setting off), a prompt=none
# authorization request in a hidden iframe and a new code exchange.
RENEWALS = ("refresh_token", "iframe")


class SpaServer(ThreadingHTTPServer):
    config: bytes = b"{}"


class SpaHandler(BaseHTTPRequestHandler):
    """The application's files and nothing else: its page on each of its paths, its
    script, the library, and ``/config.json`` (Passport's URL and the client id)."""

    server: SpaServer

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        files: dict[str, tuple[Path | bytes, str]] = {
            "/app.js": (SPA / "app.js", "text/javascript"),
            "/oidc-client-ts.min.js": (LIBRARY / "oidc-client-ts.min.js", "text/javascript"),
            "/config.json": (self.server.config, "application/json"),
        }
        files |= {page: (SPA / "index.html", "text/html; charset=utf-8") for page in PAGES}
        if path == "/favicon.ico":
            self.send_response(204)
            self.end_headers()
            return
        if path not in files:
            self.send_error(404)
            return
        source, content_type = files[path]
        body = source.read_bytes() if isinstance(source, Path) else source
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the browser's own record is what the test reads."""


@dataclass
class Spa:
    url: str  # the application's origin
    passport: str
    clients: dict[str, str]  # client id of each way of renewing
    server: SpaServer
    client_id: str = ""

    def use(self, renewal: str) -> None:
        """Serve the application as the client that renews in this way."""
        self.client_id = self.clients[renewal]
        config = {"authority": self.passport, "client_id": self.client_id}
        self.server.config = json.dumps(config).encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def spa(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[Spa]:
    node_clients.require("oidc-client-ts")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    server = SpaServer(("127.0.0.1", 0), SpaHandler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    url = backends[request.param].url
    _empty_tables(url)
    seed(url)
    database = Database(make_settings(url))
    clients: dict[str, str] = {}
    try:
        with database.session(write=True) as db, db.begin():
            for renewal in RENEWALS:
                app, _ = directory.create_application(
                    db,
                    datetime.now(UTC),
                    f"Single-page app ({renewal})",
                    origins=[origin],
                    redirect_uris=[f"{origin}/callback", f"{origin}/silent"],
                    # signoutRedirect's post_logout_redirect_uri, registered for that
                    # purpose only (RP-Initiated Logout 1.0 §2, §3)
                    post_logout_redirect_uris=[f"{origin}/signed-out"],
                    confidential=False,
                )
                app.refresh_tokens = renewal == "refresh_token"
                clients[renewal] = app.client_id or ""
    finally:
        database.dispose()
    passport = live_server(url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Spa(origin, passport.url, clients, server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@dataclass
class Record:
    """What the browser saw go wrong, and the calls it made to Passport."""

    console: list[str]
    failed: list[str]
    calls: list[tuple[str, str, str]]  # method, path, body
    navigations: list[tuple[str, str]]  # method, URL: documents of any frame
    answers: list[tuple[str, str, int, str]]  # method, path, status, content type

    def problems(self) -> list[str]:
        return self.console + self.failed

    def calls_to(self, path: str) -> list[dict[str, str]]:
        return [
            {k: v[0] for k, v in parse_qs(body).items()}
            for method, at, body in self.calls
            if method == "POST" and at == path
        ]


def watch(page: Any, spa: Spa) -> Record:
    record = Record([], [], [], [], [])

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            record.console.append(f"{message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: record.console.append(f"page error: {error}"))
    page.on(
        "requestfailed",
        lambda r: record.failed.append(f"{r.method} {r.url}: {r.failure}"),
    )

    def passport_call(r: Any) -> None:
        if r.url.startswith(spa.passport + "/"):
            record.calls.append((r.method, urlsplit(r.url).path, r.post_data or ""))
        if r.is_navigation_request():
            record.navigations.append((r.method, r.url))

    def passport_answer(r: Any) -> None:
        if r.url.startswith(spa.passport + "/"):
            kind = r.headers.get("content-type", "")
            record.answers.append((r.request.method, urlsplit(r.url).path, r.status, kind))

    page.on("request", passport_call)
    page.on("response", passport_answer)
    return record


def ready(page: Any, record: Record) -> None:
    """Wait until the application's script has done its part of the page (or failed,
    and then say what the browser saw)."""
    page.wait_for_selector("body[data-ready]")
    if page.get_attribute("body", "data-ready") != "true":
        raise AssertionError(
            f"the application failed at {page.url}: {page.text_content('#error')}\n"
            + "\n".join(record.problems())
        )


def sign_in(page: Any, spa: Spa, record: Record) -> None:
    """Passport's login page, filled like a user, and the consent page if it is shown;
    then the application's callback."""
    page.wait_for_url(f"{spa.passport}/login**")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith((f"{spa.passport}/consent", spa.url)))
    if page.url.startswith(f"{spa.passport}/consent"):
        page.click("button[value=allow]")
    page.wait_for_url(lambda url: url.startswith(spa.url))
    ready(page, record)
    assert page.url == f"{spa.url}/"


@pytest.mark.parametrize("renewal", RENEWALS)
def test_oidc_client_ts_single_page_app(spa: Spa, renewal: str) -> None:
    from playwright.sync_api import sync_playwright

    spa.use(renewal)
    refreshes = renewal == "refresh_token"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        record = watch(page, spa)
        page.goto(spa.url + "/")
        ready(page, record)
        assert page.text_content("#status") == "signed out"

        # signinRedirect → Passport's login and consent → signinRedirectCallback
        page.click("#signin")
        sign_in(page, spa, record)
        assert page.text_content("#status") == "signed in", page.text_content("#error")
        profile = json.loads(page.text_content("#profile") or "")
        assert profile["preferred_username"] == "alice"
        assert profile["email"] == "alice@example.com"  # from UserInfo, through CORS
        first = page.evaluate("() => window.rp.user()")
        assert bool(first["refresh_token"]) is refreshes, first
        [exchange] = record.calls_to("/oauth2/token")
        assert exchange["grant_type"] == "authorization_code" and "code_verifier" in exchange
        assert exchange["client_id"] == spa.client_id

        # signinSilent: a cross-origin POST to the token endpoint with the refresh token,
        # or a hidden iframe's prompt=none request and a new code exchange
        renewed = page.evaluate("() => window.rp.renew()")
        assert renewed["access_token"] != first["access_token"]
        assert renewed["profile"]["sub"] == first["profile"]["sub"]
        grants = [c["grant_type"] for c in record.calls_to("/oauth2/token")]
        if refreshes:
            assert renewed["refresh_token"] != first["refresh_token"]  # rotated
            assert grants == ["authorization_code", "refresh_token"]
        else:
            assert renewed["refresh_token"] is None
            assert grants == ["authorization_code", "authorization_code"]
            authorizations = [
                parse_qs(urlsplit(url).query)
                for _, url in record.navigations
                if url.startswith(f"{spa.passport}/oauth2/authorize")
            ]  # the sign-in's, then the iframe's
            assert [q.get("prompt") for q in authorizations] == [None, ["none"]]
        info = requests.get(
            spa.passport + "/oauth2/userinfo",
            headers={"Authorization": f"Bearer {renewed['access_token']}"},
            timeout=10,
        )
        assert info.status_code == 200 and info.json()["sub"] == first["profile"]["sub"]

        # revokeTokens: cross-origin POSTs to /oauth2/revoke, answered with JSON
        assert page.evaluate("() => window.rp.revoke()") is True
        revoked = record.calls_to("/oauth2/revoke")
        hints = ["access_token", "refresh_token"] if refreshes else ["access_token"]
        assert sorted(c["token_type_hint"] for c in revoked) == hints
        assert [a[2:] for a in record.answers if a[:2] == ("POST", "/oauth2/revoke")] == [
            (200, "application/json")
        ] * len(hints)
        gone = requests.get(
            spa.passport + "/oauth2/userinfo",
            headers={"Authorization": f"Bearer {renewed['access_token']}"},
            timeout=10,
        )
        assert gone.status_code == 401
        if refreshes:
            refused = requests.post(
                spa.passport + "/oauth2/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": renewed["refresh_token"],
                    "client_id": spa.client_id,
                },
                timeout=10,
            )
            assert refused.json()["error"] == "invalid_grant"

        # signoutRedirect → Passport's end_session (the user confirms) → the application
        page.click("#signout")
        page.wait_for_url(f"{spa.passport}/logout**")
        page.click("button[type=submit]")
        page.wait_for_url(f"{spa.url}/signed-out**")
        ready(page, record)
        assert page.text_content("#status") == "signed out", page.text_content("#error")
        assert page.evaluate("() => window.rp.user()") is None

        # Passport forgot the session: a new sign-in asks for the password again
        page.click("#signin")
        sign_in(page, spa, record)
        assert page.text_content("#status") == "signed in", page.text_content("#error")
        browser.close()

    assert record.problems() == []
