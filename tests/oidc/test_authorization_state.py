"""Authorization state lives on the server: whether the user signed in afresh and allowed
the application is a pending-authorization record, bound to one browser and one login
session, used once.  Nothing a client or a page sends can say so instead."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import text

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import handle_of
from oidc_support import ids
from oidc_support import query
from oidc_support import rows
from oidc_support import wiki_request
from passport.oidc.pending import BROWSER_COOKIE

from support import ORIGIN
from support import STRONG
from support import Harness
from support import PassportClient

CRAFTED = {
    "_consented": "1",
    "_logged_in": "1",
    "consented": "1",
    "decision": "allow",
    "logged_in": "true",
    "authorization": "A" * 43,
}


def sign_in(client: PassportClient, username: str = "alice", password: str = PASSWORD) -> None:
    answer = client.post("/Account/login", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def make_bob(h: Harness) -> PassportClient:
    bob = h.new_client()
    made = bob.post("/Account/register", data={"username": "bob", "password": STRONG})
    assert made.status_code == 200, made.get_data(as_text=True)
    sign_in(bob, "bob", STRONG)
    return bob


def test_crafted_parameters_change_nothing(h: Harness) -> None:
    """``_consented=1`` / ``_logged_in=1`` (and any other invented flag) neither skip the
    consent page nor stand for the fresh login that prompt=login asks for."""
    sign_in(h.client)
    asked = authorize(h, **wiki_request(h, scope="openid profile groups permissions"), **CRAFTED)
    assert asked.headers["Location"].startswith("/consent?authorization=")
    first_party(h)
    for prompt in ({"prompt": "login"}, {"max_age": "0"}):
        again = authorize(h, **wiki_request(h), **prompt, **CRAFTED)
        assert again.headers["Location"].startswith("/login?authorization="), prompt
    none = authorize(h, **wiki_request(h, prompt="none", max_age="0"), **CRAFTED)
    assert query(none)["error"] == "login_required"
    assert rows(h, "oauth_codes") == 0


def test_consent_form_takes_nothing_but_the_handle(h: Harness) -> None:
    """The consent form's fields cannot name another request: ``next`` (hostile or not),
    ``client_id``, ``redirect_uri``, ``scope`` are ignored; only the record counts."""
    sign_in(h.client)
    asked = authorize(h, **wiki_request(h, scope="openid", state="mine"))
    form = form_of(h.client.get(asked.headers["Location"]))
    hostile = {
        "next": "/oauth2/authorize?a=1&a=2",
        "redirect_uri": "https://evil.example/cb",
        "scope": "openid email groups permissions offline_access",
        "state": "theirs",
        "client_id": ids(h)["public_client_id"],
    }
    allowed = h.client.post("/consent", data={**form, **hostile, "decision": "allow"})
    assert allowed.headers["Location"].startswith(REDIRECT + "?")
    answer = query(allowed)
    assert answer["state"] == "mine" and answer["iss"] == ORIGIN
    issued = body(exchange(h, answer["code"]))
    assert issued["scope"] == "openid"


@pytest.mark.parametrize(
    "fields",
    [
        {"next": "/oauth2/authorize?a=1&a=2", "decision": "allow"},
        {"next": "/oauth2/authorize?x=%ff", "decision": "allow"},
        {"next": "/oauth2/authorize?client_id=x&redirect_uri=y", "decision": "deny"},
        {"authorization": "A" * 43, "decision": "allow"},
        {"authorization": "\x00" * 43, "decision": "allow"},
        {"authorization": "x" * 5000, "decision": "allow"},
        {"decision": "allow"},
    ],
)
def test_hostile_consent_forms_are_refused_and_write_nothing(
    h: Harness, fields: dict[str, str]
) -> None:
    sign_in(h.client)
    authorize(h, **wiki_request(h))  # a real pending authorization exists in this browser
    csrf = form_of(h.client.get("/login"))["csrf"]
    answer = h.client.post("/consent", data={"csrf": csrf, **fields})
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "Location" not in answer.headers
    assert rows(h, "oauth_codes") == 0 and rows(h, "consents") == 0


def test_a_pending_handle_is_used_once(h: Harness) -> None:
    sign_in(h.client)
    handle = handle_of(authorize(h, **wiki_request(h)))
    form = form_of(h.client.get(f"/consent?authorization={handle}"))
    allowed = h.client.post("/consent", data={**form, "decision": "allow"})
    assert "code" in query(allowed)
    for decision in ("allow", "deny"):
        replay = h.client.post("/consent", data={**form, "decision": decision})
        assert replay.status_code == 400 and "Location" not in replay.headers
    assert h.client.get(f"/consent?authorization={handle}").status_code == 400
    assert h.client.get(f"/login?authorization={handle}").status_code == 400
    assert rows(h, "oauth_codes") == 1 and rows(h, "pending_authorizations") == 0

    handle = handle_of(authorize(h, **wiki_request(h, prompt="consent")))
    form = form_of(h.client.get(f"/consent?authorization={handle}"))
    assert query(h.client.post("/consent", data={**form, "decision": "deny"}))["error"] == (
        "access_denied"
    )
    assert h.client.post("/consent", data={**form, "decision": "allow"}).status_code == 400
    assert rows(h, "oauth_codes") == 1


def test_a_handle_is_refused_in_another_browser_or_session(h: Harness) -> None:
    sign_in(h.client)
    handle = handle_of(authorize(h, **wiki_request(h)))
    alice_form = form_of(h.client.get(f"/consent?authorization={handle}"))

    bob = make_bob(h)  # another browser, with its own session and binding cookie
    authorize(h, bob, **wiki_request(h))
    assert bob.get_cookie(BROWSER_COOKIE) is not None
    assert bob.get(f"/consent?authorization={handle}").status_code == 400
    bob_csrf = form_of(bob.get("/login"))["csrf"]
    stolen = bob.post("/consent", data={**alice_form, "csrf": bob_csrf, "decision": "allow"})
    assert stolen.status_code == 400
    assert bob.get(f"/login?authorization={handle}").status_code == 400
    as_bob = bob.post(
        "/login",
        data={"csrf": bob_csrf, "authorization": handle, "username": "bob", "password": STRONG},
    )
    assert as_bob.status_code == 400 and "Location" not in as_bob.headers

    # The binding cookie alone is not enough either: the record is bound to alice's session.
    cookie = h.client.get_cookie(BROWSER_COOKIE)
    assert cookie is not None
    bob.set_cookie(BROWSER_COOKIE, cookie.value, domain="localhost")
    assert bob.get(f"/consent?authorization={handle}").status_code == 400
    stolen = bob.post("/consent", data={**alice_form, "csrf": bob_csrf, "decision": "allow"})
    assert stolen.status_code == 400
    assert rows(h, "oauth_codes") == 0

    allowed = h.client.post("/consent", data={**alice_form, "decision": "allow"})
    assert "code" in query(allowed)  # alice's own browser still can


def test_an_expired_handle_is_refused(h: Harness) -> None:
    handle = handle_of(authorize(h, **wiki_request(h)))
    h.clock.advance(minutes=11)
    assert h.client.get(f"/login?authorization={handle}").status_code == 400


def id_token_claims(h: Harness, code: str) -> dict[str, Any]:
    issued = body(exchange(h, code))
    payload = issued["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=="))  # type: ignore[no-any-return]


@pytest.mark.parametrize("fresh", [{"prompt": "login"}, {"max_age": "0"}, {"max_age": "60"}])
def test_fresh_login_is_asked_once_then_the_code_comes(h: Harness, fresh: dict[str, str]) -> None:
    """prompt=login and max_age (max_age=0 is prompt=login, OIDC Core §3.1.2.1) ask for the
    password again, once; the ID token's auth_time is that login's time."""
    sign_in(h.client)
    first_party(h)
    h.clock.advance(seconds=120)
    asked = authorize(h, **wiki_request(h, nonce="n-1"), **fresh)
    handle = handle_of(asked)
    assert asked.headers["Location"].startswith("/login?")
    page = h.client.get(asked.headers["Location"])
    assert page.status_code == 200 and "Wiki" in page.get_data(as_text=True)
    h.clock.advance(seconds=5)
    signed_in_at = h.clock.now
    answer = h.client.post(
        "/login",
        data={**form_of(page), "username": "alice", "password": PASSWORD},
    )
    assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT)
    claims = id_token_claims(h, query(answer)["code"])
    assert claims["auth_time"] == int(signed_in_at.timestamp())
    assert claims["nonce"] == "n-1"
    assert h.client.get(f"/login?authorization={handle}").status_code == 400  # used


def test_fresh_login_then_consent(h: Harness) -> None:
    """Not first-party: after the fresh login comes the consent page, then the code."""
    sign_in(h.client)
    h.clock.advance(seconds=30)
    asked = authorize(h, **wiki_request(h, scope="openid email"), prompt="login")
    page = h.client.get(asked.headers["Location"])
    logged_in = h.client.post(
        "/login", data={**form_of(page), "username": "alice", "password": PASSWORD}
    )
    assert logged_in.headers["Location"].startswith("/consent?authorization=")
    consent = h.client.get(logged_in.headers["Location"])
    allowed = h.client.post("/consent", data={**form_of(consent), "decision": "allow"})
    claims = id_token_claims(h, query(allowed)["code"])
    assert claims["auth_time"] == int(h.clock.now.timestamp())
    assert claims["email"] == "alice@example.com"


def test_signed_out_user_signs_in_then_gets_the_code(h: Harness) -> None:
    first_party(h)
    asked = authorize(h, **wiki_request(h, login_hint="alice"))
    page = h.client.get(asked.headers["Location"])
    text = page.get_data(as_text=True)
    assert 'value="alice"' in text and "Wiki" in text
    wrong = h.client.post("/login", data={**form_of(page), "username": "alice", "password": "x"})
    assert wrong.status_code == 401  # the same pending authorization, try again
    answer = h.client.post(
        "/login", data={**form_of(page), "username": "alice", "password": PASSWORD}
    )
    assert "code" in query(answer) and query(answer)["state"] == "st"


def test_prompt_none_answers_login_and_consent_required(h: Harness) -> None:
    assert query(authorize(h, **wiki_request(h, prompt="none")))["error"] == "login_required"
    sign_in(h.client)
    assert query(authorize(h, **wiki_request(h, prompt="none")))["error"] == "consent_required"
    h.clock.advance(seconds=120)
    answer = authorize(h, **wiki_request(h, prompt="none", max_age="60"))
    assert query(answer)["error"] == "login_required"
    assert rows(h, "pending_authorizations") == 0


def test_login_page_names_only_a_registered_application(h: Harness) -> None:
    """Content spoofing: ``?application=`` text is never shown; the name comes from the
    pending authorization's registered application."""
    spoof = "Your bank &lt;b&gt; needs you to sign in"
    page = h.client.get("/login?next=/account&application=" + spoof.replace(" ", "+"))
    assert page.status_code == 200
    assert "Your bank" not in page.get_data(as_text=True)
    asked = authorize(h, **wiki_request(h), application="Your bank")
    page = h.client.get(asked.headers["Location"] + "&application=Your+bank")
    text = page.get_data(as_text=True)
    assert "Your bank" not in text and "<strong>Wiki</strong>" in text


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"max_age": "²"}, "invalid_request"),
        ({"max_age": "9" * 20}, "invalid_request"),
        ({"max_age": "2147483648"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": " 5"}, "invalid_request"),
        ({"nonce": "n" * 256}, "invalid_request"),
        ({"state": "s" * 2049}, "invalid_request"),
        ({"login_hint": "h" * 255}, "invalid_request"),
        ({"scope": "openid " * 80}, "invalid_scope"),
    ],
)
def test_malformed_authorization_requests_are_oauth_errors(
    h: Harness, extra: dict[str, str], error: str
) -> None:
    """Values Passport cannot keep are refused (RFC 6749 §4.1.2.1), not a 500, and nothing
    is written — also for a signed-in user whose code would be issued at once."""
    sign_in(h.client)
    first_party(h)
    for client in (h.client, h.new_client()):
        answer = authorize(h, client, **wiki_request(h, **{"state": "st", **extra}))
        assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
        assert answer.headers["Location"].startswith(REDIRECT)
        assert query(answer)["error"] == error
    assert rows(h, "oauth_codes") == 0 and rows(h, "pending_authorizations") == 0


def test_longest_accepted_values_are_kept(h: Harness) -> None:
    """At the limits (the columns' lengths) everything goes through on every database."""
    state, nonce = "s" * 2048, "n" * 255
    asked = authorize(
        h,
        **wiki_request(h, state=state, nonce=nonce, login_hint="h" * 254, max_age="2147483647"),
    )
    page = h.client.get(asked.headers["Location"])
    answer = h.client.post(
        "/login", data={**form_of(page), "username": "alice", "password": PASSWORD}
    )
    consent = h.client.get(answer.headers["Location"])
    allowed = h.client.post("/consent", data={**form_of(consent), "decision": "allow"})
    assert query(allowed)["state"] == state
    assert id_token_claims(h, query(allowed)["code"])["nonce"] == nonce


def test_handles_are_random_and_stored_hashed(h: Harness) -> None:
    handles = {handle_of(authorize(h, **wiki_request(h))) for _ in range(3)}
    assert len(handles) == 3
    with h.app.services.db.session() as db:
        stored = set(db.execute(text("SELECT handle_hash FROM pending_authorizations")).scalars())
    assert len(stored) == 3 and not stored & handles and all(len(s) == 64 for s in stored)
