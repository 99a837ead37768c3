"""The OpenID Foundation's Basic OP plan (``oidcc-basic-certification-test-plan``), each
module a test named after it, and the Form Post OP plan — the same modules with
``response_mode=form_post`` (``AbstractFormPostTestPlan.changeResponseTypeToFormPost``):
every flow here runs in both modes (``mode``), on SQLite and on PostgreSQL with Redis
sessions (``h``), with the fake clock where a module waits.

Each test plays the suite's relying party as ``AbstractOIDCCServerTest`` does: a static
confidential client (Wiki, ``client_secret_basic`` unless the module says otherwise),
``response_type=code``, a random ``state`` and ``nonce``; the callback is checked
(``CheckMatchingCallbackParameters``, ``ValidateIssIfPresentInAuthorizationResponse``,
``CheckStateInAuthorizationResponse``), the code redeemed, the ID token validated
(``PerformStandardIdTokenChecks``: signature by a key of the JWKS, ``iss``, ``aud``,
``exp``/``iat``, ``nonce``, ``sub``) and the UserInfo endpoint called.  What a module
fails on is asserted; what it only warns about is said in the test's docstring.

``tests/oidc/CONFORMANCE.md`` maps every module of the Basic, Config, Form Post,
RP-Initiated Logout and Back-Channel Logout OP plans to its test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import form_of
from oidc_support import hidden_fields
from oidc_support import ids
from oidc_support import pkce
from passport.services import directory
from passport.services.applications import find_by_name

from support import ORIGIN
from support import Harness

# RFC 6749 §4.1.2.1, §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
ERROR_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
# OIDC Core §3.1.2.6: the errors that say "the user must be shown something".
NEEDS_A_USER_INTERFACE = {
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
}

# EnsureIdTokenDoesNotContainNonRequestedClaims: the claims an ID token may carry unasked.
ID_TOKEN_CLAIMS = {
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "nbf",
    "jti",
    "sid",
}


@pytest.fixture(params=["query", "form_post"])
def mode(request: pytest.FixtureRequest) -> str:
    """The Basic OP plan (``query``, the code flow's default) and the Form Post OP plan."""
    return str(request.param)


# -- the relying party ---------------------------------------------------------------------


@dataclass
class Authorization:
    """What came back to the redirect URI, and which hosted pages the browser saw."""

    params: dict[str, str]
    pages: list[str] = field(default_factory=list)
    sent: dict[str, str] = field(default_factory=dict)


def new_request(h: Harness, mode: str, **extra: str) -> dict[str, str]:
    """``CreateAuthorizationRequestSteps``: client, redirect URI, ``scope=openid``, a random
    ``state`` and ``nonce``, ``response_type=code``; ``response_mode=form_post`` in the Form
    Post plan.  ``extra`` adds or (with an empty value) removes parameters."""
    params = {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "response_type": "code",
    }
    if mode == "form_post":
        params["response_mode"] = "form_post"
    params |= extra
    return {name: value for name, value in params.items() if value != ""}


def callback(answer: Any, mode: str, redirect_uri: str = REDIRECT) -> dict[str, str]:
    """The authorization response as the client receives it: the redirect's query, or the
    form a ``form_post`` page posts (``CheckCallbackHttpMethodIsPost``,
    ``RejectAuthCodeInUrlQuery``: nothing in the URL)."""
    if mode == "form_post":
        assert answer.status_code == 200 and "Location" not in answer.headers
        html = answer.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]*)">', html)
        assert action is not None and action.group(1).replace("&amp;", "&") == redirect_uri
        return hidden_fields(html)
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:300]
    location = answer.headers["Location"]
    assert location.startswith(redirect_uri), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def browse(
    h: Harness, answer: Any, mode: str, redirect_uri: str = REDIRECT, login: str = "alice"
) -> Authorization:
    """The user's part: sign in and allow when a hosted page asks, until Passport answers
    the client."""
    pages: list[str] = []
    for _ in range(4):
        location = answer.headers.get("Location", "") if answer.status_code == 302 else ""
        if location.startswith("/login?"):
            page = h.client.get(location)
            assert page.status_code == 200, page.get_data(as_text=True)[:300]
            pages.append("login")
            form = form_of(page) | {"username": login, "password": PASSWORD}
            answer = h.client.post("/login", data=form)
        elif location.startswith("/consent?"):
            page = h.client.get(location)
            assert page.status_code == 200, page.get_data(as_text=True)[:300]
            pages.append("consent")
            answer = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
        else:
            break
    return Authorization(callback(answer, mode, redirect_uri), pages)


def authorize(h: Harness, mode: str, params: dict[str, str], method: str = "GET") -> Authorization:
    """``BuildPlainRedirectToAuthorizationEndpoint`` and the browser's way back."""
    if method == "POST":
        # OIDC Core §3.1.2.1: the parameters form-serialized in the body (§13.2); the
        # suite's browser posts from the relying party's page.
        answer = h.client.post(
            "/oauth2/authorize", data=params, headers={"Origin": "http://127.0.0.1:9"}
        )
    else:
        answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = browse(h, answer, mode, params.get("redirect_uri", REDIRECT))
    result.sent = params
    return result


def check_success(result: Authorization) -> str:
    """``onAuthorizationCallbackResponse`` for a success: the same ``state``, ``iss`` the
    issuer (RFC 9207), no error, a code of at least 128 bits
    (``EnsureMinimumAuthorizationCodeLength``, ``…Entropy``: RFC 6749 §10.10)."""
    got = result.params
    assert "error" not in got, got
    assert got["state"] == result.sent["state"]
    assert got["iss"] == ORIGIN
    code = got["code"]
    assert len(code.encode()) * 8 >= 128
    assert entropy_bits(code) >= 96
    return code


