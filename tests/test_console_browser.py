"""The admin console in Debian's Chromium (Playwright, no downloaded browser) against a
live ``passport serve``, as the README's walkthrough has a new administrator use it:
``passport admin create``, then everything else in the browser — a group, a user, an
application with a permission granted to the group; the user signs in to the example
relying party (``examples/relying_party.py``) and holds the permission there; the
administrator disables the user and the example application hears the back-channel
logout.  A ``users:read`` administrator sees no write control, and a POST forged with
their own CSRF token is refused.

Every screen is checked three ways: no CSP violation or script error in the browser's
console; axe-core (npm ``axe-core``, pinned in tests/clients) finds no WCAG 2.x A/AA
violation — injected into a second browser context that bypasses the CSP, the screens
themselves allow no such script; and the screen fits 320 px wide (nothing wider than the
window but tables, which scroll in their own box).  Each screen is pictured at 1024 and
320 px; ``UPDATE_SCREENSHOTS=1`` writes the pictures into docs/console/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import requests

from browser_support import BROWSER_MARKS
from browser_support import chromium as chromium
from oidc_support import KEK
from provision import Backend

from conftest import _empty_tables
from conftest import free_port
from support import STRONG

pytestmark = BROWSER_MARKS
ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "tests" / "clients" / "node_modules" / "axe-core" / "axe.min.js"
PICTURES = ROOT / "docs" / "console"
WIDE, NARROW = 1024, 320
ALLOW_PRIVATE = {"PASSPORT_BACKCHANNEL_ALLOW_PRIVATE": "true"}
ROOT_PASSWORD = "the root of all passports"
# axe-core's rules for WCAG 2.0/2.1/2.2 A and AA, and its best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@dataclass
class Console:
    """A browser tab signed in to the console at ``base``, and what the browser
    reported meanwhile: console messages and uncaught errors; the pictures taken."""

    page: Any
    base: str
    shots_dir: Path
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)
    screens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def sign_in(self, username: str, password: str) -> None:
        self.page.get_by_label("Username or email").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in", exact=True).click()

    def button(self, name: str, navigates: bool = True) -> None:
        """Press a button; a form's button waits for the page it leads to, so that the
        next step never reads the page being left."""
        self.follow(self.page.get_by_role("button", name=name, exact=True), navigates)

    def follow(self, target: Any, navigates: bool = True) -> None:
        """Click a link or button and, when it navigates, wait for the new page's load."""
        if not navigates:
            target.click()
            return
        with self.page.expect_navigation():
            target.click()

    def notice(self, text: str) -> None:
        """The page's notice (``role=status``) says ``text``."""
        self.page.get_by_role("status").filter(has_text=text).wait_for()

    def shoot(self, name: str) -> None:
        """The screen as it is now, remembered for the accessibility pass, fitted and
        pictured at a desktop's width and at 320 px."""
        self.screens.append(self.page.url)
        for width in (WIDE, NARROW):
            self.page.set_viewport_size({"width": width, "height": 800})
            fits(self.page)
            shot = self.shots_dir / f"{name}-{width}.png"
            self.page.screenshot(
                path=str(shot), full_page=True, animations="disabled", caret="hide"
            )
            self.shots.append(shot)
        self.page.set_viewport_size({"width": WIDE, "height": 800})

    def assert_clean(self, refused: int = 0) -> None:
        """No CSP violation, no script error; ``refused`` pages answered with an error
        status on purpose (Chromium logs each as an error)."""
        assert not [m for m in self.messages if "Content Security Policy" in m], self.messages
        failed = [m for m in self.messages if m.startswith("error:")]
        assert len(failed) == refused, self.messages
        assert not self.errors, self.errors

    def publish(self) -> None:
        for shot in self.shots:
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("UPDATE_SCREENSHOTS"):
            PICTURES.mkdir(exist_ok=True)
            for shot in self.shots:
                shutil.copy(shot, PICTURES / shot.name)


