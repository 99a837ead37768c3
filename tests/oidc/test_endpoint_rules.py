"""What the token, userinfo, introspection and revocation endpoints refuse: credentials in
URLs, scopes an application was not registered for, and tokens that no longer stand for
anything (revoked, a disabled user, a disabled application)."""

from __future__ import annotations

import base64
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import update

from oidc_support import PASSWORD
from oidc_support import body
from oidc_support import exchange
from oidc_support import form_of
from oidc_support import get_code
from oidc_support import ids
from oidc_support import rows
from passport.services.applications import find_by_name
from passport.storage.models import OAuthToken
from passport.storage.models import User

from support import Harness


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def wiki(h: Harness) -> dict[str, str]:
    return basic(ids(h)["client_id"], ids(h)["client_secret"])


def batch(h: Harness) -> dict[str, str]:
    return basic(ids(h)["service_id"], ids(h)["service_secret"])


def register_scopes(h: Harness, name: str, scopes: list[str]) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        app.scopes = scopes


def client_credentials(h: Harness, **data: str) -> Any:
    return h.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **data}, headers=batch(h)
    )


def introspect(h: Harness, value: str, headers: dict[str, str] | None = None) -> Any:
    return h.client.post("/oauth2/introspect", data={"token": value}, headers=headers or wiki(h))


def userinfo(h: Harness, access_token: str) -> Any:
    return h.new_client().get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    )


# -- client credentials: registered scopes only (RFC 7591 §2, RFC 6749 §5.2) -------------------


def test_client_credentials_issue_only_registered_scopes(h: Harness) -> None:
    register_scopes(h, "Batch", ["reports:read", "reports:write"])
    for asked in ("admin users:write", "admin", "reports:read admin", "openid", "reports:*"):
        refused = client_credentials(h, scope=asked)
        assert refused.status_code == 400, asked
        assert body(refused)["error"] == "invalid_scope"
    assert rows(h, "oauth_tokens") == 0

    subset = body(client_credentials(h, scope="reports:read reports:read"))
    assert subset["scope"] == "reports:read"
    active = body(introspect(h, subset["access_token"], batch(h)))
    assert active["active"] is True and active["scope"] == "reports:read"
    default = body(client_credentials(h))
    assert default["scope"] == "reports:read reports:write"


def test_client_credentials_without_registered_scopes_get_none(h: Harness) -> None:
    assert body(client_credentials(h, scope="admin"))["error"] == "invalid_scope"
    assert body(client_credentials(h))["scope"] == ""


@pytest.mark.parametrize("scope", ["a" * 501, "reports:read " * 60, "x" * 9000])
def test_an_overlong_scope_is_an_oauth_error(h: Harness, scope: str) -> None:
    register_scopes(h, "Batch", ["reports:read"])
    answer = client_credentials(h, scope=scope)
    assert answer.status_code == 400
    assert body(answer)["error"] in ("invalid_scope", "invalid_request")
    assert rows(h, "oauth_tokens") == 0


# -- credentials never in a URL (RFC 6749 §3.2, RFC 9700) -----------------------------------------