def check_error(result: Authorization) -> str:
    """``performGenericAuthorizationEndpointErrorResponseValidation``: ``state`` and ``iss``
    back, an error and no code, nothing unexpected, a well-formed ``error_description``."""
    got = result.params
    assert got.get("state") == result.sent.get("state")
    assert got["iss"] == ORIGIN
    assert "code" not in got
    assert set(got) <= {"error", "error_description", "error_uri", "state", "iss"}, got
    assert ERROR_DESCRIPTION.fullmatch(got.get("error_description", ""))
    return got["error"]


def entropy_bits(value: str) -> float:
    """The suite's estimate (``AbstractEnsureMinimumEntropy``): Shannon entropy per
    character times the length."""
    counts = Counter(value)
    per_char = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return per_char * len(value)


def basic(h: Harness) -> dict[str, str]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def token_request(
    h: Harness, data: dict[str, str], auth: str = "client_secret_basic", client: str = "Wiki"
) -> Any:
    """The token endpoint, the client authenticated by ``client_secret_basic`` (the Basic
    plan's) or ``client_secret_post`` (``oidcc-server-client-secret-post``)."""
    client_id, secret = credentials(h, client)
    if auth == "client_secret_post":
        return h.client.post(
            "/oauth2/token", data={**data, "client_id": client_id, "client_secret": secret}
        )
    raw = f"{client_id}:{secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return h.client.post("/oauth2/token", data=data, headers=headers)


def credentials(h: Harness, client: str) -> tuple[str, str]:
    if client == "Wiki":
        return ids(h)["client_id"], ids(h)["client_secret"]
    return h.other  # type: ignore[attr-defined,no-any-return]


def redeem(
    h: Harness, code: str, auth: str = "client_secret_basic", **extra: str
) -> dict[str, Any]:
    """``requestAuthorizationCode``: 200, an access token, ``token_type`` Bearer,
    ``expires_in`` (RFC 6749 §5.1), an ID token (OIDC Core §3.1.3.3), never cached."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    answer = token_request(h, data, auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    assert "no-store" in answer.headers["Cache-Control"]
    issued = body(answer)
    assert issued["token_type"].lower() == "bearer" and issued["access_token"]
    assert isinstance(issued["expires_in"], int) and issued["expires_in"] > 0
    assert issued["id_token"]
    return issued


def id_token(
    h: Harness, token: str, nonce: str | None, client_id: str | None = None
) -> dict[str, Any]:
    """``PerformStandardIdTokenChecks`` (OIDC Core §3.1.3.7): signed by a key of the JWKS
    with the algorithm that key names, ``iss`` the issuer, ``aud`` the client (``azp`` too
    if several), ``iat``, ``exp``, ``auth_time`` and ``nbf`` right within five minutes
    (``ValidateIdToken``), the ``nonce`` asked for (none if none was), a ``sub``."""
    client_id = client_id or ids(h)["client_id"]
    keys = body(h.client.get("/.well-known/jwks.json"))
    decoded = jwt.decode(token, KeySet.import_key_set(keys))
    header, claims = decoded.header, decoded.claims
    key = next(k for k in keys["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == key["alg"] != "none"
    assert claims["iss"] == ORIGIN
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert client_id in audience
    if len(audience) > 1:
        assert claims["azp"] == client_id
    # ValidateIdToken's clock checks, with its five minutes of skew.
    now, skew = h.clock.now.timestamp(), 300
    assert now - skew <= claims["iat"] <= now + skew
    assert now - skew < claims["exp"] < now + 50 * 365 * 86400
    if "auth_time" in claims:
        assert now - 365 * 86400 <= claims["auth_time"] <= now + skew
    assert claims.get("nbf", now) <= now + skew
    assert claims.get("acr") != ""
    assert claims.get("nonce") == nonce
    assert isinstance(claims["sub"], str) and 0 < len(claims["sub"]) <= 255
    return claims


def userinfo(h: Harness, access_token: str, how: str = "get") -> Any:
    """``CallUserInfoEndpoint`` (OIDC Core §5.3.1): GET or POST with the Bearer header
    (RFC 6750 §2.1), or the token in a POST body (§2.2)."""
    client = h.new_client()
    if how == "post-body":
        return client.post("/oauth2/userinfo", data={"access_token": access_token})
    headers = {"Authorization": f"Bearer {access_token}"}
    if how == "post-header":
        return client.post("/oauth2/userinfo", headers=headers)
    return client.get("/oauth2/userinfo", headers=headers)


def claims_of(h: Harness, answer: Any, sub: str) -> dict[str, Any]:
    """``extractUserInfoResponse`` and ``validateExtractedUserInfoResponse``: 200 JSON
    (OIDC Core §5.3.2), the same ``sub`` as the ID token, standard claims of their types
    (§5.1)."""
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    claims = body(answer)
    assert claims["sub"] == sub
    for name in ("name", "preferred_username", "email", "given_name", "family_name"):
        assert isinstance(claims.get(name, ""), str)
    assert isinstance(claims.get("email_verified", False), bool)
    assert isinstance(claims.get("updated_at", 0), int)
    return claims


@dataclass
class Flow:
    authorization: Authorization
    issued: dict[str, Any]
    claims: dict[str, Any]


def flow(
    h: Harness, mode: str, *, auth: str = "client_secret_basic", method: str = "GET", **extra: str
) -> Flow:
    """The whole of ``AbstractOIDCCServerTest``: authorize, check the callback, redeem,
    validate the ID token, and call the UserInfo endpoint (``requestProtectedResource``)."""
    params = new_request(h, mode, **extra)
    result = authorize(h, mode, params, method)
    issued = redeem(h, check_success(result), auth)
    claims = id_token(h, issued["id_token"], params.get("nonce"))
    assert userinfo(h, issued["access_token"]).status_code == 200
    return Flow(result, issued, claims)


def metadata(h: Harness) -> dict[str, Any]:
    return body(h.client.get("/.well-known/openid-configuration"))


# -- oidcc-server, oidcc-server-client-secret-post, oidcc-response-type-missing --------------


def test_oidcc_server(h: Harness, mode: str) -> None:
    """The happy flow.  The ID token of the token endpoint needs no ``at_hash``; when it
    has one it must be right (OIDC Core §3.1.3.6, ``ValidateAtHash``).  Warnings only, and
    Passport gives no cause for them: ``name`` or claims not asked for in the ID token of
    ``scope=openid``."""
    done = flow(h, mode)
    assert done.authorization.pages == ["login", "consent"]
    if "at_hash" in done.claims:
        digest = hashlib.sha256(done.issued["access_token"].encode()).digest()
        expected = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        assert done.claims["at_hash"] == expected
    assert "name" not in done.claims
    # EnsureIdTokenDoesNotContainNonRequestedClaims (a warning): nothing beyond these.
    assert set(done.claims) <= ID_TOKEN_CLAIMS, set(done.claims) - ID_TOKEN_CLAIMS


def test_oidcc_server_client_secret_post(h: Harness, mode: str) -> None:
    """The happy flow with ``client_secret_post`` (RFC 6749 §2.3.1), which the metadata
    must list (``EnsureServerConfigurationSupportsClientSecretPost``)."""
    assert "client_secret_post" in metadata(h)["token_endpoint_auth_methods_supported"]
    flow(h, mode, auth="client_secret_post")


def test_oidcc_response_type_missing(h: Harness, mode: str) -> None:
    """No ``response_type``: ``invalid_request`` or ``unsupported_response_type`` back to
    the client (RFC 6749 §3.1.1, §4.1.2.1), or an error page.  The Form Post variant sends
    ``response_mode=form_post``, so the answer is posted."""
    params = new_request(h, mode, response_type="")
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = Authorization(callback(answer, mode), sent=params)
    assert check_error(result) in ("invalid_request", "unsupported_response_type")


# -- oidcc-idtoken-unsigned ------------------------------------------------------------------


def test_oidcc_idtoken_unsigned(h: Harness, mode: str) -> None:
    """The module registers a client for ``id_token_signed_response_alg=none`` (dynamic
    registration only) and is skipped when the metadata does not list ``none``
    (``OIDCCCheckIdTokenSigningAlgValuesSupportedAlgNone``): Passport lists only signing
    algorithms and never issues an unsigned ID token (OIDC Core §2: "MUST be signed";
    registering ``none`` is refused: ``test_only_supported_algorithms_are_accepted``)."""
    assert "none" not in metadata(h)["id_token_signing_alg_values_supported"]
    done = flow(h, mode)
    header = json.loads(base64.urlsafe_b64decode(done.issued["id_token"].split(".")[0] + "=="))
    assert header["alg"] in ("RS256", "ES256")


# -- UserInfo --------------------------------------------------------------------------------


def userinfo_module(h: Harness, mode: str, how: str) -> None:
    """``AbstractOIDCCUserInfoTest``: after the flow, the UserInfo request ``how``, 200 JSON
    with the ID token's ``sub`` and well-typed standard claims."""
    done = flow(h, mode)
    claims_of(h, userinfo(h, done.issued["access_token"], how), done.claims["sub"])


