"""Registered origins reach only the application-facing methods, never the administration API.

A registered application's page (or an XSS on it) runs in the browser of whoever
visits it, administrators included.  If CORS with credentials and the CSRF check
trusted that origin for every method, the page could drive the administration API
with the visiting administrator's cookie.  So cross-origin access is an explicit,
default-closed property of each endpoint (``@expose(..., cross_origin=True)``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from passport.api import API
from passport.web.registry import Endpoint
from site_support import APP_NAME
from site_support import APP_ORIGIN
from site_support import SITE_ORIGIN
from site_support import Site
from site_support import build_site
from site_support import table_fingerprints

from support import STRONG

ADMIN_CONTROLLERS = {"Users", "Groups", "Applications", "Grants", "Audit"}
ADMIN_ENDPOINTS = [e for e in API if e.controller in ADMIN_CONTROLLERS]
# What a registered application's pages need: who is signed in, sign in and out,
# register, the links sent by mail (an application may host those forms), permission
# checks, and the service's own description.
APPLICATION_FACING = {
    "/Service/Index",
    "/Service/getApplication",
    "/Account/register",
    "/Account/login",
    "/Account/requestPasswordReset",
    "/Account/resetPassword",
    "/Account/requestVerification",
    "/Account/verifyEmail",
    "/Account/acceptInvitation",
    "/Account/status",
    "/Account/logout",
    "/Permission/check",
    "/Permission/list",
}
CROSS_ORIGIN_ENDPOINTS = [e for e in API if e.path in APPLICATION_FACING]
SITES = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=SITES, ids=[f"{b}-{s}" for b, s in SITES])
def site(request: pytest.FixtureRequest, factory: Any) -> Iterator[Site]:
    backend, store = request.param
    yield build_site(factory(backend, store, public_url=SITE_ORIGIN))


def data(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def verb(endpoint: Endpoint) -> str:
    return "GET" if "GET" in endpoint.http_methods else "POST"


def preflight(site: Site, endpoint: Endpoint, origin: str) -> Any:
    return site.admin.options(
        endpoint.path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": verb(endpoint),
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cross_origin_is_exactly_the_application_facing_methods() -> None:
    """The registry says, per endpoint, whether registered origins may call it."""
    marked = {e.path for e in API if e.cross_origin}
    assert marked == APPLICATION_FACING
    assert not any(e.cross_origin for e in ADMIN_ENDPOINTS)
    assert not any(e.cross_origin for e in API if e.controller == "Client")
    assert all(e.cross_origin for e in API if e.jsonp)


@pytest.mark.parametrize("endpoint", ADMIN_ENDPOINTS, ids=[e.path for e in ADMIN_ENDPOINTS])
def test_admin_api_refuses_registered_origins(site: Site, endpoint: Endpoint) -> None:
    """Preflight 403 without ACAO; a credentialed call gets no ACAO, and a write is 403
    with nothing written, even with the administrator's cookie."""
    refused = preflight(site, endpoint, APP_ORIGIN)
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers

    params = {p.name: "x" for p in endpoint.params if not p.secret}
    before = table_fingerprints(site.harness)
    if verb(endpoint) == "GET":
        answer = site.admin.get(endpoint.path, query_string=params, headers={"Origin": APP_ORIGIN})
    else:
        answer = site.admin.post(endpoint.path, data=params, headers={"Origin": APP_ORIGIN})
        assert answer.status_code == 403, answer.get_data(as_text=True)
        error = data(answer)["ClientExceptions"][0]
        assert (error["Source"], error["Number"]) == ("Origin", "403")
        assert table_fingerprints(site.harness) == before
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert "Origin" in answer.headers["Vary"]

    # The same call from Passport's own pages gets past the origin check.
    if verb(endpoint) == "GET":
        own = site.admin.get(endpoint.path, query_string=params)
    else:
        own = site.admin.post(endpoint.path, data=params, headers={"Origin": SITE_ORIGIN})
    assert [e["Source"] for e in data(own)["ClientExceptions"]] != ["Origin"]


def test_a_registered_page_cannot_create_an_administrator(site: Site) -> None:
    """The attack itself: the Wiki's page posts Users/create and Grants/grant with the
    visiting administrator's cookie; nothing happens."""
    for path, params in (
        ("/Users/create", {"username": "mallory", "password": STRONG}),
        (
            "/Grants/grant",
            {"application": "Passport", "permission": "admin", "username": "root"},
        ),
        ("/Applications/update", {"application": APP_NAME, "origins": "https://evil.example"}),
    ):
        for body in ("form", "json"):
            kwargs: dict[str, Any] = {"json": params} if body == "json" else {"data": params}
            answer = site.admin.post(path, headers={"Origin": APP_ORIGIN}, **kwargs)
            assert answer.status_code == 403, (path, body)
            assert "Access-Control-Allow-Origin" not in answer.headers
    # A Referer from the page (no Origin) is judged the same way.
    referer = site.admin.open(
        "/Users/create",
        method="POST",
        data={"username": "mallory", "password": STRONG},
        headers={"Referer": APP_ORIGIN + "/page"},
    )
    assert referer.status_code == 403
    assert (
        data(site.admin.get("/Users/get?username=mallory"))["ClientExceptions"][0]["Number"] == "2"
    )


