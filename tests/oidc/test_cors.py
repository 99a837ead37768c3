"""CORS on the OpenID Connect endpoints (Fetch standard, "CORS protocol"), declared on each
route (``Route.cors``) and applied by the dispatcher alone.

* discovery and the JWK Set: any origin, ``null`` included — ``*``, no ``Vary``;
* the token endpoint, the PAR endpoint, userinfo, revocation: the origins applications registered,
  echoed, with ``Vary: Origin`` and ``WWW-Authenticate`` exposed; others get no
  ``Access-Control-Allow-Origin`` and a 403 preflight;
* never ``Access-Control-Allow-Credentials``: these endpoints read no cookie;
* introspection, the authorization endpoint and the hosted pages: no CORS at all.

Before, no protocol endpoint answered CORS: a single-page application could not read
discovery, exchange its code or call userinfo from the browser.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import first_party
from oidc_support import ids
from oidc_support import pkce
from oidc_support import query
from passport.services.applications import find_by_name

from support import Harness

REGISTERED = "http://127.0.0.1:9"  # the Wiki's registered origin (oidc_support.seed)
UNKNOWN = "https://evil.example"
ORIGINS = {"registered": REGISTERED, "unknown": UNKNOWN, "null": "null"}

# path -> the methods a preflight allows
PUBLIC = {
    "/.well-known/openid-configuration": "GET",
    "/.well-known/oauth-authorization-server": "GET",
    "/.well-known/jwks.json": "GET",
}
FOR_REGISTERED = {
    "/oauth2/token": "POST",
    "/oauth2/par": "POST",
    "/oauth2/userinfo": "GET, POST",
    "/oauth2/revoke": "POST",
}
NO_CORS = [
    "/oauth2/introspect",
    "/oauth2/authorize",
    "/login",
    "/consent",
    "/logout",
    "/account",
    "/oauth2/device_authorization",
    "/device",
]
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def cors_headers(response: Any) -> dict[str, str]:
    """Every ``Access-Control-*`` header of an answer, to compare exactly."""
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


def vary(response: Any) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()}


def simple(h: Harness, path: str, origin: str) -> Any:
    """A request a page sends without a preflight: a GET, or a form POST."""
    client = h.new_client()
    if path in PUBLIC or path == "/oauth2/userinfo":
        return client.get(path, headers={"Origin": origin})
    return client.post(path, data={"token": "x", "grant_type": "x"}, headers={"Origin": origin})


def preflight(h: Harness, path: str, origin: str, method: str | None = None) -> Any:
    wanted = method or ("GET" if path in PUBLIC else "POST")
    return h.new_client().options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": wanted,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


# -- discovery and the JWK Set: any origin ----------------------------------------------------


@pytest.mark.parametrize("origin", ORIGINS.values(), ids=list(ORIGINS))
@pytest.mark.parametrize("path", PUBLIC)
def test_public_documents_are_readable_by_any_origin(h: Harness, path: str, origin: str) -> None:
    answer = simple(h, path, origin)
    assert answer.status_code == 200
    assert cors_headers(answer) == {"Access-Control-Allow-Origin": "*"}
    assert "origin" not in vary(answer)  # the same answer for every origin

    allowed = preflight(h, path, origin)
    assert allowed.status_code == 204, allowed.get_data(as_text=True)
    assert cors_headers(allowed) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": PUBLIC[path],
        **PREFLIGHT_HEADERS,
    }


# -- token, userinfo, revocation: registered origins ----------------------------------------


@pytest.mark.parametrize("path", FOR_REGISTERED)
def test_registered_origins_may_read_the_answers(h: Harness, path: str) -> None:
    answer = simple(h, path, REGISTERED)
    assert answer.status_code in (400, 401), answer.get_data(as_text=True)  # an OAuth error
    assert cors_headers(answer) == {
        "Access-Control-Allow-Origin": REGISTERED,
        "Access-Control-Expose-Headers": "WWW-Authenticate",
    }
    assert "origin" in vary(answer)

    allowed = preflight(h, path, REGISTERED)
    assert allowed.status_code == 204, allowed.get_data(as_text=True)
    assert cors_headers(allowed) == {
        "Access-Control-Allow-Origin": REGISTERED,
        "Access-Control-Allow-Methods": FOR_REGISTERED[path],
        **PREFLIGHT_HEADERS,
    }
    assert "origin" in vary(allowed)
    assert allowed.get_data() == b""


@pytest.mark.parametrize("origin", [UNKNOWN, "null"], ids=["unknown", "null"])
@pytest.mark.parametrize("path", FOR_REGISTERED)
def test_other_origins_may_not(h: Harness, path: str, origin: str) -> None:
    """The actual request is answered as to any client (no cookie is read: nothing to
    forge), but without Access-Control-Allow-Origin the page cannot read it."""
    answer = simple(h, path, origin)
    assert answer.status_code == simple(h, path, REGISTERED).status_code
    assert cors_headers(answer) == {}
    assert "origin" in vary(answer)

    refused = preflight(h, path, origin)
    assert refused.status_code == 403
    assert cors_headers(refused) == {}
    assert "origin" in vary(refused)
    assert body(refused)["error"] == "invalid_request"


@pytest.mark.parametrize("path", FOR_REGISTERED)
def test_no_origin_no_cors_but_vary(h: Harness, path: str) -> None:
    client = h.new_client()
    answer = (
        client.get(path) if path == "/oauth2/userinfo" else client.post(path, data={"token": "x"})
    )
    assert cors_headers(answer) == {}
    assert "origin" in vary(answer)


@pytest.mark.parametrize(
    ("path", "method"),
    [("/oauth2/token", "GET"), ("/oauth2/revoke", "DELETE"), ("/oauth2/userinfo", "PUT")],
)
def test_a_preflight_for_a_method_the_route_refuses_is_refused(
    h: Harness, path: str, method: str
) -> None:
    refused = preflight(h, path, REGISTERED, method)
    assert refused.status_code == 403
    assert cors_headers(refused) == {}


def test_a_plain_options_is_answered_with_allow(h: Harness) -> None:
    """Without Origin, OPTIONS is no preflight (RFC 9110 §9.3.7): 204 and Allow."""
    for path, allow in (
        ("/oauth2/token", "OPTIONS, POST"),
        ("/oauth2/userinfo", "GET, HEAD, OPTIONS, POST"),
        ("/.well-known/openid-configuration", "GET, HEAD, OPTIONS"),
    ):
        answer = h.new_client().options(path)
        assert answer.status_code == 204 and answer.headers["Allow"] == allow
        assert cors_headers(answer) == {}


def test_a_refusal_of_the_router_is_readable_by_a_registered_origin(h: Harness) -> None:
    """GET /oauth2/token from the page: the 405 carries CORS too, so the page sees why."""
    answer = h.new_client().get("/oauth2/token", headers={"Origin": REGISTERED})
    assert answer.status_code == 405
    assert answer.headers["Access-Control-Allow-Origin"] == REGISTERED


# -- no CORS where a browser navigates, or must not call ---------------------------------------


@pytest.mark.parametrize("path", NO_CORS)
def test_pages_authorization_and_introspection_have_no_cors(h: Harness, path: str) -> None:
    """Introspection: only a confidential client with its secret may ask (RFC 7662 §2.1),
    and a secret has no place in a page.  The pages are navigated to, never fetched."""
    refused = preflight(h, path, REGISTERED)
    assert refused.status_code == 405
    assert "OPTIONS" not in refused.headers["Allow"]
    assert cors_headers(refused) == {}
    for method in ("GET", "POST"):
        answer = h.new_client().open(path, method=method, headers={"Origin": REGISTERED})
        assert cors_headers(answer) == {}, (path, method)


# -- a single-page application, end to end ---------------------------------------------------


def test_a_public_client_in_the_browser_exchanges_its_code_and_reads_userinfo(
    h: Harness,
) -> None:
    """The SPA (public, PKCE) of the registered origin: discovery, the code exchange,
    userinfo and revocation are all readable; none sets or needs credentials."""
    with h.app.services.db.session(write=True) as db, db.begin():
        spa = find_by_name(db, "Spa")
        assert spa is not None
        spa.allowed_origins = [REGISTERED]
    h.app.forget_origins()
    page = {"Origin": REGISTERED}

    meta = h.new_client().get("/.well-known/openid-configuration", headers=page)
    assert meta.headers["Access-Control-Allow-Origin"] == "*"

    h.login("alice", PASSWORD)
    first_party(h, "Spa")
    verifier, challenge = pkce()
    spa_id = ids(h)["public_client_id"]
    code = query(
        authorize(
            h,
            client_id=spa_id,
            redirect_uri=REDIRECT,
            response_type="code",
            scope="openid",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
    )["code"]
    assert preflight(h, "/oauth2/token", REGISTERED).status_code == 204
    exchanged = h.new_client().post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": spa_id,
            "code_verifier": verifier,
        },
        headers=page,
    )
    assert exchanged.status_code == 200, exchanged.get_data(as_text=True)
    assert exchanged.headers["Access-Control-Allow-Origin"] == REGISTERED
    assert "Access-Control-Allow-Credentials" not in exchanged.headers
    assert "Set-Cookie" not in exchanged.headers
    access = body(exchanged)["access_token"]

    assert preflight(h, "/oauth2/userinfo", REGISTERED, "GET").status_code == 204
    info = h.new_client().get(
        "/oauth2/userinfo", headers={**page, "Authorization": f"Bearer {access}"}
    )
    assert info.status_code == 200
    assert info.headers["Access-Control-Allow-Origin"] == REGISTERED
    assert json.loads(info.get_data(as_text=True))["sub"].startswith("user-")

    revoked = h.new_client().post(
        "/oauth2/revoke", data={"token": access, "client_id": spa_id}, headers=page
    )
    assert revoked.status_code == 200 and body(revoked) == {}
    assert revoked.headers["Access-Control-Allow-Origin"] == REGISTERED


def test_an_origin_registered_later_is_allowed_once_the_cache_is_forgotten(h: Harness) -> None:
    """The registered origins are read through ``registered_origins()`` and its cache."""
    later = "https://spa.example.org"
    assert preflight(h, "/oauth2/token", later).status_code == 403
    with h.app.services.db.session(write=True) as db, db.begin():
        spa = find_by_name(db, "Spa")
        assert spa is not None
        spa.allowed_origins = [later]
    h.app.forget_origins()
    allowed = preflight(h, "/oauth2/token", later)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == later