def test_oidcc_userinfo_get(h: Harness, mode: str) -> None:
    """OIDC Core §5.3.1: "MUST support the use of the HTTP GET and HTTP POST methods"."""
    userinfo_module(h, mode, "get")


def test_oidcc_userinfo_post_header(h: Harness, mode: str) -> None:
    """POST with the token in the ``Authorization`` header (RFC 6750 §2.1)."""
    userinfo_module(h, mode, "post-header")


def test_oidcc_userinfo_post_body(h: Harness, mode: str) -> None:
    """POST with the token in the form body (RFC 6750 §2.2): optional to the suite (a
    warning if refused), supported here."""
    userinfo_module(h, mode, "post-body")


# -- nonce -----------------------------------------------------------------------------------


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(h: Harness, mode: str) -> None:
    """No ``nonce``: the code flow still succeeds (OIDC Core §3.1.2.1: OPTIONAL for the code
    flow); the module stops at the callback.  The ID token then carries no ``nonce``."""
    params = new_request(h, mode, nonce="")
    code = check_success(authorize(h, mode, params))
    assert "nonce" not in id_token(h, redeem(h, code)["id_token"], None)


# -- scopes (oidcc-scope-profile and -phone: test_oidcc_authorization_request.py) ---------------


def test_oidcc_scope_email(h: Harness, mode: str) -> None:
    """``openid email``: the UserInfo answer has the email.  Warnings only, and both are
    what Passport does: ``email`` also in the ID token (OIDC Core §5.4 would keep it to
    UserInfo when an access token is issued), no ``name`` in UserInfo."""
    done = flow(h, mode, scope="openid email")
    claims = claims_of(h, userinfo(h, done.issued["access_token"]), done.claims["sub"])
    assert claims["email"] == "alice@example.com"
    assert "name" not in claims