@pytest.mark.parametrize(
    ("path", "in_url", "in_body"),
    [
        ("/oauth2/token", "client_secret", {"grant_type": "client_credentials"}),
        ("/oauth2/token", "code", {"grant_type": "authorization_code"}),
        ("/oauth2/token", "code_verifier", {"grant_type": "authorization_code"}),
        ("/oauth2/token", "refresh_token", {"grant_type": "refresh_token"}),
        ("/oauth2/introspect", "token", {}),
        ("/oauth2/revoke", "token", {}),
        ("/oauth2/userinfo", "access_token", {}),
    ],
)
def test_credentials_in_a_url_are_refused(
    h: Harness, path: str, in_url: str, in_body: dict[str, str]
) -> None:
    issued = body(exchange(h, get_code(h)))
    secrets = {
        "client_secret": ids(h)["service_secret"],
        "code": get_code(h),
        "code_verifier": "v" * 43,
        "refresh_token": issued["refresh_token"],
        "token": issued["access_token"],
        "access_token": issued["access_token"],
    }
    before = rows(h, "oauth_tokens")
    query = urlencode({"client_id": ids(h)["service_id"], in_url: secrets[in_url]})
    headers = {} if in_url == "client_secret" else batch(h)
    answer = h.client.post(f"{path}?{query}", data=in_body, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert body(answer)["error"] == "invalid_request"
    assert "access_token" not in body(answer) and "active" not in body(answer)
    assert rows(h, "oauth_tokens") == before
    assert body(introspect(h, issued["access_token"]))["active"] is True  # not revoked


def test_the_token_endpoint_reads_the_body_only(h: Harness) -> None:
    """RFC 6749 §4.1.3: parameters in the entity-body; a grant_type in the URL is none,
    so the request misses it (§5.2 invalid_request)."""
    answer = h.client.post("/oauth2/token?grant_type=client_credentials", headers=batch(h))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"


def test_hosted_forms_refuse_credentials_in_the_url(h: Harness) -> None:
    csrf = form_of(h.client.get("/login"))["csrf"]
    query = urlencode({"username": "alice", "password": PASSWORD})
    signed = h.client.post(f"/login?{query}", data={"csrf": csrf})
    assert signed.status_code == 400 and signed.mimetype == "text/html"
    assert "passport_session=" not in signed.headers.get("Set-Cookie", "")
    status = body(h.client.get("/Account/status"))
    assert status["LoggedIn"] is False
    assert h.client.get(f"/login?{query}").status_code == 400
    assert h.client.get("/login?password=x").status_code == 400

    h.login("alice", PASSWORD)
    csrf = form_of(h.client.get("/account"))["csrf"]
    for name in ("oldPassword", "newPassword", "password"):
        changed = h.client.post(
            f"/account?{name}=a+new+long+passphrase",
            data={
                "csrf": csrf,
                "action": "password",
                "oldPassword": PASSWORD,
                "newPassword": "another new passphrase",
            },
        )
        assert changed.status_code == 400, name
    assert h.login("alice", PASSWORD).status_code == 200  # the password did not change


def test_the_login_page_says_busy_as_a_page_when_hashing_is_saturated(h: Harness) -> None:
    """The bounded hashing queue refuses with 503 (passwords.Passwords.saturated); a person
    on the hosted page gets the form back with the reason, not the API's JSON."""
    form = form_of(h.client.get("/login"))
    h.app.services.passwords.saturated = lambda: True  # type: ignore[method-assign]
    busy = h.client.post("/login", data={**form, "username": "alice", "password": PASSWORD})
    assert busy.status_code == 503 and busy.mimetype == "text/html"
    assert int(busy.headers["Retry-After"]) > 0
    assert 'name="password"' in busy.get_data(as_text=True)
    assert body(h.client.get("/Account/status"))["LoggedIn"] is False


# -- tokens that no longer stand for anything ---------------------------------------------------


def flows(h: Harness) -> dict[str, Any]:
    issued = body(exchange(h, get_code(h, scope="openid profile")))
    assert userinfo(h, issued["access_token"]).status_code == 200
    assert body(introspect(h, issued["access_token"]))["active"] is True
    return issued


def assert_dead(h: Harness, issued: dict[str, Any]) -> None:
    info = userinfo(h, issued["access_token"])
    assert info.status_code == 401 and body(info)["error"] == "invalid_token"
    assert 'error="invalid_token"' in info.headers["WWW-Authenticate"]
    for value in (issued["access_token"], issued["refresh_token"]):
        answer = introspect(h, value)
        assert answer.status_code == 401 or body(answer) == {"active": False}
    refresh = h.client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=wiki(h),
    )
    assert refresh.status_code in (400, 401)
    assert body(refresh)["error"] in ("invalid_grant", "invalid_client")


@pytest.mark.parametrize("opaque", [False, True])
def test_a_disabled_application_s_tokens_stop_working(h: Harness, opaque: bool) -> None:
    if opaque:
        with h.app.services.db.session(write=True) as db, db.begin():
            app = find_by_name(db, "Wiki")
            assert app is not None
            app.access_token_format = "opaque"
    issued = flows(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.enabled = False
    assert_dead(h, issued)


def test_a_disabled_application_s_public_client_cannot_refresh(h: Harness) -> None:
    from oidc_support import REDIRECT
    from oidc_support import authorize
    from oidc_support import pkce
    from oidc_support import query

    verifier, challenge = pkce()
    h.login("alice", PASSWORD)
    answer = authorize(
        h,
        client_id=ids(h)["public_client_id"],
        redirect_uri=REDIRECT,
        response_type="code",
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    code = query(answer)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": ids(h)["public_client_id"],
        "code_verifier": verifier,
    }
    issued = body(h.client.post("/oauth2/token", data=data))
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Spa")
        assert app is not None
        app.enabled = False
    refresh = h.client.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": ids(h)["public_client_id"],
        },
    )
    assert refresh.status_code in (400, 401)
    assert userinfo(h, issued["access_token"]).status_code == 401


def test_a_disabled_user_s_tokens_stop_working(h: Harness) -> None:
    issued = flows(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(update(User).where(User.username == "alice").values(disabled=True))
    assert_dead(h, issued)


def test_revoked_tokens_stop_working(h: Harness) -> None:
    """Ending a user's sessions revokes their tokens in the database (``revoked_at``):
    every check honours it."""
    issued = flows(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(update(OAuthToken).values(revoked_at=datetime.now(UTC)))
    assert_dead(h, issued)
    revoke = h.client.post(
        "/oauth2/revoke", data={"token": issued["refresh_token"]}, headers=wiki(h)
    )
    assert revoke.status_code == 200
