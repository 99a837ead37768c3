"""RP-Initiated Logout 1.0 §2-§4: ``id_token_hint`` is checked, the return address must be
registered as a post-logout redirect URI (not a login redirect URI) by the (enabled)
client named by ``client_id`` or the hint (else Passport's own page, never a
redirect), and a user who is already signed out is sent back all the
same.  The conformance modules: ``test_oidcc_rp_initiated_logout.py``."""

from __future__ import annotations

import base64
import json
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import body
from oidc_support import exchange
from oidc_support import form_of
from oidc_support import get_code
from oidc_support import ids
from passport.services import directory
from passport.services.applications import find_by_name

from support import ORIGIN
from support import Harness

OTHER_REDIRECT = "http://127.0.0.1:9/other-callback"


def id_token(h: Harness) -> str:
    token: str = body(exchange(h, get_code(h)))["id_token"]
    return token


def logout(h: Harness, **params: str) -> Any:
    return h.client.get("/logout?" + urlencode(params))


def confirm(h: Harness, page: Any) -> Any:
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return h.client.post("/logout", data=form_of(page))


def signed_in(h: Harness) -> bool:
    return bool(body(h.client.get("/Account/status"))["LoggedIn"])


def add_other_application(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.create_application(
            db,
            datetime.now(UTC),
            "Other",
            redirect_uris=[OTHER_REDIRECT],
            post_logout_redirect_uris=[OTHER_REDIRECT],
        )


def test_logout_with_a_valid_hint_returns_to_its_audience(h: Harness) -> None:
    hint = id_token(h)  # get_code signed alice in
    page = logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="bye")
    done = confirm(h, page)
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=bye"
    assert not signed_in(h)


def test_an_expired_hint_is_still_a_hint(h: Harness) -> None:
    hint = id_token(h)
    h.clock.advance(minutes=20)  # the ID token lives 15 minutes, the session 30 idle
    assert signed_in(h)
    done = confirm(h, logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT))
    assert done.headers["Location"] == SIGNED_OUT
    h.clock.advance(days=2)  # and long after, signed out: straight back
    assert logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT).headers[
        "Location"
    ] == (SIGNED_OUT)


def forged_hints(h: Harness, hint: str) -> list[str]:
    header, claims, signature = hint.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    theirs = jwt.encode({"alg": "ES256", "kid": stranger.kid, "typ": "JWT"}, decoded, stranger)
    unsigned = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    other_issuer = jwt.encode(
        {"alg": "ES256", "kid": stranger.kid}, {**decoded, "iss": "https://evil.example"}, stranger
    )
    access_token = body(exchange(h, get_code(h)))["access_token"]
    return [
        "any string",
        "a.b.c",
        theirs,
        f"{unsigned}.{claims}.",
        f"{header}.{claims}.{signature[:-4]}AAAA",
        other_issuer,
        access_token,  # ours, but not an ID token
    ]


def test_a_hint_passport_did_not_issue_is_refused(h: Harness) -> None:
    hint = id_token(h)
    for forged in forged_hints(h, hint):
        for params in (
            {"id_token_hint": forged},
            {"id_token_hint": forged, "post_logout_redirect_uri": SIGNED_OUT},
        ):
            answer = logout(h, **params)
            assert answer.status_code == 400, forged
            assert "Location" not in answer.headers
    assert signed_in(h)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    "header",
    [
        b"[" * 3000 + b"]" * 3000,  # nested past the JSON parser's recursion limit
        b'{"a":' * 400 + b"1" + b"}" * 400,  # nested, short enough to look like a header
        b'"a string"',
        b"\xff\xfe not json",
        b"{" + b'"k":"' + b"x" * 3000 + b'"}',  # huge
    ],
)
def test_a_hint_that_is_not_a_jws_is_400_not_500(h: Harness, header: bytes) -> None:
    hint = f"{_b64(header)}.{_b64(b'{}')}.sig"
    for params in ({"id_token_hint": hint}, {"id_token_hint": hint, "client_id": "x"}):
        answer = logout(h, **params)
        assert answer.status_code == 400, answer.get_data(as_text=True)[:200]
        assert "Location" not in answer.headers


def test_hint_and_client_id_must_agree(h: Harness) -> None:
    hint = id_token(h)
    answer = logout(
        h,
        id_token_hint=hint,
        client_id=ids(h)["service_id"],
        post_logout_redirect_uri=SIGNED_OUT,
    )
    assert answer.status_code == 400