def scope_not_in_scopes_supported(h: Harness, mode: str, scope: str) -> None:
    """``AbstractOIDCCReturnedClaimsServerTest.skipTestIfScopesNotSupported``: the module is
    skipped when ``scopes_supported`` lacks a scope it asks for
    (``OIDCCCheckScopesSupportedContainScopeTest``) — Passport has no ``address`` or
    ``phone`` claims and says so.  Asked anyway, the unknown scopes are ignored (OIDC Core
    §3.1.2.1) and the flow succeeds, without those claims."""
    supported = set(metadata(h)["scopes_supported"])
    assert not set(scope.split()) <= supported
    assert {"address", "phone"}.isdisjoint(supported)
    done = flow(h, mode, scope=scope)
    claims = claims_of(h, userinfo(h, done.issued["access_token"]), done.claims["sub"])
    assert "address" not in claims and "phone_number" not in claims


def test_oidcc_scope_address(h: Harness, mode: str) -> None:
    """``openid address``: skipped by the suite, ignored by Passport."""
    scope_not_in_scopes_supported(h, mode, "openid address")


def test_oidcc_scope_all(h: Harness, mode: str) -> None:
    """``openid email phone address profile``: skipped by the suite (``phone``, ``address``
    unsupported); Passport grants ``openid profile email``
    (``test_oidcc_scope_phone_unknown_scope_ignored`` checks the grant)."""
    scope_not_in_scopes_supported(h, mode, "openid email phone address profile")


def test_oidcc_alternate_happy_flow(h: Harness, mode: str) -> None:
    """``scope`` in reverse order and the parameters in another order (RFC 6749 §3.3:
    "their order does not matter"); the checks of ``oidcc-scope-email``."""
    params = new_request(h, mode, scope="email openid")
    reordered = dict(reversed(list(params.items())))
    result = authorize(h, mode, reordered)
    issued = redeem(h, check_success(result))
    assert set(issued["scope"].split()) == {"openid", "email"}
    claims = id_token(h, issued["id_token"], params["nonce"])
    assert claims_of(h, userinfo(h, issued["access_token"]), claims["sub"])["email"]


# -- display, locales, hints, acr_values -----------------------------------------------------


def accepted_without_effect(h: Harness, mode: str, **extra: str) -> None:
    """OIDC Core §15.1: the OP must support ``display``, ``ui_locales``, ``claims_locales``
    and ``acr_values`` — "simply to have its use not result in an error": a fresh sign-in
    page, then the code.  Passport shows one page layout in one language and has one
    authentication class (docs/oauth-design.md), so the parameter changes nothing."""
    done = flow(h, mode, **extra)
    assert done.authorization.pages == ["login", "consent"]


def test_oidcc_display_page(h: Harness, mode: str) -> None:
    accepted_without_effect(h, mode, display="page")


def test_oidcc_display_popup(h: Harness, mode: str) -> None:
    accepted_without_effect(h, mode, display="popup")


def test_oidcc_ui_locales(h: Harness, mode: str) -> None:
    """``ui_locales=se`` (the suite's default): no error, the page in Passport's language."""
    accepted_without_effect(h, mode, ui_locales="se")


def test_oidcc_claims_locales(h: Harness, mode: str) -> None:
    accepted_without_effect(h, mode, claims_locales="se")


def test_oidcc_ensure_request_with_acr_values_succeeds(h: Harness, mode: str) -> None:
    """``acr_values=1 2`` (values Passport does not publish in ``acr_values_supported``):
    the flow succeeds as if none were asked (OIDC Core §15.1); the ``acr`` claim says
    the class actually reached, a password (the suite only warns that it is not one of
    those requested)."""
    assert "1" not in metadata(h)["acr_values_supported"]
    params = new_request(h, mode, acr_values="1 2")
    result = authorize(h, mode, params)
    assert result.pages == ["login", "consent"]
    issued = redeem(h, check_success(result))
    claims = id_token(h, issued["id_token"], params["nonce"])
    assert claims["acr"] == "urn:passport:acr:password"
    assert claims["amr"] == ["pwd"]


def test_oidcc_login_hint(h: Harness, mode: str) -> None:
    """``login_hint`` (OIDC Core §3.1.2.1) must not cause an error; Passport fills the
    sign-in form's username with it (escaped, at most 254 characters, a suggestion the
    user may change)."""
    hint = 'buffy@localhost"><script>'
    params = new_request(h, mode, login_hint=hint)
    asked = h.client.get("/oauth2/authorize?" + urlencode(params))
    page = h.client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'value="buffy@localhost&#34;&gt;&lt;script&gt;"' in page
    assert "<script>" not in page.split("<main>")[-1].split("</main>")[0]
    result = browse(h, asked, mode)
    result.sent = params
    issued = redeem(h, check_success(result))
    id_token(h, issued["id_token"], params["nonce"])


# -- prompt, max_age, id_token_hint ----------------------------------------------------------


def test_oidcc_prompt_login(h: Harness, mode: str) -> None:
    """Twice; the second time ``prompt=login`` (OIDC Core §3.1.2.1): the sign-in page again
    although signed in, and the second ``auth_time`` later than the first
    (``CheckSecondIdTokenAuthTimeIsLaterIfPresent``)."""
    first = flow(h, mode)
    h.clock.advance(seconds=1)  # WaitForOneSecond
    second = flow(h, mode, prompt="login")
    assert second.authorization.pages == ["login"]
    assert second.claims["auth_time"] > first.claims["auth_time"]


def test_oidcc_prompt_none_not_logged_in(h: Harness, mode: str) -> None:
    """``prompt=none`` without a session: an error that needs a user interface, back at
    the client with the 128-character ``state`` intact (OIDC Core §3.1.2.6)."""
    params = new_request(h, mode, prompt="none", state=secrets.token_urlsafe(96)[:128])
    assert len(params["state"]) == 128
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = Authorization(callback(answer, mode), sent=params)
    assert check_error(result) in NEEDS_A_USER_INTERFACE
    assert result.params["error"] == "login_required"


