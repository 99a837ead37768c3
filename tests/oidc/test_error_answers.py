"""Error answers exactly as the specifications spell them, where real clients branch on
them: the token endpoint (RFC 6749 §5.2), userinfo (RFC 6750 §3.1) and revocation
(RFC 7009 §2.2).

Before: a request without ``grant_type`` was ``unsupported_grant_type``; userinfo
answered every problem ``invalid_token`` — a request without any token too (§3.1: then
"the resource server SHOULD NOT include an error code"), and a valid token that only
lacked the ``openid`` scope (that is ``insufficient_scope``, 403); revocation answered an
empty ``text/plain`` body, which oidc-client-ts refuses to parse.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import ids
from oidc_support import token

from support import Harness


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def batch(h: Harness) -> dict[str, str]:
    return basic(ids(h)["service_id"], ids(h)["service_secret"])


def wiki(h: Harness) -> dict[str, str]:
    return basic(ids(h)["client_id"], ids(h)["client_secret"])


def userinfo(h: Harness, method: str = "GET", **kwargs: Any) -> Any:
    return h.new_client().open("/oauth2/userinfo", method=method, **kwargs)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


# -- the token endpoint: RFC 6749 §5.2 ------------------------------------------------------


@pytest.mark.parametrize("data", [{}, {"grant_type": ""}, {"scope": "x"}])
def test_a_missing_grant_type_is_invalid_request(h: Harness, data: dict[str, str]) -> None:
    """§5.2 invalid_request: "The request is missing a required parameter"."""
    answer = token(h, **data)
    assert answer.status_code == 400
    assert body(answer)["error"] == "invalid_request"
    assert "grant_type" in body(answer)["error_description"]
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "grant_type",
    ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "' OR 1=1"],
)
def test_an_unknown_grant_type_is_unsupported_grant_type(h: Harness, grant_type: str) -> None:
    """§5.2 unsupported_grant_type: "not supported by the authorization server"."""
    answer = token(h, grant_type=grant_type)
    assert answer.status_code == 400
    assert body(answer)["error"] == "unsupported_grant_type"


# -- userinfo: RFC 6750 §3.1 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),
        ("POST", {}),
        ("HEAD", {}),
        # "attempted using an unsupported authentication method" (§3.1): Basic is not Bearer.
        ("GET", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}),
    ],
)
def test_userinfo_without_a_token_is_a_bare_bearer_challenge(
    h: Harness, method: str, headers: dict[str, str]
) -> None:
    answer = userinfo(h, method, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.headers["Cache-Control"] == "no-store"
    if method != "HEAD":
        assert answer.mimetype == "application/json"
        assert body(answer) == {}  # "SHOULD NOT include an error code or other error information"


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("GET", {"headers": bearer("not-a-token")}),
        ("POST", {"headers": bearer("not-a-token")}),
        ("POST", {"data": {"access_token": "not-a-token"}}),
        ("POST", {"data": {"access_token": ""}}),  # a token, empty: not none at all
        ("GET", {"headers": {"Authorization": "Bearer"}}),
        ("GET", {"headers": bearer("a" * 5000)}),
    ],
)
def test_userinfo_with_an_invalid_token_is_invalid_token(
    h: Harness, method: str, kwargs: dict[str, Any]
) -> None:
    answer = userinfo(h, method, **kwargs)
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert body(answer) == {"error": "invalid_token"}


def test_userinfo_with_a_refresh_token_is_invalid_token(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    answer = userinfo(h, headers=bearer(issued["refresh_token"]))
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_with_a_client_credentials_token_is_insufficient_scope(h: Harness) -> None:
    """A live access token of no user: it may be good elsewhere, not here (OIDC Core
    §5.3: userinfo needs a token of an OpenID Connect authentication)."""
    issued = h.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=batch(h)
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)
    answer = userinfo(h, headers=bearer(body(issued)["access_token"]))
    assert answer.status_code == 403
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="openid"'
    assert body(answer) == {"error": "insufficient_scope"}


def test_userinfo_with_a_token_without_openid_is_insufficient_scope(h: Harness) -> None:
    issued = body(exchange(h, get_code(h, scope="profile email")))
    assert "openid" not in issued["scope"].split()
    for method, kwargs in (
        ("GET", {"headers": bearer(issued["access_token"])}),
        ("POST", {"data": {"access_token": issued["access_token"]}}),
    ):
        answer = userinfo(h, method, **kwargs)
        assert answer.status_code == 403
        assert (
            answer.headers["WWW-Authenticate"]
            == 'Bearer error="insufficient_scope", scope="openid"'
        )
        assert body(answer)["error"] == "insufficient_scope"


def test_userinfo_with_a_good_token_answers_claims_without_a_challenge(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    answer = userinfo(h, headers=bearer(issued["access_token"]))
    assert answer.status_code == 200
    assert "WWW-Authenticate" not in answer.headers
    assert body(answer)["sub"].startswith("user-")


# -- revocation: RFC 7009 §2.2 ----------------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token", "unknown"])
def test_revocation_answers_an_empty_json_object(h: Harness, which: str) -> None:
    issued = body(exchange(h, get_code(h)))
    value = issued.get(which, "no-such-token")
    answer = h.client.post("/oauth2/revoke", data={"token": value}, headers=wiki(h))
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.get_data(as_text=True) == "{}"
    assert answer.headers["Cache-Control"] == "no-store"
    if which != "unknown":
        seen = h.client.post("/oauth2/introspect", data={"token": value}, headers=wiki(h))
        assert body(seen) == {"active": False}
