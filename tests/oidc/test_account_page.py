"""The user's own /account page: profile, password change, sessions with "sign out"."""

from __future__ import annotations

import json
import re
from typing import Any

from support import ORIGIN
from support import STRONG
from support import Harness


def csrf_of(page: Any) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def test_account_page(factory: Any) -> None:
    h: Harness = factory("sqlite")
    anonymous = h.client.get("/account")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?")
    h.register(email="alice@example.com", displayName="Alice <b>")
    phone = h.new_client()
    phone.post(
        "/Account/login",
        data={"username": "alice", "password": STRONG},
        headers={"Origin": ORIGIN, "User-Agent": "Phone/1.0"},
    )
    h.login()
    page = h.client.get("/account")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "alice@example.com" in text and "Alice &lt;b&gt;" in text
    assert "Phone/1.0" in text and "(this browser)" in text
    assert 'label for="newPassword"' in text
    csrf = csrf_of(page)

    wrong = h.client.post(
        "/account",
        data={"csrf": csrf, "action": "password", "oldPassword": "nope", "newPassword": "x" * 20},
    )
    assert wrong.status_code == 401
    assert "not correct" in wrong.get_data(as_text=True)
    forged = h.client.post(
        "/account",
        data={"csrf": "x", "action": "password", "oldPassword": STRONG, "newPassword": "y" * 20},
    )
    assert forged.status_code == 403

    changed = h.client.post(
        "/account",
        data={
            "csrf": csrf,
            "action": "password",
            "oldPassword": STRONG,
            "newPassword": "a completely new passphrase",
        },
    )
    assert changed.status_code == 200 and "password was changed" in changed.get_data(as_text=True)
    assert "passport_session=" in changed.headers["Set-Cookie"]
    assert json.loads(phone.get("/Account/status").get_data(as_text=True))["LoggedIn"] is False

    page = h.client.get("/account")
    own = re.search(r'name="id" value="([0-9a-f]{16})"', page.get_data(as_text=True))
    assert own is not None
    ended = h.client.post(
        "/account", data={"csrf": csrf_of(page), "action": "end", "id": own.group(1)}
    )
    assert ended.status_code == 302 and ended.headers["Location"].startswith("/login?")
    assert json.loads(h.client.get("/Account/status").get_data(as_text=True))["LoggedIn"] is False
