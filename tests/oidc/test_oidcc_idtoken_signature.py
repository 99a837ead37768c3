"""The conformance suite's ``oidcc-idtoken-rs256`` and ``oidcc-idtoken-signature``: an
ID token is signed with the algorithm its client registered (OpenID Connect Dynamic
Client Registration 1.0 §2 ``id_token_signed_response_alg``; RS256 always available,
Core §15.1) and verifies with the JWKS — with joserfc, and with Authlib's client
(``parse_id_token``: the path of a Flask or Django relying party).  The client's
algorithm also signs its JWT access tokens and logout tokens.  Whatever Passport itself
verifies (``id_token_hint``, JWT access tokens) is accepted in both algorithms, each only
with a key of that algorithm: no algorithm confusion (RFC 8725 §2.1, §3.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from click.testing import CliRunner
from joserfc import jws
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import ids
from passport.cli import cli
from passport.oidc.backchannel import enqueue
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import LogoutNotification

from support import ORIGIN
from support import Harness
from support import PassportClient


def admin(h: Harness) -> PassportClient:
    """An administrator's API client (the ``admin`` right of the Passport application)."""
    made: PassportClient | None = getattr(h, "admin", None)
    if made is not None:
        return made
    client = h.administrator("root", "admin")
    h.admin = client  # type: ignore[attr-defined]
    return client


def register_alg(h: Harness, alg: str) -> dict[str, Any]:
    """Set Wiki's ``id_token_signed_response_alg`` through the administration API."""
    answer = admin(h).post(
        "/Applications/update", data={"application": "Wiki", "idTokenSignedResponseAlg": alg}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return body(answer)["Data"]["Application"]  # type: ignore[no-any-return]


def sign_in(h: Harness, nonce: str = "n-0S6_WzA2Mj") -> dict[str, Any]:
    """The code flow with a nonce, at the real time (Authlib checks ``exp`` against it)."""
    h.clock.now = datetime.now(UTC)
    return body(exchange(h, get_code(h, nonce=nonce, scope="openid profile email")))


def jwks(h: Harness) -> dict[str, Any]:
    return body(h.client.get("/.well-known/jwks.json"))


def header(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))  # type: ignore[no-any-return]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class AuthlibRelyingParty(OpenIDMixin):
    """Authlib's OpenID client half (``parse_id_token``) over Passport's metadata and JWKS:
    the signature against the JWKS in the advertised algorithms, then ``CodeIDToken``
    (iss, aud, exp, iat, nonce, at_hash — Core §3.1.3.7)."""

    def __init__(self, client_id: str, metadata: dict[str, Any], jwk_set: dict[str, Any]):
        self.client_id = client_id
        self.server_metadata = {**metadata, "jwks": jwk_set}

    def load_server_metadata(self) -> dict[str, Any]:
        return self.server_metadata


def authlib_claims(h: Harness, issued: dict[str, Any], nonce: str) -> dict[str, Any]:
    metadata = body(h.client.get("/.well-known/openid-configuration"))
    rp = AuthlibRelyingParty(ids(h)["client_id"], metadata, jwks(h))
    return dict(rp.parse_id_token(issued, nonce))


# -- oidcc-idtoken-rs256 ------------------------------------------------------------------


def test_a_client_registered_for_rs256_gets_rs256(h: Harness) -> None:
    shown = register_alg(h, "RS256")
    assert shown["IdTokenSignedResponseAlg"] == "RS256"
    issued = sign_in(h, nonce="n-rs")
    keys = {k["kid"]: k for k in jwks(h)["keys"]}
    head = header(issued["id_token"])
    assert head["alg"] == "RS256" and head["typ"] == "JWT"
    assert keys[head["kid"]]["kty"] == "RSA" and keys[head["kid"]]["alg"] == "RS256"
    # joserfc, with the JWKS and RS256 only (what an RP registered for RS256 allows)
    decoded = jwt.decode(issued["id_token"], KeySet.import_key_set(jwks(h)), algorithms=["RS256"])
    assert decoded.claims["aud"] == ids(h)["client_id"] and decoded.claims["iss"] == ORIGIN
    assert decoded.claims["nonce"] == "n-rs"
    # Authlib's client: signature, then iss/aud/exp/nonce/at_hash (SHA-256 for RS256)
    claims = authlib_claims(h, issued, "n-rs")
    assert claims["sub"] == decoded.claims["sub"] and claims["preferred_username"] == "alice"
    # the same client's JWT access token (RFC 9068) is RS256 too, and works
    assert header(issued["access_token"])["alg"] == "RS256"
    jwt.decode(issued["access_token"], KeySet.import_key_set(jwks(h)), algorithms=["RS256"])
    info = h.client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert info.status_code == 200 and body(info)["sub"] == claims["sub"]


def test_other_clients_keep_the_default(h: Harness) -> None:
    """One client's choice is its own: another client (and the default) stays ES256."""
    register_alg(h, "RS256")
    with h.app.services.db.session() as db:
        spa = db.scalars(select(Application).where(Application.name == "Spa")).one()
        assert spa.id_token_signed_response_alg is None
        assert h.app.services.tokens().signing_alg(spa) == "ES256"
    register_alg(h, "")  # back to the server's signing_alg
    assert header(sign_in(h)["id_token"])["alg"] == "ES256"