def test_only_the_named_client_s_registered_uri(h: Harness) -> None:
    add_other_application(h)
    h.login("alice", PASSWORD)
    wiki = ids(h)["client_id"]
    # Other registered OTHER_REDIRECT; Wiki did not: Wiki cannot send users there.  The
    # sign-out goes on, to Passport's own page (RP-Initiated Logout 1.0 §4).
    refused = logout(h, client_id=wiki, post_logout_redirect_uri=OTHER_REDIRECT)
    assert refused.status_code == 200 and "Location" not in refused.headers
    assert 'name="post_logout_redirect_uri" value=""' in refused.get_data(as_text=True)
    assert "has not registered" in refused.get_data(as_text=True)
    # No client_id, no hint: nowhere to return to, whatever the URI.
    page = logout(h, post_logout_redirect_uri=OTHER_REDIRECT, state="s")
    assert 'name="post_logout_redirect_uri" value=""' in page.get_data(as_text=True)
    done = confirm(h, page)
    assert done.status_code == 200 and "Location" not in done.headers
    assert "You are signed out" in done.get_data(as_text=True)
    assert not signed_in(h)


def test_a_disabled_application_gets_no_redirect(h: Harness) -> None:
    h.login("alice", PASSWORD)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.enabled = False
    answer = logout(h, client_id=ids(h)["client_id"], post_logout_redirect_uri=SIGNED_OUT)
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert 'name="post_logout_redirect_uri" value=""' in answer.get_data(as_text=True)


@pytest.mark.parametrize("with_hint", [False, True])
def test_already_signed_out_returns_with_state(h: Harness, with_hint: bool) -> None:
    params = {"post_logout_redirect_uri": SIGNED_OUT, "state": "bye"}
    if with_hint:
        params["id_token_hint"] = id_token(h)
        confirm(h, logout(h))  # sign out first
    else:
        params["client_id"] = ids(h)["client_id"]
    assert not signed_in(h)
    answer = logout(h, **params)
    assert answer.status_code == 302 and answer.headers["Location"] == SIGNED_OUT + "?state=bye"


@pytest.mark.parametrize("with_hint", [False, True])
def test_already_signed_out_is_not_sent_to_a_login_redirect_uri(
    h: Harness, with_hint: bool
) -> None:
    """The review's finding: a visitor who is not signed in, following a link that names
    Wiki and its login callback with a ``state`` of the link author's choosing, stays on
    Passport's page (§2: only a URI registered for post-logout redirection)."""
    params = {"post_logout_redirect_uri": REDIRECT, "state": "chosen"}
    if with_hint:
        params["id_token_hint"] = id_token(h)
        confirm(h, logout(h))
    else:
        params["client_id"] = ids(h)["client_id"]
    assert not signed_in(h)
    answer = logout(h, **params)
    assert answer.status_code == 200 and "Location" not in answer.headers
    assert "has not registered" in answer.get_data(as_text=True)


def test_signed_out_without_a_client_shows_the_page(h: Harness) -> None:
    answer = logout(h, post_logout_redirect_uri=SIGNED_OUT)
    assert answer.status_code == 200 and "You are signed out" in answer.get_data(as_text=True)


def test_logout_form_needs_csrf_and_same_origin(h: Harness) -> None:
    h.login("alice", PASSWORD)
    form = form_of(logout(h))
    assert h.client.post("/logout", data={**form, "csrf": "x"}).status_code == 403
    cross = h.client.post("/logout", data=form, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert signed_in(h)
    assert ORIGIN == "http://localhost"


# -- an application's POST (RP-Initiated Logout 1.0 §2), hostile ---------------------------------


def test_an_applications_post_with_hostile_values(h: Harness) -> None:
    """An application's POST is read by the GET's rules: a value too long or given twice
    is refused (no redirect, nobody signed out); a ``state`` of any characters goes on
    to the GET percent-encoded and comes back to the application exactly."""
    cross = {"Origin": "http://127.0.0.1:9", "Content-Type": "application/x-www-form-urlencoded"}
    wiki = ids(h)["client_id"]
    to_uri = {"client_id": wiki, "post_logout_redirect_uri": SIGNED_OUT}
    for data in (
        urlencode({**to_uri, "state": "s" * 9000}),
        urlencode(to_uri) + "&state=a&state=b",
        urlencode(to_uri) + "&state=%FF",
    ):
        refused = h.client.post("/logout", data=data, headers=cross)
        assert 400 <= refused.status_code < 500 and "Location" not in refused.headers, data[:80]
    state = "ß<script>\"'&x=1#"
    handed = h.client.post("/logout", data=urlencode({**to_uri, "state": state}), headers=cross)
    assert handed.status_code == 303
    back = h.client.get(handed.headers["Location"])
    assert back.status_code == 302
    assert back.headers["Location"] == SIGNED_OUT + "?" + urlencode({"state": state})