@pytest.mark.parametrize(
    "endpoint", CROSS_ORIGIN_ENDPOINTS, ids=[e.path for e in CROSS_ORIGIN_ENDPOINTS]
)
def test_application_facing_methods_answer_registered_origins(
    site: Site, endpoint: Endpoint
) -> None:
    ok = preflight(site, endpoint, APP_ORIGIN)
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert verb(endpoint) in ok.headers["Access-Control-Allow-Methods"]
    stranger = preflight(site, endpoint, "https://evil.example")
    assert stranger.status_code == 403
    assert "Access-Control-Allow-Origin" not in stranger.headers

    browser = site.harness.new_client()
    if verb(endpoint) == "GET":
        answer = browser.get(endpoint.path, headers={"Origin": APP_ORIGIN})
    else:
        answer = browser.post(endpoint.path, data={}, headers={"Origin": APP_ORIGIN})
    assert answer.status_code != 403 or data(answer)["ClientExceptions"][0]["Source"] != "Origin"
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"


def test_an_application_page_signs_a_user_in_and_checks_a_permission(site: Site) -> None:
    site.harness.register("erin", headers={"Origin": SITE_ORIGIN})
    site.admin.post(
        "/Grants/grant",
        data={"application": APP_NAME, "permission": "edit", "username": "erin"},
        headers={"Origin": SITE_ORIGIN},
    )
    page = site.harness.new_client()
    login = page.post(
        "/Account/login",
        data={"username": "erin", "password": STRONG},
        headers={"Origin": APP_ORIGIN},
    )
    assert login.status_code == 200
    assert login.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    check = page.get(
        "/Permission/check",
        query_string={"application": APP_NAME, "permission": "edit"},
        headers={"Origin": APP_ORIGIN},
    )
    assert data(check)["Data"] == {"Granted": True}
    assert check.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    logout = page.post("/Account/logout", headers={"Origin": APP_ORIGIN})
    assert logout.status_code == 200
    assert data(page.get("/Account/status"))["LoggedIn"] is False


@pytest.mark.parametrize("path", ["/Account/sessions", "/Account/endSession"])
def test_session_management_is_for_passports_own_pages(site: Site, path: str) -> None:
    """Listing a user's sessions (their IP addresses) or ending them is done on /account."""
    endpoint = API.find("Account", path.rsplit("/", 1)[1])
    assert endpoint is not None
    assert preflight(site, endpoint, APP_ORIGIN).status_code == 403
    if verb(endpoint) == "GET":
        answer = site.admin.get(path, headers={"Origin": APP_ORIGIN})
        assert answer.status_code == 200
    else:
        answer = site.admin.post(path, data={"id": "x"}, headers={"Origin": APP_ORIGIN})
        assert answer.status_code == 403
    assert "Access-Control-Allow-Origin" not in answer.headers


def test_client_api_is_server_to_server_only(site: Site) -> None:
    """``Client/*`` authenticates with the client secret (HTTP Basic), which never belongs
    in a browser: no CORS for it; servers send no Origin and are unaffected."""
    auth = base64.b64encode(f"{site.client_id}:{site.client_secret}".encode()).decode()
    server = site.harness.new_client()
    for endpoint in (e for e in API if e.controller == "Client"):
        assert preflight(site, endpoint, APP_ORIGIN).status_code == 403
    from_page = server.get(
        "/Client/listPermissions?username=root",
        headers={"Origin": APP_ORIGIN, "Authorization": f"Basic {auth}"},
    )
    assert "Access-Control-Allow-Origin" not in from_page.headers
    posted = server.post(
        "/Client/validateSession",
        data={"token": "x"},
        headers={"Origin": APP_ORIGIN, "Authorization": f"Basic {auth}"},
    )
    assert posted.status_code == 403
    backend = server.open(
        "/Client/validateSession",
        method="POST",
        data={"token": "x"},
        headers={"Authorization": f"Basic {auth}"},
    )
    assert backend.status_code == 200
    assert data(backend)["Data"]["Valid"] is False


def test_openapi_marks_cross_origin_methods(site: Site) -> None:
    document = data(site.admin.get("/openapi.json"))
    for endpoint in API:
        for method in endpoint.http_methods - {"HEAD"}:
            operation = document["paths"][endpoint.path][method.lower()]
            assert operation["x-passport-cross-origin"] is endpoint.cross_origin


def test_a_disabled_applications_origin_is_no_longer_trusted(site: Site) -> None:
    """Disabling an application withdraws its origin: no CORS answer, no write past the
    CSRF check from its pages (its origin was trusted while it was disabled before)."""
    disabled = site.admin.post(
        "/Applications/setEnabled",
        data={"application": "Wiki", "enabled": "false"},
        headers={"Origin": SITE_ORIGIN},
    )
    assert disabled.status_code == 200, disabled.get_data(as_text=True)
    site.harness.app.forget_origins()
    status = next(e for e in CROSS_ORIGIN_ENDPOINTS if e.path == "/Account/status")
    refused = preflight(site, status, APP_ORIGIN)
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