def fits(page: Any) -> None:
    """Nothing wider than the window — but a table, which scrolls in its own box — and
    every field and button inside the page's main box."""
    overflow = page.evaluate(
        """() => {
        const out = [];
        if (document.documentElement.scrollWidth > window.innerWidth) {
          out.push("page");
          for (const el of document.querySelectorAll("main *")) {
            if (el.closest(".scroll")) continue;
            if (el.getBoundingClientRect().right > window.innerWidth + 0.5) {
              out.push("wide: " + el.outerHTML.slice(0, 80));
            }
          }
        }
        const box = document.querySelector("main").getBoundingClientRect();
        for (const el of document.querySelectorAll(
            "input:not([type=hidden]), button, select, textarea")) {
          if (el.closest(".scroll")) continue;
          const r = el.getBoundingClientRect();
          if (r.width && (r.left < box.left - 0.5 || r.right > box.right + 0.5)) {
            out.push(el.outerHTML.slice(0, 80));
          }
        }
        return out;
    }"""
    )
    assert overflow == [], (page.url, overflow)


def accessibility_violations(browser: Any, console: Console) -> dict[str, list[str]]:
    """axe-core over every screen the walkthrough pictured, in a context that shares the
    administrator's cookies and bypasses the CSP (to inject axe): the rules that fail,
    with the first offending elements, per screen."""
    context = browser.new_context(
        bypass_csp=True,
        storage_state=console.page.context.storage_state(),
        viewport={"width": WIDE, "height": 800},
    )
    page = context.new_page()
    found: dict[str, list[str]] = {}
    try:
        for url in dict.fromkeys(console.screens):
            page.goto(url)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate(
                "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                AXE_TAGS,
            )
            failed = [
                f"{v['id']} ({v['impact']}): {v['help']} — "
                + "; ".join(n["html"][:100] for n in v["nodes"][:3])
                for v in result["violations"]
            ]
            if failed:
                found[url] = failed
    finally:
        context.close()
    return found


@dataclass
class Deployment:
    """A live Passport and the command line next to it (its database URL)."""

    base: str
    database_url: str

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        done = subprocess.run(
            [sys.executable, "-m", "passport", *args, "--database-url", self.database_url],
            input=stdin,
            capture_output=True,
            text=True,
            env=environment | {"PASSPORT_KEY_ENCRYPTION_KEY": KEK, **ALLOW_PRIVATE},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Deployment:
    url = backends[request.param].url
    _empty_tables(url)
    server = live_server(url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, **ALLOW_PRIVATE})
    return Deployment(server.url, url)


def open_console(browser: Any, deployment: Deployment, shots_dir: Path) -> Console:
    context = browser.new_context(viewport={"width": WIDE, "height": 800})
    return Console(context.new_page(), deployment.base, shots_dir)


