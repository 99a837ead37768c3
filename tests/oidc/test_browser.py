"""End to end in Debian's Chromium (Playwright, no downloaded browser): the example
application signs in through Passport's page, a second one signs in without a password,
and signing out ends the Passport session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import seed
from provision import Backend

from conftest import _empty_tables
from conftest import free_port

pytestmark = pytest.mark.live
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent.parent
# The example applications listen on 127.0.0.1 and hear of logouts there.
ALLOW_PRIVATE = {"PASSPORT_BACKCHANNEL_ALLOW_PRIVATE": "true"}


def register_example(url: str, ports: list[int], name: str) -> tuple[str, str]:
    port = ports[0]
    uris = [
        "--redirect-uri",
        f"http://127.0.0.1:{port}/callback",
        "--post-logout-redirect-uri",  # where "Sign out" returns (RP-Initiated Logout §3)
        f"http://127.0.0.1:{port}/",
        "--backchannel-logout-uri",
        f"http://127.0.0.1:{port}/backchannel-logout",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "passport",
            "app",
            "add",
            name,
            *uris,
            "--json",
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **ALLOW_PRIVATE},
    )
    assert result.returncode == 0, result.stderr
    app = json.loads(result.stdout)[0]
    return app["ClientId"], app["ClientSecret"]


@pytest.fixture(params=["sqlite", "postgresql"])
def examples(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[tuple[Any, list[str]]]:
    url = backends[request.param].url
    _empty_tables(url)
    seed(url)
    passport = live_server(url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, **ALLOW_PRIVATE})
    ports = [free_port()]
    while len(ports) < 2:  # two example applications, never on one port
        if (port := free_port()) not in ports:
            ports.append(port)
    processes = []
    for index, port in enumerate(ports):
        client_id, secret = register_example(url, [port], f"Example{index + 1}")
        env = {
            **os.environ,
            "PASSPORT_URL": passport.url,
            "CLIENT_ID": client_id,
            "CLIENT_SECRET": secret,
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "examples" / "relying_party.py"), "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for app_url in urls:
        for _ in range(100):
            try:
                requests.get(app_url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
    yield passport, urls
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_single_sign_on_in_a_real_browser(examples: tuple[Any, list[str]], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    passport, (first, second) = examples
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(first)
        page.click("#signin")
        page.wait_for_url(f"{passport.url}/login**")
        assert page.get_by_label("Username or email").is_visible()
        shot = tmp_path / "login-page.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 1000
        if os.environ.get("UPDATE_SCREENSHOTS"):  # refresh the picture in docs/
            shutil.copy(shot, ROOT / "docs" / "login-page.png")
        page.get_by_label("Username or email").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{passport.url}/consent**")
        page.click("button[value=allow]")
        page.wait_for_url(f"{first}/")
        assert page.text_content("#user") == "alice"

        page.goto(second)
        page.click("#signin")
        page.wait_for_url(f"{passport.url}/consent**")  # a second application: its own consent
        page.click("button[value=allow]")
        page.wait_for_url(f"{second}/")  # the Passport session signed us in: no password asked
        assert page.text_content("#user") == "alice"

        page.click("text=Sign out")
        page.wait_for_url(f"{passport.url}/logout**")
        page.click("button[type=submit]")
        page.wait_for_url(f"{second}/")
        assert page.is_visible("#signin")
        for _ in range(50):  # the first application hears of it by back-channel logout
            page.goto(first)
            if page.is_visible("#signin"):
                break
            time.sleep(0.2)
        assert page.is_visible("#signin")
        page.click("#signin")
        page.wait_for_url(f"{passport.url}/login**")  # Passport forgot us: sign in again
        browser.close()