def test_oidcc_prompt_none_logged_in(h: Harness, mode: str) -> None:
    """Twice; the second time ``prompt=none``: no page at all, the same ``sub`` and the
    same ``auth_time`` (``AbstractOIDCCSameAuthTwiceServerTest``)."""
    first = flow(h, mode)
    h.clock.advance(seconds=5)
    second = flow(h, mode, prompt="none")
    assert second.authorization.pages == []
    assert second.claims["sub"] == first.claims["sub"]
    assert second.claims["auth_time"] == first.claims["auth_time"]


def test_oidcc_max_age_1(h: Harness, mode: str) -> None:
    """Twice; the second time two seconds later with ``max_age=1``: the user signs in
    again, and the second ID token has an ``auth_time`` (OIDC Core §3.1.2.1, §2: REQUIRED
    with ``max_age``) later than the first and recent."""
    first = flow(h, mode)
    h.clock.advance(seconds=2)  # WaitFor2Seconds
    second = flow(h, mode, max_age="1")
    assert second.authorization.pages == ["login"]
    assert second.claims["auth_time"] > first.claims["auth_time"]
    assert second.claims["auth_time"] >= h.clock.now.timestamp() - 300


def test_oidcc_max_age_10000(h: Harness, mode: str) -> None:
    """``max_age=15000`` then ``max_age=10000``: no second sign-in, ``auth_time`` in both
    (``CheckIdTokenAuthTimeClaimPresentDueToMaxAge``) and the same, the same ``sub``."""
    first = flow(h, mode, max_age="15000")
    h.clock.advance(seconds=30)
    second = flow(h, mode, max_age="10000")
    assert second.authorization.pages == []
    assert "auth_time" in first.claims and "auth_time" in second.claims
    assert second.claims["auth_time"] == first.claims["auth_time"]
    assert second.claims["sub"] == first.claims["sub"]


def test_oidcc_id_token_hint(h: Harness, mode: str) -> None:
    """Twice; the second time ``prompt=none`` with the first ID token as ``id_token_hint``
    (OIDC Core §3.1.2.1-2): an answer at once, the same ``sub`` and ``auth_time``."""
    first = flow(h, mode)
    h.clock.advance(seconds=5)
    second = flow(h, mode, prompt="none", id_token_hint=first.issued["id_token"])
    assert second.authorization.pages == []
    assert second.claims["sub"] == first.claims["sub"]
    assert second.claims["auth_time"] == first.claims["auth_time"]


def test_id_token_hint_of_someone_else_is_login_required(h: Harness, mode: str) -> None:
    """Not a module: the hint names alice, bob is signed in in this browser.  OIDC Core
    §3.1.2.1: the OP "SHOULD return an error, such as login_required" — with
    ``prompt=none`` that error, without it the sign-in page."""
    hint = flow(h, mode).issued["id_token"]
    h.client = h.new_client()
    assert h.register("bob").status_code == 200
    assert h.login("bob").status_code == 200
    params = new_request(h, mode, prompt="none", id_token_hint=hint)
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = Authorization(callback(answer, mode), sent=params)
    assert check_error(result) == "login_required"
    params = new_request(h, mode, id_token_hint=hint)
    asked = h.client.get("/oauth2/authorize?" + urlencode(params))
    assert asked.headers["Location"].startswith("/login?")


def test_id_token_hint_holds_for_whoever_signs_in_on_the_way(h: Harness, mode: str) -> None:
    """Not a module: no one signed in, the hint names alice; bob signs in on the sign-in
    page.  The hint is kept with the pending authorization (on the server), so the client
    gets ``login_required`` (OIDC Core §3.1.2.1), not bob's code; alice signing in gets hers."""
    first = flow(h, mode)
    hint = first.issued["id_token"]
    h.client = h.new_client()
    assert h.register("bob", password=PASSWORD).status_code == 200
    h.client = h.new_client()  # a fresh browser: no one signed in
    params = new_request(h, mode, id_token_hint=hint)
    result = browse(h, h.client.get("/oauth2/authorize?" + urlencode(params)), mode, login="bob")
    result.sent = params
    assert result.pages == ["login"]
    assert check_error(result) == "login_required"
    h.client = h.new_client()
    params = new_request(h, mode, id_token_hint=hint)
    result = browse(h, h.client.get("/oauth2/authorize?" + urlencode(params)), mode)
    result.sent = params
    assert result.pages == ["login"]
    check_success(result)


@pytest.mark.parametrize(
    "hint",
    [
        "x.y.z",
        "not a jwt",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTEifQ.",
        "..",
        "\u00fc.\u00fc.\u00fc",
        "e30.e30.",
        "W10.W10.W10",
        "x" * 5000 + ".a.b",
        "access_token",
    ],
    ids=[
        "garbage",
        "not-a-jws",
        "alg-none",
        "dots",
        "unicode",
        "empty-json",
        "arrays",
        "huge",
        "an-access-token",
    ],
)
def test_id_token_hint_not_issued_by_passport_is_invalid_request(
    h: Harness, mode: str, hint: str
) -> None:
    """Not a module: a hint Passport did not sign names no one — ``invalid_request`` at the
    client's redirect URI, never a code for whoever is signed in.  A JWT access token is
    signed by Passport but is no ID token (``typ: at+jwt``)."""
    done = flow(h, mode)
    if hint == "access_token":
        hint = done.issued["access_token"]
        assert hint.count(".") == 2
    params = new_request(h, mode, prompt="none", id_token_hint=hint)
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = Authorization(callback(answer, mode), sent=params)
    assert check_error(result) == "invalid_request"


