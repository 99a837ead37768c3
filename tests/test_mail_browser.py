"""The pages that mail links open, in Debian's Chromium (Playwright, no downloaded
browser) against a live ``passport serve`` and a real SMTP server process: a forgotten
password replaced from the sign-in page's "Forgot your password?" to /account, and an
invitation accepted, each page under its CSP (no violation in the console) and laid out
within the window.  The pages are pictured at 1024 and 375 px; ``UPDATE_SCREENSHOTS=1``
writes the pictures into docs/screenshots/ (password-forgot, password-forgot-sent,
password-reset, invite).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import requests

from browser_support import BROWSER_MARKS
from browser_support import chromium as chromium
from smtp_support import SinkFactory
from smtp_support import SmtpSink
from smtp_support import links
from smtp_support import smtp_sink as smtp_sink

from support import STRONG

pytestmark = BROWSER_MARKS
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
WIDTH = 1024
PHONE = 375
NEW_PASSWORD = "a brand new passphrase for alice"


@dataclass
class Tab:
    """A page of a fresh browser profile and what the browser reported meanwhile:
    console messages and uncaught errors; the pictures taken of it."""

    page: Any
    base: str
    shots_dir: Path
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def status(self) -> dict[str, Any]:
        """``/Account/status`` with the browser's cookies (the context's request client)."""
        answer = self.page.context.request.get(f"{self.base}/Account/status")
        assert answer.ok, answer.text()
        data: dict[str, Any] = answer.json()["Data"]
        return data

    def shoot(self, name: str) -> None:
        """The page at a desktop's width and a phone's: laid out within the window, and
        pictured (full page, PNG)."""
        for width in (WIDTH, PHONE):
            self.page.set_viewport_size({"width": width, "height": 720})
            _layout_fits(self.page)
            shot = self.shots_dir / f"{name}-{width}.png"
            self.page.screenshot(
                path=str(shot), full_page=True, animations="disabled", caret="hide"
            )
            self.shots.append(shot)
        self.page.set_viewport_size({"width": WIDTH, "height": 720})

    def sign_in(self, username: str, password: str) -> None:
        self.page.get_by_label("Username or email").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def assert_clean(self) -> None:
        """No CSP violation, no script error, no error in the console."""
        assert not [m for m in self.console if "Content Security Policy" in m], self.console
        assert not [m for m in self.console if m.startswith("error:")], self.console
        assert not self.errors, self.errors

    def publish(self) -> None:
        """The pictures are PNGs of a reasonable size; into docs/ when asked to."""
        for shot in self.shots:
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert shot.stat().st_size < 150_000, shot
        if os.environ.get("UPDATE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(exist_ok=True)
            for shot in self.shots:
                shutil.copy(shot, SCREENSHOTS / shot.name)


def _layout_fits(page: Any) -> None:
    """Nothing wider than the window (no sideways scrolling), and the fields and buttons
    inside the page's box."""
    overflow = page.evaluate(
        """() => {
        const out = [];
        if (document.documentElement.scrollWidth > window.innerWidth) out.push("page");
        const box = document.querySelector("main").getBoundingClientRect();
        for (const el of document.querySelectorAll("input:not([type=hidden]), button")) {
          const r = el.getBoundingClientRect();
          if (r.width && (r.left < box.left || r.right > box.right + 0.5)) {
            out.push(el.outerHTML.slice(0, 60));
          }
        }
        return out;
    }"""
    )
    assert overflow == [], overflow


@dataclass
class Mailing:
    """A live Passport on SQLite that sends its mail to ``sink``."""

    base: str
    database_url: str
    sink: SmtpSink


@pytest.fixture
def mailing(live_server: Any, smtp_sink: SinkFactory, tmp_path: Path) -> Mailing:
    sink = smtp_sink()
    url = f"sqlite:///{tmp_path / 'mail.sqlite3'}"
    server = live_server(url, env={"PASSPORT_SMTP_URL": sink.url})
    return Mailing(server.url, url, sink)


def open_tab(browser: Any, base: str, shots_dir: Path) -> Tab:
    context = browser.new_context(viewport={"width": WIDTH, "height": 720})
    return Tab(context.new_page(), base, shots_dir)


def the_link(sink: SmtpSink, address: str, subject: str, page: str) -> str:
    message = sink.wait_for_message(
        lambda m: m["To"] == address and m["Subject"] == subject, timeout=30
    )
    (link,) = [url for url in links(message) if page in url]
    return link


def test_a_forgotten_password_is_replaced_in_the_browser(
    mailing: Mailing, chromium: Any, tmp_path: Path
) -> None:
    base = mailing.base
    registered = requests.post(
        base + "/Account/register",
        data={"username": "alice", "password": STRONG, "email": "alice@example.com"},
        headers={"Origin": base},
        timeout=30,
    )
    assert registered.status_code == 200, registered.text
    tab = open_tab(chromium, base, tmp_path)
    page = tab.page

    page.goto(f"{base}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.wait_for_url(f"{base}/password/forgot")
    tab.shoot("password-forgot")
    page.get_by_label("Email address").fill("alice@example.com")
    page.get_by_role("button", name="Send me a link").click()
    page.get_by_text("is on its way").wait_for()
    tab.shoot("password-forgot-sent")

    link = the_link(mailing.sink, "alice@example.com", "Reset your password", "/password/reset")
    page.goto(link)
    page.get_by_role("heading", name="Choose a new password").wait_for()
    assert page.get_by_text("For the account alice.").is_visible()
    tab.shoot("password-reset")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("The new password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    page.get_by_role("heading", name="Your password was changed").wait_for()

    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{base}/login**")
    tab.sign_in("alice", NEW_PASSWORD)
    page.wait_for_url(f"{base}/account")
    assert tab.status()["User"]["Username"] == "alice"
    tab.assert_clean()
    tab.publish()


def test_an_invitation_is_accepted_in_the_browser(
    mailing: Mailing, chromium: Any, tmp_path: Path
) -> None:
    base = mailing.base
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    cli = environment | {"PASSPORT_SMTP_URL": mailing.sink.url, "PASSPORT_PUBLIC_URL": base}
    for command in (
        ["group", "add", "Staff"],
        ["user", "invite", "bob@example.com", "--group", "Staff", "--json"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "passport", *command, "--database-url", mailing.database_url],
            capture_output=True,
            text=True,
            env=cli,
            cwd=tmp_path,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["State"] == "pending"

    link = the_link(mailing.sink, "bob@example.com", "You are invited to Passport", "/invite")
    tab = open_tab(chromium, base, tmp_path)
    page = tab.page
    page.goto(link)
    page.get_by_role("heading", name="Make your account").wait_for()
    assert page.get_by_text("You were invited to Passport as bob@example.com").is_visible()
    tab.shoot("invite")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Your name (optional)").fill("Bob Builder")
    page.get_by_label("Password", exact=True).fill(STRONG)
    page.get_by_label("The password again").fill(STRONG)
    page.get_by_role("button", name="Make my account").click()
    page.get_by_role("heading", name="Your account is ready").wait_for()

    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{base}/login**")
    tab.sign_in("bob", STRONG)
    page.wait_for_url(f"{base}/account")
    user = tab.status()["User"]
    assert (user["Username"], user["DisplayName"], user["EmailVerified"]) == (
        "bob",
        "Bob Builder",
        True,
    )
    tab.assert_clean()
    tab.publish()
