"""Multi-factor sign-in in Debian's Chromium (Playwright, no downloaded browser) against a
live ``passport serve``: passkeys through a CDP virtual authenticator (one added on
/account signs in without a username, by the button and by autofill; an application's
``acr_values`` steps a password session up on /login/verify), an authenticator app set
up and used with codes of the real clock, and every page under its CSP (no violation in
the console, the passkey script from Passport's origin only).  The last test takes the
screenshots in docs/screenshots/ (written there with ``UPDATE_SCREENSHOTS=1``).

WebAuthn needs a secure context and an RP ID that is a domain, not an IP address: the
server's public URL, and so the page the browser opens, is ``http://localhost:<port>``.
Chromium's virtual authenticator answers a conditional (autofill) request by itself
when it may confirm presence, as a user picking the suggested passkey would; with
presence off, the request waits, as one the user has not answered.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pyotp
import pytest
import requests

from browser_support import BROWSER_MARKS
from browser_support import chromium as chromium
from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import seed
from provision import Backend

from conftest import _empty_tables
from conftest import free_port

pytestmark = BROWSER_MARKS
ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
AUTHENTICATOR = {  # a platform authenticator holding passkeys, with user verification
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
PASSKEY_SCRIPT = re.compile(r"/assets/passkey-[0-9a-f]{16}\.js")
ALLOW_PRIVATE = {"PASSPORT_BACKCHANNEL_ALLOW_PRIVATE": "true"}
# Counts the page's navigator.credentials.get calls (an init script: not the page's, so
# outside its CSP), for the test to know the autofill request has started; waited for
# with a function, not a string (which Playwright evaluates by eval, refused by the CSP).
COUNT_REQUESTS = """
(() => {
  const get = navigator.credentials.get.bind(navigator.credentials);
  window.passkeyRequests = 0;
  navigator.credentials.get = (options) => { window.passkeyRequests += 1; return get(options); };
})();
"""
NO_AUTOFILL = "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"


@dataclass
class Tab:
    """A page of a fresh browser profile with a virtual authenticator, and what the
    browser reported meanwhile: console messages, uncaught errors, scripts loaded and
    the passkey script's requests for challenges."""

    page: Any
    base: str
    cdp: Any = None
    authenticator: str = ""
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    challenges: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        page = self.page
        page.set_default_timeout(15_000)
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._request)
        page.add_init_script(COUNT_REQUESTS)
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")
        added = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        self.authenticator = added["authenticatorId"]

    def _request(self, request: Any) -> None:
        if request.resource_type == "script":
            self.scripts.append(request.url)
        if urlsplit(request.url).path == "/webauthn/options":
            self.challenges.append(request.post_data or "")

    def presence(self, on: bool) -> None:
        """Whether the authenticator confirms presence by itself (else requests wait)."""
        self.cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": self.authenticator, "enabled": on},
        )

    def credentials(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )["credentials"]
        return found

    def status(self) -> dict[str, Any]:
        """``/Account/status`` with the browser's cookies (the context's request client
        shares them; a fetch in the page would break the pages' CSP, connect-src 'none')."""
        answer = self.page.context.request.get(f"{self.base}/Account/status")
        assert answer.ok, answer.text()
        data: dict[str, Any] = answer.json()["Data"]
        return data

    def assert_clean(self, refused: int = 0) -> None:
        """No CSP violation or script error, and the one script Passport's own; the
        console's errors only the ``refused`` pages the test expects (a wrong code's
        page comes with 401: Chromium says so as an error)."""
        assert not [m for m in self.console if "Content Security Policy" in m], self.console
        errors = [m for m in self.console if m.startswith("error:")]
        assert len(errors) == refused, self.console
        assert all("status of 401" in m for m in errors), errors
        assert not self.errors, self.errors
        assert self.scripts, "the passkey script never loaded"
        for url in self.scripts:
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}" == self.base, url
            assert PASSKEY_SCRIPT.fullmatch(parts.path), url

    # -- what a person does ---------------------------------------------------------------
    def sign_in_with_password(self, next_path: str = "/account") -> None:
        self.page.goto(f"{self.base}/login?" + urlencode({"next": next_path}))
        self.page.get_by_label("Username or email").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def sign_out(self) -> None:
        self.page.goto(f"{self.base}/logout")
        self.page.get_by_role("button", name="Sign out", exact=True).click()
        self.page.get_by_text("You are signed out.").wait_for()

    def add_passkey(self, name: str = "Test laptop") -> None:
        """On /account: "Add a passkey", and see it listed."""
        page = self.page
        page.goto(f"{self.base}/account")
        page.get_by_label("Name of the new passkey (optional)").fill(name)
        page.get_by_role("button", name="Add a passkey").click()
        page.get_by_text("Your passkey was added.").wait_for()
        assert page.locator(".passkeys li strong").all_text_contents() == [name]

    def set_up_authenticator_app(self) -> tuple[str, list[str]]:
        """On /account: an authenticator app set up with the key the page shows and a
        code of the real clock; the recovery codes the page then shows."""
        page = self.page
        page.goto(f"{self.base}/account")
        page.get_by_role("button", name="Set up an authenticator app").click()
        page.locator(".qr svg").wait_for()
        secret = page.locator("code.secret").inner_text().replace(" ", "")
        page.get_by_label("The code it shows").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Verify and add").click()
        page.get_by_text("Your recovery codes.").wait_for()
        return secret, page.locator(".codes code").all_text_contents()