def test_id_token_hint_is_checked_in_a_pushed_request_too(h: Harness) -> None:
    """Not a module: a pushed request is validated as one sent to the authorization
    endpoint (RFC 9126 §2.1) — a hint Passport did not issue is refused at the push;
    a good one, pushed, answers ``prompt=none`` at once."""
    done = flow(h, "query")
    base = new_request(h, "query", prompt="none")
    refused = h.client.post(
        "/oauth2/par", data={**base, "id_token_hint": "x.y.z"}, headers=basic(h)
    )
    assert refused.status_code == 400 and body(refused)["error"] == "invalid_request"
    pushed = h.client.post(
        "/oauth2/par", data={**base, "id_token_hint": done.issued["id_token"]}, headers=basic(h)
    )
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    answer = h.client.get(
        "/oauth2/authorize?"
        + urlencode({"client_id": base["client_id"], "request_uri": body(pushed)["request_uri"]})
    )
    assert check_success(Authorization(callback(answer, "query"), sent=base))


# -- authorization codes ---------------------------------------------------------------------


def check_token_error(answer: Any, error: str = "invalid_grant") -> None:
    """``AbstractOIDCCAuthCodeReuse.checkResponse``: 400, JSON, the RFC 6749 §5.2 error and a
    well-formed ``error_description``."""
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    refused = body(answer)
    assert refused["error"] == error
    assert ERROR_DESCRIPTION.fullmatch(refused.get("error_description", ""))


def test_oidcc_codereuse(h: Harness, mode: str) -> None:
    """The code redeemed a second time at once: ``invalid_grant`` (RFC 6749 §4.1.2: "MUST
    NOT use the authorization code more than once")."""
    params = new_request(h, mode)
    code = check_success(authorize(h, mode, params))
    redeem(h, code)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    check_token_error(token_request(h, data))


def test_oidcc_codereuse_30seconds(h: Harness, mode: str) -> None:
    """Thirty seconds later — the code not yet expired — a second use is ``invalid_grant``,
    and the access token issued for it is revoked (RFC 6749 §4.1.2 "SHOULD revoke"; a
    warning in the suite), so the UserInfo endpoint answers 401 (RFC 6750 §3.1)."""
    params = new_request(h, mode)
    code = check_success(authorize(h, mode, params))
    issued = redeem(h, code)
    h.clock.advance(seconds=30)  # WaitFor30Seconds
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    check_token_error(token_request(h, data))
    assert userinfo(h, issued["access_token"]).status_code == 401


def test_oidcc_ensure_request_with_valid_pkce_succeeds(h: Harness, mode: str) -> None:
    """A confidential client that also uses PKCE (RFC 7636 ``S256``) succeeds, and its
    ``code_verifier`` is checked."""
    verifier, challenge = pkce()
    params = new_request(h, mode, code_challenge=challenge, code_challenge_method="S256")
    code = check_success(authorize(h, mode, params))
    id_token(h, redeem(h, code, code_verifier=verifier)["id_token"], params["nonce"])


def test_oidcc_ensure_post_request_succeeds(h: Harness, mode: str) -> None:
    """The authorization request by POST, form-serialized (OIDC Core §3.1.2.1 "MUST support
    the use of the HTTP GET and POST methods", §13.2), from the client's page."""
    flow(h, mode, method="POST")


# -- redirect URIs ---------------------------------------------------------------------------


def set_redirect_uris(h: Harness, uris: list[str]) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.redirect_uris = uris


def refused_on_a_page(h: Harness, params: dict[str, str]) -> None:
    """``ExpectRedirectUriErrorPage``: Passport shows an error page and sends the browser
    nowhere — not to the URI asked for, nor to a registered one."""
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert answer.mimetype == "text/html"
    assert "127.0.0.1:9" not in answer.get_data(as_text=True)


def test_oidcc_ensure_registered_redirect_uri(h: Harness, mode: str) -> None:
    """A redirect URI with random characters appended (``CreateBadRedirectUriByAppending``)
    is not registered: an error page (OIDC Core §3.1.2.1, RFC 6749 §3.1.2.4)."""
    h.login("alice", PASSWORD)
    refused_on_a_page(h, new_request(h, mode, redirect_uri=REDIRECT + secrets.token_hex(5)))


def test_oidcc_ensure_redirect_uri_in_authorization_request(h: Harness, mode: str) -> None:
    """A client with two redirect URIs asks without ``redirect_uri`` (REQUIRED, OIDC Core
    §3.1.2.1): an error page.  The module registers its client dynamically; here the
    administrator registers the two URIs."""
    set_redirect_uris(h, [REDIRECT, "http://127.0.0.1:9/other"])
    h.login("alice", PASSWORD)
    refused_on_a_page(h, new_request(h, mode, redirect_uri=""))


def test_oidcc_redirect_uri_query_ok(h: Harness, mode: str) -> None:
    """``oidcc-redirect-uri-query-OK``: a registered redirect URI with a query component is
    used as registered; the response parameters are added to that query (RFC 6749 §3.1.2:
    "MUST retain the query component")."""
    with_query = REDIRECT + "?foo=bar"
    set_redirect_uris(h, [with_query])
    params = new_request(h, mode, redirect_uri=with_query)
    answer = h.client.get("/oauth2/authorize?" + urlencode(params))
    result = browse(h, answer, mode, with_query)
    result.sent = params
    if mode == "query":
        assert result.params["foo"] == "bar"
    code = check_success(result)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": with_query}
    assert token_request(h, data).status_code == 200


def test_oidcc_redirect_uri_query_mismatch(h: Harness, mode: str) -> None:
    """Registered ``?foo=bar``, asked ``?foo=zap``: not the registered URI (exact match,
    RFC 9700 §4.1.3), an error page."""
    set_redirect_uris(h, [REDIRECT + "?foo=bar"])
    h.login("alice", PASSWORD)
    refused_on_a_page(h, new_request(h, mode, redirect_uri=REDIRECT + "?foo=zap"))


