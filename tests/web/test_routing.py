"""The one routing map: every URL with the methods it accepts, 405 with Allow otherwise.

Before the map there were three routers with three method policies: a hosted page
answered any method (``DELETE /login`` was a 200), an OAuth endpoint answered 405
without ``Allow``.  Now a refusal of the router is the same everywhere (RFC 9110
§15.5.6: a 405 MUST carry ``Allow``) and is told in the format of the URL's family.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from support import Harness

# (method, path, the methods the path accepts: OPTIONS where the route has a CORS policy)
WRONG_METHODS = [
    ("GET", "/oauth2/token", {"OPTIONS", "POST"}),
    ("PUT", "/oauth2/introspect", {"POST"}),
    ("GET", "/oauth2/revoke", {"OPTIONS", "POST"}),
    ("DELETE", "/oauth2/userinfo", {"GET", "HEAD", "OPTIONS", "POST"}),
    ("DELETE", "/oauth2/authorize", {"GET", "HEAD", "POST"}),
    ("POST", "/.well-known/openid-configuration", {"GET", "HEAD", "OPTIONS"}),
    ("PUT", "/.well-known/jwks.json", {"GET", "HEAD", "OPTIONS"}),
    ("DELETE", "/login", {"GET", "HEAD", "POST"}),
    ("PATCH", "/consent", {"GET", "HEAD", "POST"}),
    ("DELETE", "/logout", {"GET", "HEAD", "POST"}),
    ("PUT", "/account", {"GET", "HEAD", "POST"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("DELETE", "/readyz", {"GET", "HEAD"}),
    ("POST", "/openapi.json", {"GET", "HEAD"}),
    ("PUT", "/metrics", {"GET", "HEAD"}),
]


def _allowed(response: Any) -> set[str]:
    return {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS)
def test_a_wrong_method_is_405_with_allow(
    factory: Any, method: str, path: str, allowed: set[str]
) -> None:
    h: Harness = factory("sqlite")
    response = h.client.open(path, method=method, headers={"Origin": "http://localhost"})
    assert response.status_code == 405, response.get_data(as_text=True)[:200]
    assert _allowed(response) == allowed
    assert "Traceback" not in response.get_data(as_text=True)


def test_each_family_answers_a_405_in_its_own_format(factory: Any) -> None:
    h: Harness = factory("sqlite")
    oauth = h.client.get("/oauth2/token")
    assert oauth.mimetype == "application/json"
    assert json.loads(oauth.get_data(as_text=True))["error"] == "invalid_request"
    page = h.client.delete("/login", headers={"Origin": "http://localhost"})
    assert page.mimetype == "text/html"
    envelope = h.client.post("/healthz", headers={"Origin": "http://localhost"})
    body = json.loads(envelope.get_data(as_text=True))
    assert body["ClientExceptions"][0]["Number"] == "405"


def test_the_api_keeps_its_own_method_rules_and_case_insensitive_names(factory: Any) -> None:
    h: Harness = factory("sqlite")
    assert h.client.get("/account/STATUS").status_code == 200
    assert h.client.get("/Service/getApplication?name=Passport").status_code == 200
    wrong = h.client.get("/Account/login")
    assert wrong.status_code == 405
    assert _allowed(wrong) == {"OPTIONS", "POST"}


@pytest.mark.parametrize("path", ["/x/y/z", "/Account/nothing", "/nowhere"])
def test_unknown_urls_are_404_envelopes(factory: Any, path: str) -> None:
    h: Harness = factory("sqlite")
    response = h.client.get(path)
    assert response.status_code == 404
    assert json.loads(response.get_data(as_text=True))["ClientExceptions"][0]["Number"] == "404"


def test_head_is_get_without_a_body(factory: Any) -> None:
    h: Harness = factory("sqlite")
    head = h.client.head("/.well-known/openid-configuration")
    get = h.client.get("/.well-known/openid-configuration")
    assert head.status_code == get.status_code
    assert head.get_data() == b""


@pytest.mark.parametrize("path", ["/Users%2Flist", "/oauth2%2ftoken", "/Account%5Cstatus"])
def test_an_encoded_separator_names_no_route(factory: Any, path: str) -> None:
    """``/Users%2Flist`` must not reach ``Users/list``: a path rule in a proxy in front
    of Passport would not have seen that name (review finding)."""
    h: Harness = factory("sqlite")
    response = h.client.get(path)
    assert response.status_code == 404