def start_passport(
    backends: dict[str, Backend], live_server: Any, backend: str, **env: str
) -> tuple[str, str]:
    """A live Passport (alice, password ``PASSWORD``, no second factor yet) at
    ``http://localhost:<port>``; its URL and database URL."""
    url = backends[backend].url
    _empty_tables(url)
    seed(url)
    server = live_server(
        url,
        env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, **ALLOW_PRIVATE, **env},
        public_host="localhost",
    )
    return server.url, url


@pytest.fixture(params=["sqlite", "postgresql"])
def passport(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> tuple[str, str]:
    return start_passport(backends, live_server, request.param)


def open_tab(browser: Any, base: str, width: int = 1024) -> Tab:
    context = browser.new_context(viewport={"width": width, "height": 800})
    return Tab(context.new_page(), base)


def test_a_passkey_added_on_the_account_page_signs_in_without_a_username(
    passport: tuple[str, str], chromium: Any
) -> None:
    base, _ = passport
    tab = open_tab(chromium, base)
    page = tab.page
    tab.sign_in_with_password()
    page.wait_for_url(f"{base}/account")
    assert tab.status()["Amr"] == ["pwd"]
    tab.add_passkey()
    [credential] = tab.credentials()
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"
    tab.sign_out()
    assert tab.status()["User"] is None

    # The button while the autofill request waits (unanswered: presence off) aborts it
    # and asks again, with no error.
    tab.presence(False)
    tab.challenges.clear()
    page.goto(f"{base}/login")
    page.wait_for_function("() => window.passkeyRequests === 1")  # the autofill's
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_function("() => window.passkeyRequests === 2")  # the button's
    assert len(tab.challenges) == 2
    page.wait_for_timeout(300)
    assert page.locator("[data-passkey-status]").is_hidden()
    assert tab.status()["User"] is None

    # Autofill: the passkey picked from the username field's suggestions signs in.
    tab.presence(True)
    page.goto(f"{base}/login")
    page.wait_for_url(f"{base}/account")
    assert {"hwk", "mfa"} <= set(tab.status()["Amr"])
    tab.sign_out()

    # The button, in a browser without autofill for passkeys: no username typed.
    page.add_init_script(NO_AUTOFILL)
    page.goto(f"{base}/login")
    assert page.get_by_label("Username or email").input_value() == ""
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(f"{base}/account")
    assert page.evaluate("window.passkeyRequests") == 0  # counted on the new page
    signed_in = tab.status()
    assert signed_in["User"]["Username"] == "alice"
    assert {"hwk", "mfa"} <= set(signed_in["Amr"]) and "pwd" not in signed_in["Amr"]
    assert signed_in["Acr"] == "phr"
    assert "last used" in page.locator(".passkeys li").inner_text()
    tab.assert_clean()


@pytest.fixture
def example(passport: tuple[str, str]) -> Iterator[str]:
    """The example relying party (examples/relying_party.py), registered with Passport."""
    base, database_url = passport
    port = free_port()
    added = subprocess.run(
        [
            *(sys.executable, "-m", "passport", "app", "add", "Example", "--json"),
            *("--redirect-uri", f"http://127.0.0.1:{port}/callback"),
            *("--database-url", database_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ALLOW_PRIVATE},
    )
    assert added.returncode == 0, added.stderr
    app = json.loads(added.stdout)[0]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "relying_party.py"), "--port", str(port)],
        env={
            **os.environ,
            "PASSPORT_URL": base,
            "CLIENT_ID": app["ClientId"],
            "CLIENT_SECRET": app["ClientSecret"],
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.parametrize("acr", ["phr", "urn:passport:acr:mfa"])
def test_acr_values_step_a_password_session_up_with_the_passkey(
    passport: tuple[str, str], example: str, chromium: Any, acr: str
) -> None:
    base, _ = passport
    tab = open_tab(chromium, base)
    page = tab.page
    tab.sign_in_with_password()
    page.wait_for_url(f"{base}/account")
    tab.add_passkey()
    # The first factor makes this session a sign-in with it (and ends any other).
    assert tab.status()["Amr"] == ["pwd", "hwk", "mfa"]
    tab.sign_out()

    # Through the application, with a password: the second step asks for the passkey.
    tab.presence(False)  # the login page's autofill request waits, unanswered
    page.goto(f"{example}/signin?" + urlencode({"acr_values": acr}))
    page.wait_for_url(f"{base}/login?**")
    page.get_by_label("Username or email").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{base}/login/verify?**")
    assert page.get_by_text("Signing in as alice.").is_visible()
    assert tab.status()["User"] is None  # no session before the passkey
    tab.presence(True)
    page.get_by_role("button", name="Use your passkey").click()
    page.wait_for_url(f"{base}/consent**")
    page.click("button[value=allow]")
    page.wait_for_url(f"{example}/")
    assert page.text_content("#user") == "alice"
    assert page.text_content("#acr") == "phr"  # a passkey is more than "mfa" asked for
    assert set((page.text_content("#amr") or "").split()) == {"pwd", "hwk", "mfa"}
    # The Passport session is that sign-in.
    assert set(tab.status()["Amr"]) == {"pwd", "hwk", "mfa"}
    tab.assert_clean()


def _wrong_code(secret: str) -> str:
    """A six-digit code that no time step near now accepts."""
    totp = pyotp.TOTP(secret)
    near = {totp.at(time.time() + 30 * k) for k in range(-3, 4)}
    return next(c for c in ("000000", "123456", "999999", "314159") if c not in near)


def test_an_authenticator_app_set_up_and_used_in_the_browser(
    passport: tuple[str, str], chromium: Any
) -> None:
    base, _ = passport
    tab = open_tab(chromium, base)
    page = tab.page
    tab.sign_in_with_password()
    page.wait_for_url(f"{base}/account")
    secret, codes = tab.set_up_authenticator_app()
    assert len(codes) >= 8 and len(set(codes)) == len(codes)
    assert page.get_by_text("Set up 20").is_visible()  # "Set up <date> UTC."
    tab.sign_out()

    tab.sign_in_with_password()
    page.wait_for_url(f"{base}/login/verify?**")
    assert tab.status()["User"] is None  # half-way: no session before the code
    page.get_by_label("Code from your authenticator app").fill(_wrong_code(secret))
    page.get_by_role("button", name="Verify", exact=True).click()
    assert "code" in page.get_by_role("alert").inner_text().lower()
    assert urlsplit(page.url).path == "/login/verify" and tab.status()["User"] is None
    # The next time step's code: the one set up with is used up (no replay), and the
    # server takes one step either side of now.
    page.get_by_label("Code from your authenticator app").fill(
        pyotp.TOTP(secret).at(time.time() + 30)
    )
    page.get_by_role("button", name="Verify", exact=True).click()
    page.wait_for_url(f"{base}/account")
    signed_in = tab.status()
    assert signed_in["User"]["Username"] == "alice"
    assert set(signed_in["Amr"]) == {"pwd", "otp", "mfa"}
    assert signed_in["Acr"] == "urn:passport:acr:mfa"
    tab.assert_clean(refused=1)


def _layout_fits(page: Any) -> None:
    """Nothing wider than the window (no sideways scrolling), the QR code, the key, the
    buttons and the recovery codes inside the page's box, and each code on one line."""
    overflow = page.evaluate(
        """() => {
        const out = [];
        if (document.documentElement.scrollWidth > window.innerWidth) out.push("page");
        const box = document.querySelector("main").getBoundingClientRect();
        for (const el of document.querySelectorAll(".qr svg, .secret, .codes code, button")) {
          const r = el.getBoundingClientRect();
          if (r.width && (r.left < box.left || r.right > box.right + 0.5)) {
            out.push(el.outerHTML.slice(0, 60));
          }
        }
        for (const code of document.querySelectorAll(".codes code")) {  // one line each
          if (code.getClientRects().length !== 1) out.push("wrapped " + code.textContent);
        }
        return out;
    }"""
    )
    assert overflow == [], overflow


@pytest.mark.parametrize("width", [1024])
def test_the_second_factor_pages_fit_and_are_pictured(
    backends: dict[str, Backend], live_server: Any, chromium: Any, tmp_path: Path, width: int
) -> None:
    """Each page of a second factor, at a desktop's width and a phone's (375 px): laid out
    within the window, and pictured (full page, PNG); ``UPDATE_SCREENSHOTS=1`` writes the
    pictures into docs/screenshots/."""
    base, _ = start_passport(backends, live_server, "sqlite", PASSPORT_MFA_POLICY="mfa")
    tab = open_tab(chromium, base, width)
    page = tab.page
    shots: list[Path] = []

    def shoot(name: str, section: tuple[str, str] | None = None) -> None:
        """The page at each width; of a ``section`` (from one heading to the next), the
        part of the page's box between them."""
        for each in (width, 375):
            page.set_viewport_size({"width": each, "height": 720})
            _layout_fits(page)
            shot = tmp_path / f"{name}-{each}.png"
            clip = None
            if section is not None:
                box = page.locator("main").bounding_box()
                top = page.get_by_role("heading", name=section[0]).bounding_box()
                end = page.get_by_role("heading", name=section[1]).bounding_box()
                assert box and top and end
                y = top["y"] - 16
                clip = {"x": box["x"], "y": y, "width": box["width"], "height": end["y"] - y}
            page.screenshot(
                path=str(shot), full_page=True, clip=clip, animations="disabled", caret="hide"
            )
            shots.append(shot)
        page.set_viewport_size({"width": width, "height": 720})

    page.goto(f"{base}/login")
    page.get_by_role("button", name="Sign in with a passkey").wait_for()
    shoot("login")

    tab.sign_in_with_password()  # the server's policy asks for a second factor: enrol one
    page.wait_for_url(f"{base}/login/enrol?**")
    page.locator(".qr svg").wait_for()
    page.get_by_role("button", name="Create a passkey").wait_for()
    shoot("enrol")
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    page.get_by_label("The code it shows").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify and add").click()
    page.get_by_role("heading", name="Save your recovery codes").wait_for()
    assert len(page.locator(".codes code").all_text_contents()) >= 8
    shoot("recovery-codes")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/account")

    tab.add_passkey()
    shoot("account-second-factors", ("Second factors", "Where you are signed in"))

    tab.sign_out()
    tab.presence(False)  # the autofill request waits: sign in with the password
    tab.sign_in_with_password()
    page.wait_for_url(f"{base}/login/verify?**")
    page.get_by_role("button", name="Use your passkey").wait_for()
    shoot("verify")
    page.get_by_label("Code from your authenticator app").fill(
        pyotp.TOTP(secret).at(time.time() + 30)
    )
    page.get_by_role("button", name="Verify", exact=True).click()
    page.wait_for_url(f"{base}/account")
    tab.assert_clean()

    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size < 150_000, shot
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(exist_ok=True)
        for shot in shots:
            shutil.copy(shot, SCREENSHOTS / shot.name)