def test_oidcc_redirect_uri_query_added(h: Harness, mode: str) -> None:
    """Registered without a query, asked with ``?foo=bar``: an error page."""
    h.login("alice", PASSWORD)
    refused_on_a_page(h, new_request(h, mode, redirect_uri=REDIRECT + "?foo=bar"))


# -- claims and refresh tokens ---------------------------------------------------------------


def test_oidcc_claims_essential(h: Harness, mode: str) -> None:
    """``claims`` asking ``name`` as essential in UserInfo (OIDC Core §5.5): the request
    must succeed.  Passport does not support the ``claims`` parameter
    (``claims_parameter_supported`` false) and ignores it; the missing ``name`` is a
    warning only."""
    assert metadata(h).get("claims_parameter_supported", False) is False
    essential = json.dumps({"userinfo": {"name": {"essential": True}}})
    done = flow(h, mode, claims=essential)
    claims_of(h, userinfo(h, done.issued["access_token"]), done.claims["sub"])


def add_second_client(h: Harness) -> None:
    """``AbstractOIDCCMultipleClient``'s second confidential client."""
    with h.app.services.db.session(write=True) as db, db.begin():
        app, secret = directory.create_application(
            db, datetime.now(UTC), "Second", redirect_uris=[REDIRECT]
        )
        h.other = (app.client_id or "", secret or "")  # type: ignore[attr-defined]


def refresh_flow(h: Harness, mode: str, client: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``OIDCCRefreshToken.performPostAuthorizationFlow``: ``openid offline_access`` with
    ``prompt=consent`` (OIDC Core §11, as discovery lists ``offline_access``), the code,
    then ``RefreshTokenRequestSteps``."""
    client_id, _ = credentials(h, client)
    params = new_request(
        h, mode, client_id=client_id, scope="openid offline_access", prompt="consent"
    )
    code = check_success(authorize(h, mode, params))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    first = body(token_request(h, data, client=client))
    assert first["refresh_token"]
    id_token(h, first["id_token"], params["nonce"], client_id)
    return params, first


def test_oidcc_refresh_token(h: Harness, mode: str) -> None:
    """A refresh token of the allowed characters (RFC 6749 Appendix A.17) refreshed with
    ``scope`` (§6): 200 JSON not cached, a Bearer token, a new ID token whose ``iss``,
    ``sub``, ``aud``, ``auth_time`` and ``azp`` match the first and whose ``iat`` is later
    (OIDC Core §12.2); the UserInfo endpoint takes the new access token.  A second
    client's refresh token used by the first client: 400 ``invalid_grant``."""
    assert "offline_access" in metadata(h)["scopes_supported"]
    assert "refresh_token" in metadata(h)["grant_types_supported"]
    params, first = refresh_flow(h, mode, "Wiki")
    assert re.fullmatch(r"[\x20-\x7e]+", first["refresh_token"])
    first_claims = id_token(h, first["id_token"], params["nonce"])
    h.clock.advance(seconds=1)  # WaitForOneSecond
    data = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "scope": "openid offline_access",
    }
    answer = token_request(h, data)
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert "no-store" in answer.headers["Cache-Control"]
    second = body(answer)
    assert second["token_type"].lower() == "bearer"
    assert second["access_token"] != first["access_token"]
    if "id_token" in second:
        claims = jwt.decode(
            second["id_token"], KeySet.import_key_set(body(h.client.get("/.well-known/jwks.json")))
        ).claims
        for name in ("iss", "sub", "aud", "auth_time"):
            assert claims.get(name) == first_claims.get(name), name
        assert ("azp" in claims) == ("azp" in first_claims)
        assert claims["iat"] > first_claims["iat"]
    assert userinfo(h, second["access_token"]).status_code == 200
    # performSecondClientTests: client 2's refresh token with client 1.
    add_second_client(h)
    _, others = refresh_flow(h, mode, "Second")
    data = {"grant_type": "refresh_token", "refresh_token": others["refresh_token"]}
    check_token_error(token_request(h, data, client="Wiki"))


# -- the Form Post OP plan's variants of modules mirrored in query mode elsewhere ------------