# -- oidcc-idtoken-signature ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_the_signature_verifies_and_a_tampered_one_does_not(h: Harness, alg: str) -> None:
    if alg != "ES256":
        register_alg(h, alg)
    issued = sign_in(h, nonce="n-sig")
    token = issued["id_token"]
    assert header(token)["alg"] == alg
    key_set = KeySet.import_key_set(jwks(h))
    jws.deserialize_compact(token, key_set, algorithms=[alg])  # the signature alone
    assert authlib_claims(h, issued, "n-sig")["nonce"] == "n-sig"
    head, claims, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[-1] ^= 1
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(f"{head}.{claims}.{b64(bytes(raw))}", key_set, algorithms=[alg])
    altered = json.loads(base64.urlsafe_b64decode(claims + "=="))
    altered["sub"] = "user-999"
    with pytest.raises(BadSignatureError):
        jws.deserialize_compact(
            f"{head}.{b64(json.dumps(altered).encode())}.{signature}", key_set, algorithms=[alg]
        )


def test_the_algorithm_can_be_chosen_from_the_cli_too(h: Harness) -> None:
    """``passport app update --id-token-signed-response-alg`` is the same operation."""
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        result = CliRunner().invoke(
            cli, [*args, "--database-url", h.settings.database_url], env=env
        )
        return result

    assert run("app", "update", "Wiki", "--id-token-signed-response-alg", "RS256").exit_code == 0
    assert header(sign_in(h)["id_token"])["alg"] == "RS256"
    shown = run("app", "show", "Wiki", "--json")
    assert json.loads(shown.output)[0]["IdTokenSignedResponseAlg"] == "RS256"
    refused = run("app", "update", "Wiki", "--id-token-signed-response-alg", "HS256")
    assert refused.exit_code == 1 and "ES256, RS256" in refused.output
    made = run("app", "add", "Notes", "--id-token-signed-response-alg", "RS256", "--json")
    assert made.exit_code == 0 and json.loads(made.output)[0]["IdTokenSignedResponseAlg"] == (
        "RS256"
    )


@pytest.mark.parametrize("alg", ["none", "HS256", "rs256", "PS256", "RS256 "])
def test_only_supported_algorithms_are_accepted(h: Harness, alg: str) -> None:
    client = admin(h)
    for path, params in (
        ("/Applications/update", {"application": "Wiki"}),
        ("/Applications/create", {"name": "Notes"}),
    ):
        answer = client.post(path, data={**params, "idTokenSignedResponseAlg": alg})
        assert answer.status_code == 400, (path, alg)
        assert body(answer)["ClientExceptions"][0]["Source"] == "idTokenSignedResponseAlg"
    with h.app.services.db.session() as db:
        wiki = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        assert wiki.id_token_signed_response_alg is None


def test_logout_tokens_are_signed_with_the_client_s_algorithm(h: Harness) -> None:
    """Back-Channel Logout 1.0 §2.6: the RP validates a logout token as an ID token, its
    ``alg`` the one it registered."""
    register_alg(h, "RS256")
    sign_in(h)  # Wiki holds alice's tokens
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        wiki.backchannel_logout_uri = "https://wiki.example.com/backchannel"
        alice = directory.get_user(db, "alice")
        assert enqueue(db, h.app.services.tokens(), alice, h.clock()) == 1
    with h.app.services.db.session() as db:
        token = db.scalars(select(LogoutNotification.logout_token)).one()
    assert header(token)["alg"] == "RS256" and header(token)["typ"] == "logout+jwt"
    jwt.decode(token, KeySet.import_key_set(jwks(h)), algorithms=["RS256"])


# -- what Passport verifies: both algorithms, no confusion ------------------------------------


def _logout_accepts(h: Harness, hint: str) -> bool:
    page = h.client.get("/logout?" + urlencode({"id_token_hint": hint}))
    return bool(page.status_code == 200)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_id_token_hint_of_either_algorithm_is_accepted(h: Harness, alg: str) -> None:
    if alg != "ES256":
        register_alg(h, alg)
    hint = sign_in(h)["id_token"]
    assert header(hint)["alg"] == alg
    assert h.app.services.tokens().id_token_hint_claims(hint) is not None
    assert _logout_accepts(h, hint)


def _forgeries(h: Harness, genuine: str) -> list[str]:
    """Tokens whose signature is right for one of Passport's keys, or that try to make a
    public key a MAC key, but whose header names another key or algorithm."""
    ring = h.app.services.keys
    ec = ring.signing_key(h.clock(), "ES256")
    rsa = ring.signing_key(h.clock(), "RS256")
    claims = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "=="))
    forged = [
        # signed by the RSA key, but the header names the EC key (an RS256 header with an
        # EC key's kid), and the other way round
        jwt.encode({"alg": "RS256", "kid": ec.kid, "typ": "JWT"}, claims, rsa.private),
        jwt.encode({"alg": "ES256", "kid": rsa.kid, "typ": "JWT"}, claims, ec.private),
    ]
    payload = b64(json.dumps(claims).encode())
    for key in (ec, rsa):  # HS256 keyed with the published key (RFC 8725 §2.1)
        mac_header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
        for secret in (json.dumps(key.public).encode(), key.private.as_pem(private=False)):
            signing_input = f"{mac_header}.{payload}"
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            forged.append(f"{signing_input}.{b64(mac)}")
    none = b64(json.dumps({"alg": "none", "kid": rsa.kid, "typ": "JWT"}).encode())
    forged.append(f"{none}.{genuine.split('.')[1]}.")
    return forged


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_algorithm_confusion_is_refused(h: Harness, alg: str) -> None:
    if alg != "ES256":
        register_alg(h, alg)
    genuine = sign_in(h)["id_token"]
    tokens = h.app.services.tokens()
    assert tokens.id_token_hint_claims(genuine) is not None
    for forged in _forgeries(h, genuine):
        assert tokens.id_token_hint_claims(forged) is None, header(forged)
        assert not _logout_accepts(h, forged), header(forged)