@pytest.fixture
def example_rp() -> Iterator[Callable[[str, str, str, int], str]]:
    """Starts the example relying party with the credentials the console showed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(base: str, client_id: str, secret: str, port: int) -> str:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "relying_party.py"), "--port", str(port)],
            env={**os.environ, "PASSPORT_URL": base, "CLIENT_ID": client_id}
            | {"CLIENT_SECRET": secret},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url, timeout=1)
                return url
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the example relying party did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def eventually(check: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_an_administrator_runs_passport_from_the_console(
    deployment: Deployment, chromium: Any, example_rp: Any, tmp_path: Path
) -> None:
    deployment.cli(
        "admin", "create", "root", "--email", "root@example.com",
        stdin=f"{ROOT_PASSWORD}\n{ROOT_PASSWORD}\n",
    )  # fmt: skip
    admin = open_console(chromium, deployment, tmp_path)
    page = admin.page

    # Signing in from /admin comes back to /admin.
    admin.go("/admin")
    page.wait_for_url("**/login?next=**")
    admin.sign_in("root", ROOT_PASSWORD)
    page.wait_for_url(f"{deployment.base}/admin")
    page.get_by_role("heading", name="Dashboard").wait_for()
    admin.shoot("dashboard")

    # A group.
    nav = page.get_by_role("navigation", name="Console")
    admin.follow(nav.get_by_role("link", name="Groups"))
    page.get_by_label("Name", exact=True).fill("Editors")
    page.get_by_label("Description").fill("People who edit the example")
    admin.button("Create the group")
    admin.notice("Group Editors created.")
    admin.shoot("groups")

    # A user, put in the group.
    admin.follow(nav.get_by_role("link", name="Users"))
    page.locator("#new-username").fill("alice")
    page.locator("#new-email").fill("alice@example.com")
    page.locator("#new-displayname").fill("Alice Example")
    page.locator("#new-password").fill(STRONG)
    admin.button("Create the user")
    admin.notice("User alice created.")
    admin.follow(nav.get_by_role("link", name="Groups"))
    admin.follow(page.get_by_role("link", name="Editors"))
    page.get_by_label("Add a member (username)").fill("alice")
    admin.button("Add")
    admin.notice("alice added to Editors.")
    admin.shoot("group")

    # An application, its secret shown once; its back-channel logout URI; a permission
    # granted to the group.
    port = free_port()
    example = f"http://127.0.0.1:{port}"
    admin.follow(nav.get_by_role("link", name="Applications"))
    page.get_by_label("Name", exact=True).fill("Example")
    page.get_by_label("Redirect URIs (separated by spaces)").fill(f"{example}/callback")
    admin.button("Register")
    client_id = page.locator("main dd code").first.inner_text().strip()
    secret = page.get_by_label("Client secret").input_value()
    assert client_id and len(secret) >= 32
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.base)
    admin.button("Copy the secret", navigates=False)
    page.get_by_text("Copied.").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    admin.shoot("application-secret")
    admin.follow(page.get_by_role("link", name="Back to Example"))
    page.locator("#sbackchanneluri").fill(f"{example}/backchannel-logout")
    page.locator("#spostlogouturis").fill(f"{example}/")
    admin.button("Save the settings")
    admin.notice("saved")
    page.locator("#pname").fill("edit")
    page.locator("#pdescription").fill("Change pages")
    admin.button("Define")
    admin.notice("edit")
    page.locator("#gpermission").select_option("edit")
    page.locator("#gkind").select_option("group")
    page.locator("#gholder").fill("Editors")
    admin.button("Grant")
    admin.notice("Editors")
    admin.shoot("application")
    admin.follow(page.get_by_role("link", name="Who holds edit"))
    page.get_by_text("via group Editors").wait_for()

    # The user signs in to the example application, which sees the permission.
    rp = example_rp(deployment.base, client_id, secret, port)
    user = chromium.new_context(viewport={"width": WIDE, "height": 800}).new_page()
    user.set_default_timeout(15_000)
    user.goto(f"{rp}/signin")
    user.wait_for_url(f"{deployment.base}/login?**")
    user.get_by_label("Username or email").fill("alice")
    user.get_by_label("Password").fill(STRONG)
    user.get_by_role("button", name="Sign in", exact=True).click()
    if "/consent" in user.url or user.get_by_role("button", name="Allow").count():
        user.get_by_role("button", name="Allow").click()
    user.wait_for_url(f"{rp}/")
    assert user.locator("#user").inner_text() == "alice"
    assert user.locator("#permissions").inner_text() == "edit"

    # The administrator sees her session and disables her: the example hears it.
    admin.follow(nav.get_by_role("link", name="Users"))
    page.get_by_label("Search (username, email, name)").fill("ali")
    admin.button("Search")
    admin.shoot("users")
    admin.follow(page.get_by_role("link", name="alice", exact=True))
    page.get_by_role("heading", name="Sessions").wait_for()
    admin.shoot("user")
    admin.button("Disable (ends every session and token)")
    admin.notice("alice is disabled")

    def signed_out_of_the_example() -> bool:
        user.goto(f"{rp}/")
        return user.get_by_text("Not signed in").count() == 1

    assert eventually(signed_out_of_the_example, 30), "no back-channel logout reached the example"

    # What the audit log, the keys and the health screens show of it.
    admin.follow(nav.get_by_role("link", name="Audit log"))
    page.get_by_label("Event", exact=True).fill("user_disable")
    admin.button("Filter")
    page.get_by_role("cell", name="user_disable").first.wait_for()
    admin.shoot("audit")
    admin.follow(nav.get_by_role("link", name="Keys"))
    page.get_by_role("heading", name="Keys").wait_for()
    admin.shoot("keys")
    admin.follow(nav.get_by_role("link", name="Health"))
    page.get_by_role("heading", name="Health").wait_for()
    admin.shoot("health")
    admin.follow(nav.get_by_role("link", name="Dashboard"))
    admin.shoot("dashboard")

    admin.assert_clean()
    problems = accessibility_violations(chromium, admin)
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
    admin.publish()


def test_a_reader_sees_no_write_control_and_a_forged_post_is_refused(
    deployment: Deployment, chromium: Any, tmp_path: Path
) -> None:
    deployment.cli("admin", "create", "root", stdin=f"{ROOT_PASSWORD}\n{ROOT_PASSWORD}\n")
    admin = open_console(chromium, deployment, tmp_path)
    page = admin.page
    admin.go("/admin")
    admin.sign_in("root", ROOT_PASSWORD)
    page.wait_for_url(f"{deployment.base}/admin")
    nav = page.get_by_role("navigation", name="Console")

    # A helpdesk reader: a user in a group granted Passport's users:read (an admin may).
    admin.follow(nav.get_by_role("link", name="Users"))
    for name in ("helpdesk", "bob"):
        page.locator("#new-username").fill(name)
        page.locator("#new-password").fill(STRONG)
        admin.button("Create the user")
        admin.notice(f"User {name} created.")
        admin.follow(nav.get_by_role("link", name="Users"))
    admin.follow(nav.get_by_role("link", name="Groups"))
    page.get_by_label("Name", exact=True).fill("Helpdesk")
    admin.button("Create the group")
    admin.follow(page.get_by_role("link", name="Helpdesk"))
    page.get_by_label("Add a member (username)").fill("helpdesk")
    admin.button("Add")
    admin.notice("helpdesk added to Helpdesk.")
    page.locator("#gapplication").fill("Passport")
    page.locator("#gpermission").fill("users:read")
    admin.button("Grant")
    admin.notice("users:read")

    reader = open_console(chromium, deployment, tmp_path)
    reader.go("/admin/users")
    reader.sign_in("helpdesk", STRONG)
    reader.page.wait_for_url(f"{deployment.base}/admin/users")
    assert reader.page.locator("#new-username").count() == 0
    reader.follow(reader.page.get_by_role("link", name="bob", exact=True))
    reader.page.get_by_role("heading", name="Sessions").wait_for()
    assert reader.page.get_by_role("heading", name="Actions").count() == 0
    assert reader.page.locator("main form[method=post]").count() == 0
    reader_nav = reader.page.get_by_role("navigation", name="Console")
    assert reader_nav.get_by_role("link", name="Applications").count() == 0
    assert reader_nav.get_by_role("link", name="Keys").count() == 0

    # A POST forged with the reader's own CSRF token and cookies: the operation refuses.
    bob = reader.page.url.split("id=")[1]
    csrf = next(c["value"] for c in reader.page.context.cookies() if c["name"] == "passport_csrf")
    forged = reader.page.context.request.post(
        f"{deployment.base}/admin/user",
        form={"csrf": csrf, "id": bob, "action": "disable"},
        headers={"Origin": deployment.base},
    )
    assert forged.status == 403, forged.text()
    page.goto(f"{deployment.base}/admin/user?id={bob}")
    assert page.get_by_role("button", name="Disable (ends every session and token)").count() == 1
    admin.assert_clean()
    reader.assert_clean()
