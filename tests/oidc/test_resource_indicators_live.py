"""RFC 8707 against a live ``passport serve`` with a real client: Authlib's OAuth2Session
sends ``resource`` at the authorization endpoint and at the token endpoint (narrowing,
§2.2), a browser (requests) signs in and allows; then the API — a separate application
that registered the resource identifier — introspects the token with its own
credentials (RFC 7662 §2.1), as a resource server would, with ``requests``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import follow_to_client
from oidc_support import seed
from passport.services import directory
from passport.storage.db import Database
from provision import Backend

from conftest import _empty_tables
from conftest import make_settings

pytestmark = pytest.mark.live

ORDERS = "https://orders.example.com/api"
BILLING = "https://billing.example.com"


@pytest.fixture(params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[tuple[Provider, dict[str, tuple[str, str]]]]:
    """The seeded provider, plus two APIs (Orders, Billing) registered as applications
    with their resource identifiers; their credentials by name."""
    url = backends[request.param].url
    _empty_tables(url)
    ids = seed(url)
    database = Database(make_settings(url))
    apis: dict[str, tuple[str, str]] = {}
    try:
        with database.session(write=True) as db, db.begin():
            for name, uri in (("Orders", ORDERS), ("Billing", BILLING)):
                app, secret = directory.create_application(
                    db, datetime.now(UTC), name, resources=[uri]
                )
                apis[name] = (app.client_id or "", secret or "")
    finally:
        database.dispose()
    server = live_server(
        url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, "PASSPORT_KEY_ROTATION_DELAY": "0"}
    )
    yield Provider(server.url, **ids), apis


def introspect(p: Provider, token: str, credentials: tuple[str, str]) -> dict[str, Any]:
    answer = requests.post(
        p.url + "/oauth2/introspect", data={"token": token}, auth=credentials, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_authlib_client_gets_a_token_for_an_api_which_the_api_introspects(
    live: tuple[Provider, dict[str, tuple[str, str]]],
) -> None:
    p, apis = live
    meta = requests.get(p.url + "/.well-known/openid-configuration", timeout=5).json()
    client = OAuth2Session(
        p.client_id,
        p.client_secret,
        scope="openid profile",
        redirect_uri=p.redirect_uri,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    uri, _state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, resource=ORDERS
    )
    uri += "&" + urlencode({"resource": BILLING})  # repeated (RFC 8707 §2)
    browser = requests.Session()
    visited: list[str] = []
    final = follow_to_client(
        browser, uri, p.url, p.redirect_uri, username="alice", password=PASSWORD, visited=visited
    )
    assert visited == ["login", "consent"]
    token = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=final,
        code_verifier=verifier,
        resource=ORDERS,  # narrowed to one of the two (RFC 8707 §2.2)
    )
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    access = jwt.decode(token["access_token"], keys)
    assert access.header["typ"] == "at+jwt" and access.claims["aud"] == ORDERS

    # the API checks the token with its own credentials (RFC 7662 §2.1)
    seen = introspect(p, token["access_token"], apis["Orders"])
    assert seen["active"] is True and seen["aud"] == ORDERS
    assert seen["client_id"] == p.client_id and seen["username"] == "alice"
    # the other API, and an unrelated service, learn nothing
    assert introspect(p, token["access_token"], apis["Billing"]) == {"active": False}
    assert introspect(p, token["access_token"], (p.service_id, p.service_secret)) == {
        "active": False
    }
    # Passport's userinfo is not the token's audience
    refused = requests.get(
        meta["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]

    # the refresh token holds the whole grant: a refresh for the other API
    refreshed = client.refresh_token(
        meta["token_endpoint"], refresh_token=token["refresh_token"], resource=BILLING
    )
    assert jwt.decode(refreshed["access_token"], keys).claims["aud"] == BILLING
    assert introspect(p, refreshed["access_token"], apis["Billing"])["active"] is True
    widened = requests.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": refreshed["refresh_token"],
            "resource": "https://evil.example.com",
        },
        auth=(p.client_id, p.client_secret),
        timeout=10,
    )
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_target"
