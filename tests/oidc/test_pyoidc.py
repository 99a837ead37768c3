"""pyoidc (PyPI ``oic``, the library the OpenID Foundation's former Python test suite was
built on) as a real relying party against a live Passport: discovery, a statically
registered client, the code flow with ``state`` and ``nonce``, the token request with
``client_secret_basic`` and with ``client_secret_post``, the ID token verified by pyoidc
itself (signature against the JWKS it fetched, ``iss``, ``aud``, ``exp``, ``nonce``), the
UserInfo request, and a refresh.  The browser's part is played by
:func:`oidc_support.follow_to_client`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from jwkest import BadSignature
from oic import rndstr
from oic.exception import ParameterError
from oic.oic import Client
from oic.oic.message import AccessTokenResponse
from oic.oic.message import AuthorizationResponse
from oic.oic.message import OpenIDSchema
from oic.oic.message import RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import follow_to_client
from passport.services.applications import find_by_name
from passport.storage.db import Database

from conftest import make_settings

pytestmark = pytest.mark.live


def relying_party(p: Provider) -> Client:
    """Discovery (``provider_config``: pyoidc checks that the document's ``issuer`` is the
    one asked for, OpenID Connect Discovery 1.0 §4.3, and loads the JWKS into its key jar)
    and the static registration of the Wiki client."""
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    info = client.provider_config(p.url)
    assert info["issuer"] == p.url
    assert client.authorization_endpoint == p.url + "/oauth2/authorize"
    assert "code" in info["response_types_supported"]
    client.store_registration_info(
        RegistrationResponse(
            client_id=p.client_id,
            client_secret=p.client_secret,
            redirect_uris=[p.redirect_uri],
        )
    )
    client.redirect_uris = [p.redirect_uri]
    return client


def sign_in(p: Provider, client: Client, scope: str = "openid profile email") -> tuple[str, Any]:
    """The authorization request with ``state`` and ``nonce``; the browser signs in and
    allows; pyoidc parses the callback and checks its ``state``.  Returns the state and
    the authorization request."""
    state, nonce = rndstr(), rndstr()
    request = client.construct_AuthorizationRequest(
        request_args={
            "client_id": client.client_id,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": p.redirect_uri,
            "state": state,
            "nonce": nonce,
        }
    )
    client.state2nonce[state] = nonce
    url = request.request(client.authorization_endpoint)
    final = follow_to_client(
        requests.Session(), url, p.url, p.redirect_uri, username="alice", password=PASSWORD
    )
    answer = client.parse_response(
        AuthorizationResponse, info=urlsplit(final).query, sformat="urlencoded"
    )
    assert isinstance(answer, AuthorizationResponse)
    assert answer["state"] == state and answer["code"]
    assert answer["iss"] == p.url  # RFC 9207
    return state, request


def tokens(client: Client, state: str, auth: str) -> AccessTokenResponse:
    """``do_access_token_request``: pyoidc sends the code of ``state`` and verifies the ID
    token of the answer (``AccessTokenResponse.verify``: signature with a key of the JWKS,
    ``iss`` the provider's, ``aud`` this client, ``exp`` not passed) and its ``nonce``
    against the one it sent (``state2nonce``)."""
    answer = client.do_access_token_request(
        state=state,
        request_args={"code": client.grant[state].code},
        authn_method=auth,
    )
    assert isinstance(answer, AccessTokenResponse), answer
    return answer


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_pyoidc_code_flow(provider: Provider, auth: str) -> None:
    client = relying_party(provider)
    state, request = sign_in(provider, client)
    answer = tokens(client, state, auth)
    id_token: Any = answer["id_token"]
    assert id_token["iss"] == provider.url and id_token["aud"] == [provider.client_id]
    assert id_token["nonce"] == request["nonce"]
    assert id_token.jws_header["alg"] in ("ES256", "RS256")
    # pyoidc's own check of the ID token against the request (nonce, iss, aud, exp).
    client.verify_id_token(id_token, request)
    info = client.do_user_info_request(state=state)
    assert isinstance(info, OpenIDSchema)
    assert info["sub"] == id_token["sub"]
    assert info["email"] == "alice@example.com" and info["preferred_username"] == "alice"
    posted = client.do_user_info_request(state=state, method="POST")
    assert posted["sub"] == id_token["sub"]


def test_pyoidc_refresh(provider: Provider) -> None:
    """``do_access_token_refresh``: a new access token; the ID token of the refresh answer,
    if any, verified by pyoidc as the first was, for the same ``sub``."""
    client = relying_party(provider)
    state, _ = sign_in(provider, client, scope="openid email")
    first = tokens(client, state, "client_secret_basic")
    assert first["refresh_token"]
    second = client.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert isinstance(second, AccessTokenResponse), second
    assert second["access_token"] != first["access_token"]
    if "id_token" in second:
        assert second["id_token"]["sub"] == first["id_token"]["sub"]
    info = client.do_user_info_request(state=state)
    assert info["sub"] == first["id_token"]["sub"]


def raw_token_response(p: Provider, client: Client, state: str) -> dict[str, Any]:
    """The token endpoint's JSON for the code of ``state``, fetched without pyoidc."""
    answer = requests.post(
        client.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": client.grant[state].code,
            "redirect_uri": p.redirect_uri,
        },
        auth=(p.client_id, p.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def flipped(jws: str) -> str:
    header, payload, signature = jws.split(".")
    return f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


def test_pyoidc_verifies_what_it_accepts(provider: Provider) -> None:
    """pyoidc's checks are real ones: the genuine answer parses; with the ID token's
    signature changed, or for another ``nonce``, it is refused."""
    client = relying_party(provider)
    state, _ = sign_in(provider, client)
    genuine = raw_token_response(provider, client, state)
    parsed = client.parse_response(
        AccessTokenResponse, info=json.dumps(genuine), sformat="json", state=state
    )
    assert parsed["id_token"]["aud"] == [provider.client_id]
    tampered = genuine | {"id_token": flipped(genuine["id_token"])}
    with pytest.raises(BadSignature):
        client.parse_response(
            AccessTokenResponse, info=json.dumps(tampered), sformat="json", state=state
        )
    again, _ = sign_in(provider, client)
    client.state2nonce[again] = "another-nonce"
    with pytest.raises(ParameterError):
        tokens(client, again, "client_secret_basic")


def test_pyoidc_authorization_request_by_post(provider: Provider) -> None:
    """``oidcc-ensure-post-request-succeeds`` against the live server: pyoidc's request
    form-serialized in a POST body from the client's page (OIDC Core §3.1.2.1, §13.2)."""
    client = relying_party(provider)
    state, nonce = rndstr(), rndstr()
    request = client.construct_AuthorizationRequest(
        request_args={
            "client_id": client.client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": provider.redirect_uri,
            "state": state,
            "nonce": nonce,
        }
    )
    client.state2nonce[state] = nonce
    browser = requests.Session()
    posted = browser.post(
        client.authorization_endpoint,
        data=request.to_dict(),
        headers={"Origin": "http://127.0.0.1:9"},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code == 302, posted.text[:300]
    final = follow_to_client(
        browser,
        provider.url + posted.headers["Location"],
        provider.url,
        provider.redirect_uri,
        username="alice",
        password=PASSWORD,
    )
    answer = client.parse_response(
        AuthorizationResponse, info=urlsplit(final).query, sformat="urlencoded"
    )
    assert answer["state"] == state
    assert tokens(client, state, "client_secret_basic")["id_token"]["nonce"] == nonce


def test_pyoidc_with_a_client_registered_for_rs256(
    provider: Provider, backends: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    """pyoidc (pyjwkest) verifies both of Passport's algorithms: ES256, the server's
    default, above, and RS256 for a client registered for it (OIDC Registration §2
    ``id_token_signed_response_alg``)."""
    database = Database(make_settings(backends[request.node.callspec.params["provider"]].url))
    try:
        with database.session(write=True) as db, db.begin():
            wiki = find_by_name(db, "Wiki")
            assert wiki is not None
            wiki.id_token_signed_response_alg = "RS256"
    finally:
        database.dispose()
    client = relying_party(provider)
    state, request_ = sign_in(provider, client)
    id_token: Any = tokens(client, state, "client_secret_basic")["id_token"]
    assert id_token.jws_header["alg"] == "RS256"
    client.verify_id_token(id_token, request_)
