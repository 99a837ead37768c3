"""What the hosted pages accept from the browser (outside review findings).

``next`` after sign-in is a path on Passport in printable ASCII (a DEL or a raw
UTF-8 byte made a ``Location`` the server dropped or mangled), and the forms'
double-submit CSRF token must have the form Passport issues: a short cookie planted
by a sibling site, with the same value in the form, is not accepted.
"""

from __future__ import annotations

import pytest

from oidc_support import PASSWORD
from oidc_support import form_of
from passport.pages.login import safe_next

from support import Harness


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/account", "/account"),
        ("/oauth2/authorize?client_id=x&state=y", "/oauth2/authorize?client_id=x&state=y"),
        ("/%C3%A9", "/%C3%A9"),
        ("/\x7f/evil", "/account"),
        ("/é", "/account"),
        ("/\u3000/x", "/account"),
        ("/a b", "/account"),
        ("//evil.example", "/account"),
        ("/\\evil.example", "/account"),
        ("https://evil.example/", "/account"),
        ("", "/account"),
        (None, "/account"),
    ],
)
def test_next_is_a_printable_ascii_path_on_passport(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_a_sign_in_with_an_odd_next_lands_on_the_account_page(h: Harness) -> None:
    page = h.client.get("/login")
    form = form_of(page)
    response = h.client.post(
        "/login",
        data={**form, "username": "alice", "password": PASSWORD, "next": "/\x7f/evil"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/account")


def test_a_planted_short_csrf_cookie_is_not_a_token(h: Harness) -> None:
    h.client.set_cookie("passport_csrf", "abc")
    response = h.client.post(
        "/login", data={"csrf": "abc", "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert not any(
        "passport_session" in c or h.settings.session_cookie_name in c
        for c in response.headers.getlist("Set-Cookie")
    )
