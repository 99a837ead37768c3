"""Pushed Authorization Requests (RFC 9126) with a real client against a live Passport:
Authlib builds the authorization request (PKCE, nonce, state), the request is pushed to
the endpoint discovery names with the client's secret (HTTP Basic, §2.1), the browser
goes to ``/oauth2/authorize`` with only ``client_id`` and ``request_uri`` (§4), and
Authlib exchanges the code and checks the state."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import follow_to_client

pytestmark = pytest.mark.live


def test_authlib_pushes_its_request_and_exchanges_the_code(provider: Provider) -> None:
    meta: dict[str, Any] = requests.get(
        provider.url + "/.well-known/oauth-authorization-server", timeout=5
    ).json()
    assert meta["pushed_authorization_request_endpoint"] == provider.url + "/oauth2/par"
    client = OAuth2Session(
        provider.client_id,
        provider.client_secret,
        scope="openid email",
        redirect_uri=provider.redirect_uri,
        code_challenge_method="S256",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    built, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    request = dict(parse_qsl(urlsplit(built).query))
    pushed = requests.post(
        meta["pushed_authorization_request_endpoint"],
        data=request,
        auth=(provider.client_id, provider.client_secret),
        timeout=5,
    )
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["Cache-Control"] == "no-store"
    request_uri = pushed.json()["request_uri"]
    assert request_uri.startswith("urn:ietf:params:oauth:request_uri:")
    assert pushed.json()["expires_in"] == 60
    # §4: the front channel carries nothing but client_id and request_uri.
    front = (
        meta["authorization_endpoint"]
        + "?"
        + urlencode({"client_id": provider.client_id, "request_uri": request_uri})
    )
    browser = requests.Session()
    final = follow_to_client(
        browser, front, provider.url, provider.redirect_uri, username="alice", password=PASSWORD
    )
    assert dict(parse_qsl(urlsplit(final).query))["state"] == state
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=final, code_verifier=verifier
    )
    jwks = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    claims = jose_jwt.decode(token["id_token"], jwks).claims
    assert claims["nonce"] == nonce and claims["aud"] == provider.client_id
    assert claims["email"] == "alice@example.com"
    # §4: one-time use — the same front-channel URL again is an error page, no redirect.
    again = browser.get(front, allow_redirects=False, timeout=5)
    assert again.status_code == 400 and "Location" not in again.headers
    assert "invalid_request_uri" in again.text


def test_a_live_push_without_client_authentication_is_401(provider: Provider) -> None:
    answer = requests.post(
        provider.url + "/oauth2/par",
        data={
            "client_id": provider.client_id,
            "response_type": "code",
            "redirect_uri": provider.redirect_uri,
        },
        timeout=5,
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert answer.headers["WWW-Authenticate"].startswith("Basic")
