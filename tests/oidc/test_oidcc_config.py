"""The conformance suite's Config OP test, ``oidcc-discovery-endpoint-verification``, and
its RFC 8414 twin: the provider's metadata has every member OpenID Connect Discovery 1.0
§3 requires, each saying what Passport really does; ``issuer`` equals the issuer
(Discovery §4.3, RFC 8414 §3.3); the JWKS is reachable and its keys verify what Passport
signs.  In process, on SQLite and PostgreSQL (``h``)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import ids
from oidc_support import query

from support import ORIGIN
from support import Harness

DISCOVERY = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"

# Discovery §3: REQUIRED members (token_endpoint: unless only the implicit flow is used).
REQUIRED = {
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
}
# Discovery §3: RECOMMENDED members Passport has something to say for (it has no dynamic
# registration endpoint).
RECOMMENDED = {"userinfo_endpoint", "scopes_supported", "claims_supported"}
ENDPOINTS = {
    "authorization_endpoint": "/oauth2/authorize",
    "token_endpoint": "/oauth2/token",
    "userinfo_endpoint": "/oauth2/userinfo",
    "jwks_uri": "/.well-known/jwks.json",
    "introspection_endpoint": "/oauth2/introspect",
    "revocation_endpoint": "/oauth2/revoke",
    "end_session_endpoint": "/logout",
    "device_authorization_endpoint": "/oauth2/device_authorization",  # RFC 8628 §4
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}  # RFC 7518 §6.2.2, §6.3.2


def metadata(h: Harness, path: str = DISCOVERY) -> dict[str, Any]:
    response = h.client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"  # Discovery §4.2, RFC 8414 §3.2
    return body(response)


@pytest.mark.parametrize("path", [DISCOVERY, RFC8414])
def test_every_required_member_and_the_issuer(h: Harness, path: str) -> None:
    meta = metadata(h, path)
    assert REQUIRED | RECOMMENDED <= set(meta), REQUIRED | RECOMMENDED - set(meta)
    # §4.3 / RFC 8414 §3.3: exactly the issuer the document was fetched under; RFC 8414 §2:
    # https (http on loopback here), no query or fragment.
    assert meta["issuer"] == ORIGIN
    parts = urlsplit(meta["issuer"])
    assert parts.scheme in ("https", "http") and not parts.query and not parts.fragment
    for member, path_ in ENDPOINTS.items():
        assert meta[member] == ORIGIN + path_, member
    assert "openid" in meta["scopes_supported"]  # §3: the server MUST support it
    assert meta["response_types_supported"] == ["code"]
    assert meta["subject_types_supported"] == ["public"]


def test_the_published_endpoints_answer(h: Harness) -> None:
    """Every URL named in the document is one Passport answers (not 404)."""
    meta = metadata(h)
    for member in ENDPOINTS:
        path = urlsplit(meta[member]).path
        answers = (h.new_client().get(path), h.new_client().post(path))
        assert all(a.status_code != 404 for a in answers), member


def test_members_say_what_passport_does(h: Harness) -> None:
    """Each member is what the code does, not a wish: the values the issue names."""
    meta = metadata(h)
    # Core §15.1 / Discovery §3: RS256 MUST be listed; ES256 is the default; never none.
    assert meta["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    assert meta["code_challenge_methods_supported"] == ["S256"]  # RFC 7636: no plain
    assert meta["grant_types_supported"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",  # RFC 8628 §3.4
    ]
    assert meta["response_modes_supported"] == ["query", "form_post"]
    assert meta["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert meta["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert meta["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    # Request objects are not supported; an absent request_uri_parameter_supported would
    # mean true (Discovery §3), so both are written out.
    assert meta["request_parameter_supported"] is False
    assert meta["request_uri_parameter_supported"] is False
    assert meta["authorization_response_iss_parameter_supported"] is True


def test_the_iss_parameter_is_really_sent(h: Harness) -> None:
    """RFC 9207 §2: advertised, so every authorization response carries ``iss``, equal to
    the metadata's ``issuer``: a success as well as an error."""
    issuer = metadata(h)["issuer"]
    get_code(h)  # signs alice in and makes Wiki first-party
    asked = {"client_id": ids(h)["client_id"], "redirect_uri": REDIRECT, "state": "s"}
    success = h.client.get(
        "/oauth2/authorize?" + urlencode({**asked, "response_type": "code", "scope": "openid"})
    )
    error = h.client.get("/oauth2/authorize?" + urlencode({**asked, "response_type": "token"}))
    assert "code" in query(success) and query(success)["iss"] == issuer
    assert "error" in query(error) and query(error)["iss"] == issuer


def test_claims_supported_are_the_claims_passport_emits(h: Harness) -> None:
    """Discovery §3 ``claims_supported``: the ID token's and userinfo's claims are all
    listed.  ``updated_at`` is neither (Core §5.1: Passport keeps no time of a profile
    change, and the password's change is not one)."""
    listed = set(metadata(h)["claims_supported"])
    scope = "openid profile email groups permissions"
    issued = body(exchange(h, get_code(h, scope=scope, nonce="n-1")))
    id_claims = jwt.decode(issued["id_token"], KeySet.import_key_set(jwks(h))).claims
    info = body(
        h.client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
        )
    )
    assert set(id_claims) <= listed, set(id_claims) - listed
    assert set(info) <= listed, set(info) - listed
    assert "updated_at" not in listed | set(id_claims) | set(info)


def test_both_documents_are_one(h: Harness) -> None:
    """RFC 8414's document is Discovery's: RFC 8414 §7.1.2 registers Discovery's members,
    so one document is right at both URLs and the two cannot drift apart."""
    assert metadata(h, RFC8414) == metadata(h, DISCOVERY)
    for path in (DISCOVERY, RFC8414):
        assert h.client.post(path).status_code == 405


def jwks(h: Harness) -> dict[str, Any]:
    response = h.client.get(urlsplit(metadata(h)["jwks_uri"]).path)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return body(response)


def test_the_jwks_is_reachable_and_its_keys_usable(h: Harness) -> None:
    """RFC 7517 §5: a key of every advertised algorithm, each with ``use: sig``, its
    ``alg`` and its own ``kid`` (RFC 7517 §4.2, §4.4, §4.5), no private member; each
    key verifies what Passport signs with it."""
    meta = metadata(h)
    keys = jwks(h)["keys"]
    kids = [k["kid"] for k in keys]
    assert len(set(kids)) == len(kids)
    assert {k["alg"] for k in keys} == set(meta["id_token_signing_alg_values_supported"])
    assert "RS256" in {k["alg"] for k in keys}  # Core §15.1, whatever signing_alg says
    for key in keys:
        assert key["use"] == "sig"
        assert (key["kty"], key["alg"]) in {("EC", "ES256"), ("RSA", "RS256")}
        assert not PRIVATE_MEMBERS & set(key), key["kid"]
        if key["kty"] == "RSA":  # RFC 7518 §3.3: 2048 bits or more
            modulus = key["n"] + "=" * (-len(key["n"]) % 4)
            assert len(base64.urlsafe_b64decode(modulus)) * 8 >= 2048
    issued = body(exchange(h, get_code(h)))
    decoded = jwt.decode(issued["id_token"], KeySet.import_key_set({"keys": keys}))
    assert decoded.header["kid"] in kids and decoded.claims["iss"] == meta["issuer"]
