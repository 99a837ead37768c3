"""Shared by the OpenID Connect tests: the seeded provider, and a browser's part in the
authorization code flow, played with requests (no JavaScript needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

from passport.services import directory
from passport.services.applications import find_by_name
from passport.services.passwords import Passwords
from passport.storage.db import Database
from passport.storage.models import User

from conftest import make_settings
from support import Harness

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9/callback"
# Wiki's and Spa's post-logout redirect URI (RP-Initiated Logout 1.0 §3), registered
# apart from REDIRECT: /logout does not return to a login redirect URI (§2).
SIGNED_OUT = "http://127.0.0.1:9/signed-out"
KEK = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@dataclass
class Provider:
    url: str
    client_id: str
    client_secret: str
    public_client_id: str
    service_id: str
    service_secret: str
    redirect_uri: str = REDIRECT
    database_url: str = ""  # the live server's database, for a test's own applications


def seed(url: str) -> dict[str, str]:
    settings = make_settings(url)
    database = Database(settings)
    now = datetime.now(UTC)
    try:
        with database.session(write=True) as db, db.begin():
            web, secret = directory.create_application(
                db,
                now,
                "Wiki",
                redirect_uris=[REDIRECT],
                post_logout_redirect_uris=[SIGNED_OUT],
                origins=["http://127.0.0.1:9"],
            )
            spa, _ = directory.create_application(
                db,
                now,
                "Spa",
                redirect_uris=[REDIRECT],
                post_logout_redirect_uris=[SIGNED_OUT],
                confidential=False,
            )
            spa.first_party = True
            service, service_secret = directory.create_application(db, now, "Batch")
            perm = directory.create_permission(db, web, "edit")
            user = User(
                username="alice",
                username_key="alice",
                email="alice@example.com",
                email_key="alice@example.com",
                display_name="Alice",
                password_hash=Passwords(settings).hash(PASSWORD),
                disabled=False,
                created_at=now,
                password_changed_at=now,
            )
            db.add(user)
            db.flush()
            directory.grant(db, perm, user=user)
            group = directory.create_group(db, "Editors")
            directory.add_member(db, group, user)
            ids = {
                "client_id": web.client_id or "",
                "client_secret": secret or "",
                "public_client_id": spa.client_id or "",
                "service_id": service.client_id or "",
                "service_secret": service_secret or "",
            }
    finally:
        database.dispose()
    return ids


HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden fields of a hosted page's form, as a browser would post them."""
    return {name: _unescape(value) for name, value in HIDDEN.findall(html)}


def follow_to_client(
    browser: requests.Session,
    url: str,
    base: str,
    redirect_uri: str,
    *,
    username: str | None = None,
    password: str | None = None,
    consent: bool = True,
    visited: list[str] | None = None,
) -> str:
    """Follow redirects from ``url``, signing in and allowing when asked, until Passport
    sends the browser to ``redirect_uri``; returns that final URL.  Each page's form is
    posted with exactly its hidden fields, as a browser would; ``visited`` collects the
    pages shown ("login", "consent")."""
    for _ in range(10):
        if url.startswith(redirect_uri):
            return url
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (301, 302, 303, 307):
            url = urljoin(base, response.headers["Location"])
            continue
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        html = response.text
        form = hidden_fields(html)
        assert "csrf" in form, html[:500]
        if 'action="/login"' in html:
            assert username and password, "asked to sign in"
            form |= {"username": username, "password": password}
            page = "login"
        elif 'action="/consent"' in html:
            form |= {"decision": "allow" if consent else "deny"}
            page = "consent"
        else:
            raise AssertionError(f"unexpected page at {url}: {html[:300]}")
        if visited is not None:
            visited.append(page)
        posted = browser.post(
            f"{base}/{page}",
            data=form,
            allow_redirects=False,
            headers={"Origin": base},
            timeout=10,
        )
        assert posted.status_code == 302, (posted.status_code, posted.text[:500])
        url = urljoin(base, posted.headers["Location"])
    raise AssertionError("too many redirects")


def _unescape(value: str) -> str:
    return value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")


# -- in-process flow helpers (werkzeug test client, injectable clock) --


def ids(h: Harness) -> dict[str, str]:
    return h.ids  # type: ignore[attr-defined,no-any-return]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def first_party(h: Harness, name: str = "Wiki") -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        app.first_party = True


def authorize(h: Harness, client: Any = None, **params: str) -> Any:
    return (client or h.client).get("/oauth2/authorize?" + urlencode(params))


def query(response: Any) -> dict[str, str]:
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(h: Harness, challenge: str | None = None, **extra: str) -> str:
    h.login("alice", PASSWORD)
    first_party(h)
    params = {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        **extra,
    }
    if challenge:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    response = authorize(h, **params)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(REDIRECT)
    return query(response)["code"]


def token(h: Harness, auth: bool = True, **data: str) -> Any:
    headers = {}
    if auth:
        raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    return h.client.post("/oauth2/token", data=data, headers=headers)


def exchange(h: Harness, code: str, **extra: str) -> Any:
    return token(h, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, **extra)


def body(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def handle_of(response: Any) -> str:
    """The pending-authorization handle in a redirect to /login or /consent."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(("/login?", "/consent?")), location
    return query(response)["authorization"]


def form_of(page: Any) -> dict[str, str]:
    """A hosted page's hidden form fields (csrf, authorization…), as a browser posts them."""
    return hidden_fields(page.get_data(as_text=True))


def rows(h: Harness, table: str) -> int:
    """How many rows ``table`` holds (to prove that a refusal wrote nothing)."""
    from sqlalchemy import text

    with h.app.services.db.session() as db:
        return int(db.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def wiki_request(h: Harness, **extra: str) -> dict[str, str]:
    """An authorization request of the Wiki application (confidential, not first-party)."""
    return {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": "st",
        **extra,
    }
