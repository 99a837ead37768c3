"""Real third-party clients against a live Passport: Authlib and requests-oauthlib run the
code + PKCE flow; ID tokens are verified with PyJWT and joserfc against our JWKS."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt as pyjwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from requests_oauthlib import OAuth2Session as OAuthlibSession

from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import follow_to_client

pytestmark = pytest.mark.live


def discovery(p: Provider) -> dict[str, Any]:
    return requests.get(p.url + "/.well-known/openid-configuration", timeout=5).json()  # type: ignore[no-any-return]


def sign_in_with_authlib(
    p: Provider,
    scope: str = "openid profile email groups permissions",
    *,
    browser: requests.Session | None = None,
    visited: list[str] | None = None,
    **extra: Any,
) -> tuple[OAuth2Session, dict[str, Any], str]:
    meta = discovery(p)
    client = OAuth2Session(
        p.client_id,
        p.client_secret,
        scope=scope,
        redirect_uri=p.redirect_uri,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    uri, _state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
    )
    final = follow_to_client(
        browser or requests.Session(),
        uri,
        p.url,
        p.redirect_uri,
        username="alice",
        password=PASSWORD,
        visited=visited,
    )
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=final, code_verifier=verifier
    )
    return client, dict(token), nonce


def verified_claims(p: Provider, id_token: str) -> dict[str, Any]:
    meta = discovery(p)
    key = pyjwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(id_token)
    claims: dict[str, Any] = pyjwt.decode(
        id_token, key.key, algorithms=["ES256"], audience=p.client_id, issuer=p.url
    )
    return claims


def test_discovery_document(provider: Provider) -> None:
    meta = discovery(provider)
    assert meta["issuer"] == provider.url
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "end_session_endpoint",
    ):
        assert meta[name].startswith(provider.url + "/")


def test_authlib_code_flow_with_pkce(provider: Provider) -> None:
    client, token, nonce = sign_in_with_authlib(provider)
    meta = discovery(provider)
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(token)

    jwks = requests.get(meta["jwks_uri"], timeout=5).json()
    key = pyjwt.PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token["id_token"])
    claims = pyjwt.decode(
        token["id_token"],
        key.key,
        algorithms=["ES256"],
        audience=provider.client_id,
        issuer=provider.url,
    )
    assert claims["nonce"] == nonce
    assert claims["sub"] != "alice" and claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["amr"] == ["pwd"] and claims["auth_time"] <= time.time()
    assert claims["groups"] == ["Editors"] and claims["permissions"] == ["edit"]
    at_hash = pyjwt.utils.base64url_encode(
        __import__("hashlib").sha256(token["access_token"].encode()).digest()[:16]
    ).decode()
    assert claims["at_hash"] == at_hash
    decoded = jose_jwt.decode(token["id_token"], KeySet.import_key_set(jwks))
    assert decoded.claims["aud"] == provider.client_id
    access = jose_jwt.decode(token["access_token"], KeySet.import_key_set(jwks))
    assert access.header["typ"] == "at+jwt" and access.claims["client_id"] == provider.client_id

    info = client.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["email"] == "alice@example.com"
    posted = requests.post(
        meta["userinfo_endpoint"],
        timeout=5,
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert posted.json()["sub"] == claims["sub"]


def test_refresh_rotation_grace_and_reuse(provider: Provider) -> None:
    client, token, _ = sign_in_with_authlib(provider)
    meta = discovery(provider)
    first_refresh = token["refresh_token"]
    renewed = client.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert renewed["refresh_token"] != first_refresh
    # a concurrent client using the same refresh token inside the grace window: same pair
    again = requests.post(
        meta["token_endpoint"],
        timeout=5,
        auth=(provider.client_id, provider.client_secret),
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
    ).json()
    assert again["refresh_token"] == renewed["refresh_token"]
    assert again["access_token"] == renewed["access_token"]


def test_introspection_and_revocation(provider: Provider) -> None:
    _, token, _ = sign_in_with_authlib(provider)
    meta = discovery(provider)
    auth = (provider.client_id, provider.client_secret)
    active = requests.post(
        meta["introspection_endpoint"], auth=auth, timeout=5, data={"token": token["access_token"]}
    ).json()
    assert active["active"] is True and active["client_id"] == provider.client_id
    assert active["username"] == "alice"
    other = requests.post(
        meta["introspection_endpoint"],
        timeout=5,
        auth=(provider.service_id, provider.service_secret),
        data={"token": token["access_token"]},
    ).json()
    assert other == {"active": False}  # a token for another audience
    assert (
        requests.post(
            meta["introspection_endpoint"],
            timeout=5,
            auth=(provider.client_id, "x"),
            data={"token": token["access_token"]},
        ).status_code
        == 401
    )
    revoked = requests.post(
        meta["revocation_endpoint"], auth=auth, timeout=5, data={"token": token["refresh_token"]}
    )
    assert revoked.status_code == 200
    for value in (token["refresh_token"], token["access_token"]):
        assert requests.post(
            meta["introspection_endpoint"], auth=auth, timeout=5, data={"token": value}
        ).json() == {"active": False}


def test_client_credentials(provider: Provider) -> None:
    meta = discovery(provider)
    client = OAuth2Session(provider.service_id, provider.service_secret)
    token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert "refresh_token" not in token and "id_token" not in token
    info = requests.post(
        meta["introspection_endpoint"],
        timeout=5,
        auth=(provider.service_id, provider.service_secret),
        data={"token": token["access_token"]},
    ).json()
    assert info["active"] is True and info["sub"] == provider.service_id
    post_auth = requests.post(
        meta["token_endpoint"],
        timeout=5,
        data={
            "grant_type": "client_credentials",
            "client_id": provider.service_id,
            "client_secret": provider.service_secret,
        },
    )
    assert post_auth.status_code == 200


def test_requests_oauthlib_public_client_with_pkce(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http in tests only
    meta = discovery(provider)
    verifier = secrets.token_urlsafe(48)
    import base64
    import hashlib

    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    session = OAuthlibSession(
        provider.public_client_id, redirect_uri=provider.redirect_uri, scope=["openid", "profile"]
    )
    uri, _state = session.authorization_url(
        meta["authorization_endpoint"], code_challenge=challenge, code_challenge_method="S256"
    )
    final = follow_to_client(
        requests.Session(),
        uri,
        provider.url,
        provider.redirect_uri,
        username="alice",
        password=PASSWORD,
    )
    token = session.fetch_token(
        meta["token_endpoint"],
        authorization_response=final,
        include_client_id=True,
        code_verifier=verifier,
    )
    assert "id_token" in token
    assert session.get(meta["userinfo_endpoint"]).json()["preferred_username"] == "alice"


@pytest.mark.parametrize("fresh", [{"prompt": "login"}, {"max_age": 0}])
def test_authlib_fresh_login_completes_after_one_sign_in(
    provider: Provider, fresh: dict[str, Any]
) -> None:
    """prompt=login and max_age=0 (OIDC Core §3.1.2.1) ask for the password once more, then
    the code comes; the ID token's auth_time is that fresh login's."""
    browser = requests.Session()
    first: list[str] = []
    _, token, _ = sign_in_with_authlib(provider, "openid", browser=browser, visited=first)
    assert first == ["login", "consent"]
    before = verified_claims(provider, token["id_token"])["auth_time"]
    time.sleep(1.1)  # auth_time counts whole seconds
    started = int(time.time())
    again: list[str] = []
    _, token, nonce = sign_in_with_authlib(
        provider, "openid", browser=browser, visited=again, **fresh
    )
    assert again == ["login"]  # once, then the code: no loop, consent remembered
    claims = verified_claims(provider, token["id_token"])
    assert claims["nonce"] == nonce
    assert started <= claims["auth_time"] <= time.time() and claims["auth_time"] > before
