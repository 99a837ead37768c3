"""JSONP: safe callbacks only, read-only methods only, always 200, no user data cross-site."""

from __future__ import annotations

import json

import pytest

from support import STRONG
from support import Harness


def unwrap(text: str, callback: str) -> dict[str, object]:
    prefix = f"/**/{callback}("
    assert text.startswith(prefix) and text.endswith(");")
    return json.loads(text[len(prefix) : -2])  # type: ignore[no-any-return]


@pytest.mark.parametrize("key", ["callback", "CALLBACK", "Callback"])
def test_callback_wraps_envelope(harness: Harness, key: str) -> None:
    response = harness.client.get(f"/Service/getApplication?name=Passport&{key}=my.cb_1$")
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    data = unwrap(response.get_data(as_text=True), "my.cb_1$")
    assert data["Data"] == {
        "Message": "Application ID for 'Passport' is: 1",
        "Application": {"ID": 1},
    }


def test_errors_inside_jsonp_are_http_200(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?callback=cb")
    assert response.status_code == 200
    data = unwrap(response.get_data(as_text=True), "cb")
    assert data["ClientExceptions"][0]["Number"] == "1"  # type: ignore[index]
    unknown = harness.client.get("/No/where?callback=cb")
    assert unknown.status_code == 200
    assert unwrap(unknown.get_data(as_text=True), "cb")["ClientExceptions"][0]["Number"] == "404"  # type: ignore[index]


def test_non_ascii_is_escaped_in_jsonp(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=%E2%80%A8%F0%9F%98%80&callback=cb")
    text = response.get_data(as_text=True)
    assert "\u2028" not in text and "\\u2028" in text
    assert text.isascii()


@pytest.mark.parametrize(
    "callback",
    [
        "",
        "alert(1)",
        "a b",
        "1abc",
        "a..b",
        "a" * 65,
        "a.b.c.d.e",
        "<script>",
        "cb;alert(1)//",
        "café",
        "a\x00b",
        "a-b",
    ],
)
def test_unsafe_callbacks_are_refused(harness: Harness, callback: str) -> None:
    from urllib.parse import quote

    response = harness.client.get(
        f"/Service/getApplication?name=Passport&callback={quote(callback)}"
    )
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    data = json.loads(response.get_data(as_text=True))
    assert data["ClientExceptions"][0]["Source"] == "callback"


def test_jsonp_only_for_read_only_methods(harness: Harness) -> None:
    response = harness.client.post(
        "/Account/login?callback=cb", data={"username": "alice", "password": STRONG}
    )
    assert response.status_code == 400
    data = json.loads(response.get_data(as_text=True))
    assert data["ClientExceptions"][0]["Source"] == "callback"
    assert harness.client.get("/Account/sessions?callback=cb").status_code == 400


def test_status_over_jsonp_hides_the_user_without_registered_referer(harness: Harness) -> None:
    harness.register()
    assert harness.login().status_code == 200
    plain = json.loads(harness.client.get("/Account/status").get_data(as_text=True))
    assert plain["LoggedIn"] is True

    for headers in ({}, {"Referer": "https://evil.example/page"}):
        response = harness.client.get("/Account/status?callback=cb", headers=headers)
        data = unwrap(response.get_data(as_text=True), "cb")
        assert data["LoggedIn"] is False
        assert data["Data"] == {"User": None}

    from passport.services.applications import find_by_name

    with harness.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Passport")
        assert app is not None
        app.allowed_origins = ["https://app.example.com"]
    harness.app.forget_origins()
    response = harness.client.get(
        "/Account/status?callback=cb", headers={"Referer": "https://app.example.com/home"}
    )
    data = unwrap(response.get_data(as_text=True), "cb")
    assert data["LoggedIn"] is True
    assert data["Data"]["User"]["Username"] == "alice"  # type: ignore[index]
