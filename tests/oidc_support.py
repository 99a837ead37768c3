"""Shared by the OpenID Connect tests: the seeded provider, and a browser's part in the
authorization code flow, played with requests (no JavaScript needed)."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from urllib.parse import urljoin

import requests

from passport.services import directory
from passport.services.passwords import Passwords
from passport.storage.db import Database
from passport.storage.models import User

from conftest import make_settings

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:9/callback"
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


def seed(url: str) -> dict[str, str]:
    settings = make_settings(url)
    database = Database(settings)
    now = datetime.now(UTC)
    try:
        with database.session(write=True) as db, db.begin():
            web, secret = directory.create_application(
                db, now, "Wiki", redirect_uris=[REDIRECT], origins=["http://127.0.0.1:9"]
            )
            spa, _ = directory.create_application(
                db, now, "Spa", redirect_uris=[REDIRECT], confidential=False
            )
            spa.first_party = True
            service, service_secret = directory.create_application(db, now, "Batch")
            perm = directory.create_permission(db, web, "edit")
            user = User(
                username="alice",
                username_key="alice",
                email="alice@example.com",
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


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEXT = re.compile(r'name="next" value="([^"]+)"')


def follow_to_client(
    browser: requests.Session,
    url: str,
    base: str,
    redirect_uri: str,
    *,
    username: str | None = None,
    password: str | None = None,
    consent: bool = True,
) -> str:
    """Follow redirects from ``url``, signing in and allowing when asked, until Passport
    sends the browser to ``redirect_uri``; returns that final URL."""
    for _ in range(10):
        if url.startswith(redirect_uri):
            return url
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (301, 302, 303):
            url = urljoin(base, response.headers["Location"])
            continue
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        html = response.text
        csrf = CSRF.search(html)
        assert csrf is not None, html[:500]
        next_url = NEXT.search(html)
        if 'action="/login"' in html:
            assert username and password, "asked to sign in"
            form = {
                "csrf": csrf.group(1),
                "next": _unescape(next_url.group(1)) if next_url else "",
                "username": username,
                "password": password,
            }
            posted = browser.post(
                base + "/login",
                data=form,
                allow_redirects=False,
                headers={"Origin": base},
                timeout=10,
            )
        elif 'action="/consent"' in html:
            form = {
                "csrf": csrf.group(1),
                "next": _unescape(next_url.group(1)) if next_url else "",
                "decision": "allow" if consent else "deny",
            }
            posted = browser.post(
                base + "/consent",
                data=form,
                allow_redirects=False,
                headers={"Origin": base},
                timeout=10,
            )
        else:
            raise AssertionError(f"unexpected page at {url}: {html[:300]}")
        assert posted.status_code == 302, (posted.status_code, posted.text[:500])
        url = urljoin(base, posted.headers["Location"])
    raise AssertionError("too many redirects")


def _unescape(value: str) -> str:
    return value.replace("&amp;", "&").replace("&#34;", '"').replace("&#39;", "'")
