"""Negative protocol tests, in process with an injectable clock: what a provider must refuse."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import get_code
from oidc_support import ids
from oidc_support import pkce
from oidc_support import query
from oidc_support import token
from oidc_support import wiki_request
from passport.services import directory
from passport.services.applications import find_by_name

from support import ORIGIN
from support import Harness


def test_wrong_redirect_uri_is_an_error_page_not_a_redirect(h: Harness) -> None:
    for uri in ("http://127.0.0.1:9/other", "https://evil.example/callback", REDIRECT + "/x", ""):
        response = authorize(
            h, client_id=ids(h)["client_id"], redirect_uri=uri, response_type="code", scope="openid"
        )
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert response.mimetype == "text/html"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    unknown = authorize(h, client_id="nope", redirect_uri=REDIRECT, response_type="code")
    assert unknown.status_code == 400 and "Location" not in unknown.headers


def test_errors_go_back_to_a_registered_redirect_uri(h: Harness) -> None:
    cases = [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code", "scope": "admin phone"}, "invalid_scope"),
        (
            {"response_type": "code", "code_challenge": "x" * 43, "code_challenge_method": "plain"},
            "invalid_request",
        ),
        ({"response_type": "code", "prompt": "none"}, "login_required"),
    ]
    for params, error in cases:
        response = authorize(
            h, client_id=ids(h)["client_id"], redirect_uri=REDIRECT, state="st", **params
        )
        assert response.status_code == 302
        answer = query(response)
        assert answer["error"] == error and answer["state"] == "st"
        assert answer["iss"] == ORIGIN


def test_public_clients_must_use_pkce(h: Harness) -> None:
    h.login("alice", PASSWORD)
    response = authorize(
        h,
        client_id=ids(h)["public_client_id"],
        redirect_uri=REDIRECT,
        response_type="code",
        scope="openid",
    )
    assert query(response)["error"] == "invalid_request"


def test_pkce_verifier_must_match(h: Harness) -> None:
    verifier, challenge = pkce()
    code = get_code(h, challenge)
    assert body(exchange(h, code))["error"] == "invalid_grant"  # missing verifier
    code = get_code(h, challenge)
    assert body(exchange(h, code, code_verifier=pkce()[0]))["error"] == "invalid_grant"
    code = get_code(h, challenge)
    assert "access_token" in body(exchange(h, code, code_verifier=verifier))


def test_code_replay_revokes_what_it_issued(h: Harness) -> None:
    code = get_code(h)
    first = body(exchange(h, code))
    replay = exchange(h, code)
    assert replay.status_code == 400 and body(replay)["error"] == "invalid_grant"
    introspected = token_introspect(h, first["access_token"])
    assert introspected == {"active": False}
    refresh = token(h, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert body(refresh)["error"] == "invalid_grant"


def token_introspect(h: Harness, value: str) -> dict[str, Any]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    response = h.client.post(
        "/oauth2/introspect",
        data={"token": value},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    return body(response)


def test_expired_code_and_wrong_bindings(h: Harness) -> None:
    code = get_code(h)
    h.clock.advance(seconds=61)
    assert body(exchange(h, code))["error"] == "invalid_grant"
    code = get_code(h)
    wrong_uri = token(
        h, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:9/other"
    )
    assert body(wrong_uri)["error"] == "invalid_grant"
    raw = f"{ids(h)['service_id']}:{ids(h)['service_secret']}".encode()
    other_client = h.client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert body(other_client)["error"] == "invalid_grant"


def test_wrong_client_secret(h: Harness) -> None:
    code = get_code(h)
    raw = f"{ids(h)['client_id']}:wrong".encode()
    response = h.client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    assert response.status_code == 401 and body(response)["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers


def test_refresh_reuse_after_the_grace_window_revokes_the_family(h: Harness) -> None:
    first = body(exchange(h, get_code(h)))
    second = body(token(h, grant_type="refresh_token", refresh_token=first["refresh_token"]))
    h.clock.advance(seconds=6)
    reuse = token(h, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert body(reuse)["error"] == "invalid_grant"
    assert (
        body(token(h, grant_type="refresh_token", refresh_token=second["refresh_token"]))["error"]
        == "invalid_grant"
    )
    assert token_introspect(h, second["access_token"]) == {"active": False}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_forged_tokens_are_refused(h: Harness) -> None:
    import hmac

    issued = body(exchange(h, get_code(h)))
    header, claims, _ = issued["access_token"].split(".")
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{claims}."
    jwks = body(h.client.get("/.well-known/jwks.json"))
    public = json.dumps(jwks["keys"][0]).encode()
    signing_input = f"{_b64({'alg': 'HS256', 'kid': jwks['keys'][0]['kid']})}.{claims}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    hs256 = signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    for forged in (unsigned, hs256, header + "." + claims + ".AAAA"):
        assert token_introspect(h, forged) == {"active": False}
        info = h.new_client().get("/oauth2/userinfo", headers={"Authorization": f"Bearer {forged}"})
        assert info.status_code == 401


def test_prompt_login_and_max_age_ask_again(h: Harness) -> None:
    h.login("alice", PASSWORD)
    first_party(h)
    base = {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
    }
    assert authorize(h, **base).headers["Location"].startswith(REDIRECT)
    assert authorize(h, **base, prompt="login").headers["Location"].startswith("/login?")
    h.clock.advance(seconds=120)
    assert authorize(h, **base, max_age="60").headers["Location"].startswith("/login?")
    assert authorize(h, **base, max_age="600").headers["Location"].startswith(REDIRECT)


def test_consent_is_asked_remembered_and_can_be_denied(h: Harness) -> None:
    h.login("alice", PASSWORD)
    base = wiki_request(h, scope="openid email", state="x")
    none = authorize(h, **base, prompt="none")
    assert query(none)["error"] == "consent_required"
    asked = authorize(h, **base)
    assert asked.headers["Location"].startswith("/consent?")
    page = h.client.get(asked.headers["Location"])
    assert page.status_code == 200 and "Wiki" in page.get_data(as_text=True)
    form = form_of(page)
    forged = h.client.post("/consent", data={**form, "csrf": "wrong", "decision": "allow"})
    assert forged.status_code == 403
    denied = h.client.post("/consent", data={**form, "decision": "deny"})
    assert query(denied)["error"] == "access_denied" and query(denied)["state"] == "x"
    assert query(denied)["iss"] == ORIGIN

    form = form_of(h.client.get(authorize(h, **base).headers["Location"]))
    allowed = h.client.post("/consent", data={**form, "decision": "allow"})
    assert allowed.status_code == 302 and allowed.headers["Location"].startswith(REDIRECT)
    assert "code" in query(allowed) and query(allowed)["state"] == "x"
    assert authorize(h, **base).headers["Location"].startswith(REDIRECT)  # remembered
    assert "code" in query(authorize(h, **base, prompt="none"))
    assert authorize(h, **base, prompt="consent").headers["Location"].startswith("/consent?")


def test_login_page_csrf_and_no_open_redirect(h: Harness) -> None:
    page = h.client.get("/login?next=/account")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert 'label for="username"' in page.get_data(as_text=True)
    csrf = h.client.get_cookie("passport_csrf")
    assert csrf is not None
    no_token = h.client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert no_token.status_code == 403
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        response = h.client.post(
            "/login",
            data={"csrf": csrf.value, "username": "alice", "password": PASSWORD, "next": target},
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/account"
    wrong = h.client.post(
        "/login", data={"csrf": csrf.value, "username": "alice", "password": "not the password"}
    )
    assert wrong.status_code == 401 and "Invalid username or password." in wrong.get_data(
        as_text=True
    )


def test_rp_initiated_logout(h: Harness) -> None:
    h.login("alice", PASSWORD)
    unregistered = h.client.get(
        f"/logout?post_logout_redirect_uri=https://evil.example/&client_id={ids(h)['client_id']}"
    )
    # Not a redirect: the sign-out page, which will not return there (RP-Initiated Logout §4).
    assert unregistered.status_code == 200 and "Location" not in unregistered.headers
    assert "evil.example" not in unregistered.get_data(as_text=True)
    page = h.client.get(
        f"/logout?post_logout_redirect_uri={SIGNED_OUT}&client_id={ids(h)['client_id']}&state=bye"
    )
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)
    csrf = h.client.get_cookie("passport_csrf")
    assert csrf is not None
    done = h.client.post(
        "/logout",
        data={
            "csrf": csrf.value,
            "post_logout_redirect_uri": SIGNED_OUT,
            "state": "bye",
            "client_id": ids(h)["client_id"],
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=bye"
    status = body(h.client.get("/Account/status"))
    assert status["LoggedIn"] is False


def test_opaque_access_tokens(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.access_token_format = "opaque"
    issued = body(exchange(h, get_code(h)))
    assert issued["access_token"].count(".") == 0
    assert token_introspect(h, issued["access_token"])["active"] is True
    info = h.client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert body(info)["sub"].startswith("user-")


def test_disabled_user_tokens_stop_working(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    with h.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, "alice")
        assert user is not None
        user.disabled = True
    assert token_introspect(h, issued["access_token"]) == {"active": False}
    refresh = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert body(refresh)["error"] == "invalid_grant"


def test_bad_input_to_protocol_endpoints(h: Harness) -> None:
    for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/userinfo"):
        for data in (
            {},
            {"token": "x" * 10000},
            {"grant_type": "' OR 1=1"},
            {"code": "\x00", "grant_type": "authorization_code"},
        ):
            response = h.client.post(path, data=data)
            assert response.status_code < 500, (path, data)
    assert h.client.get("/oauth2/token").status_code == 405
    assert authorize(h, client_id="x" * 5000).status_code == 400
    assert h.client.get("/oauth2/authorize?client_id=%ff").status_code == 400