def unsigned_request_object(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."


@pytest.mark.parametrize(
    "module",
    [
        "oidcc-scope-profile",
        "oidcc-scope-phone",
        "oidcc-ensure-request-with-unknown-parameter-succeeds",
        "oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported",
        "oidcc-ensure-request-object-with-redirect-uri",
    ],
)
def test_oidcc_form_post_variants_of_query_mode_modules(h: Harness, module: str) -> None:
    """The Form Post OP plan runs every Basic module with ``response_mode=form_post``; these
    five are mirrored in query mode in ``test_oidcc_authorization_request.py`` (the
    request-object module there runs both modes), and here posted: the same answer, by a
    form."""
    mode = "form_post"
    if module == "oidcc-scope-profile":
        done = flow(h, mode, scope="openid profile")
        claims = claims_of(h, userinfo(h, done.issued["access_token"]), done.claims["sub"])
        assert claims["name"] == "Alice" and claims["preferred_username"] == "alice"
    elif module == "oidcc-scope-phone":
        done = flow(h, mode, scope="openid phone")
        assert done.issued["scope"] == "openid"
    elif module == "oidcc-ensure-request-with-unknown-parameter-succeeds":
        flow(h, mode, extra="foobar")
    else:
        h.login("alice", PASSWORD)
        if module.startswith("oidcc-request-uri"):
            extra = {"request_uri": "https://rp.example/request.jwt"}
            expected = "request_uri_not_supported"
        else:
            evil = {"redirect_uri": "https://evil.example/cb", "response_type": "code"}
            extra = {"request": unsigned_request_object(evil)}
            expected = "request_not_supported"
        params = new_request(h, mode, **extra)
        answer = h.client.get("/oauth2/authorize?" + urlencode(params))
        result = Authorization(callback(answer, mode), sent=params)
        assert check_error(result) == expected


# -- Config OP, RP-Initiated Logout OP, Back-Channel Logout OP: the discovery modules ------------

PUBLIC_URL = "https://sso.example.com"


@pytest.fixture
def deployed(factory: Any) -> Harness:
    """Passport as deployed, behind ``https``: the conformance suite insists on https for
    the discovery URL and every ``*_endpoint`` (``CheckDiscEndpointDiscoveryUrl``,
    ``CheckDiscEndpointAllEndpointsAreHttps``), which the loopback ``h`` cannot show."""
    built: Harness = factory("sqlite", "db", key_encryption_key=KEK, public_url=PUBLIC_URL)
    return built


def deployed_metadata(h: Harness) -> dict[str, Any]:
    """``GetDynamicServerConfiguration``, ``EnsureDiscoveryEndpointResponseStatusCodeIs200``,
    ``CheckDiscoveryEndpointReturnedJsonContentType``."""
    answer = h.client.get("/.well-known/openid-configuration", base_url=PUBLIC_URL)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert answer.mimetype == "application/json"
    return body(answer)


def https_endpoints(meta: dict[str, Any]) -> None:
    """``CheckDiscEndpointAllEndpointsAreHttps``: every ``*_endpoint`` member an https URL."""
    endpoints = {k: v for k, v in meta.items() if k.endswith("_endpoint")}
    assert endpoints
    for name, url in endpoints.items():
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc and not parts.fragment, name


def test_oidcc_discovery_endpoint_verification(deployed: Harness) -> None:
    """The Config OP plan's one module, condition by condition (static client): OpenID
    Connect Discovery 1.0 §3-§4 and RFC 8414 §2.  The members' exact values are in
    ``test_oidcc_config.py``."""
    meta = deployed_metadata(deployed)
    # OIDCCCheckDiscEndpointResponseTypesSupported: one OpenID Connect response type.
    assert {"code", "code id_token", "id_token", "token id_token"} & set(
        meta["response_types_supported"]
    )
    # CheckDiscEndpointIssuer, CheckDiscEndpointIssuerIsValidUrl (Discovery §4.3).
    assert meta["issuer"] == PUBLIC_URL
    assert urlsplit(meta["issuer"]).scheme == "https"
    assert {"public", "pairwise"} & set(meta["subject_types_supported"])
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert "none" not in meta.get("userinfo_signing_alg_values_supported", [])
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert meta[name].startswith(PUBLIC_URL + "/"), name
    assert "registration_endpoint" not in meta  # static clients only
    # CheckJwksUri, FetchServerKeys, ValidateJwksSequence.
    keys = deployed.client.get(urlsplit(meta["jwks_uri"]).path, base_url=PUBLIC_URL)
    assert keys.status_code == 200
    jwks = body(keys)["keys"]
    assert jwks and len({k["kid"] for k in jwks}) == len(jwks)
    KeySet.import_key_set({"keys": jwks})
    # Request objects are not supported, and said so (Discovery §3 defaults).
    assert meta["request_parameter_supported"] is False
    assert meta["request_uri_parameter_supported"] is False
    assert meta.get("claims_parameter_supported", False) is False
    assert isinstance(meta["claims_supported"], list) and "sub" in meta["claims_supported"]
    assert meta["grant_types_supported"] and "authorization_code" in meta["grant_types_supported"]
    # CheckDiscEndpointScopesSupportedContainsOpenId, …ScopesSupportedSyntax (RFC 6749 §3.3).
    assert "openid" in meta["scopes_supported"]
    for scope in meta["scopes_supported"]:
        assert re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", scope), scope
    https_endpoints(meta)
    assert isinstance(meta["code_challenge_methods_supported"], list)


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(deployed: Harness) -> None:
    """``CheckDiscEndpointAllEndpointsAreHttps`` and ``CheckDiscEndSessionEndpoint``
    (RP-Initiated Logout 1.0 §2.1): an https ``end_session_endpoint``."""
    meta = deployed_metadata(deployed)
    https_endpoints(meta)
    assert meta["end_session_endpoint"] == PUBLIC_URL + "/logout"


def test_oidcc_backchannel_logout_discovery_endpoint_verification(deployed: Harness) -> None:
    """``CheckDiscEndpointBackchannelLogoutSupported``, ``…SessionSupported`` (required for
    certification: ``sid`` in ID and logout tokens; Back-Channel Logout 1.0 §2.1) and
    ``CheckDiscEndSessionEndpoint``."""
    meta = deployed_metadata(deployed)
    https_endpoints(meta)
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert meta["end_session_endpoint"] == PUBLIC_URL + "/logout"


# -- the index -------------------------------------------------------------------------------


def test_the_conformance_index_names_real_tests_and_every_module_test() -> None:
    """``tests/oidc/CONFORMANCE.md`` maps modules to tests: every test it names exists, and
    every ``test_oidcc_…`` of this file is named there."""
    from pathlib import Path

    here = Path(__file__).parent
    index = (here / "CONFORMANCE.md").read_text()
    defined = {
        name
        for path in here.glob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)
    }
    named = set(re.findall(r"\b(test_\w+)(?![\w…*]|\.py)", index)) - {"test_oidcc_"}
    named = {n for n in named if not n.endswith("_")}
    assert named - defined == set()
    own = set(re.findall(r"^def (test_oidcc_\w+)", Path(__file__).read_text(), re.MULTILINE))
    assert own - named == set()
