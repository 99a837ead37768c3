"""One strict parameter reader for the protocol endpoints and the hosted pages
(:mod:`passport.oidc.params`): a repeated parameter, a value that is not a string or
one over the length limit is refused with a clear error — ``invalid_request`` at an
OAuth endpoint, the error page on a page — and never silently dropped."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import ids
from oidc_support import token
from oidc_support import wiki_request
from passport.oidc.params import MAX_PARAMETER_LENGTH
from passport.oidc.provider import Provider

from support import Harness


def _basic(h: Harness) -> dict[str, str]:
    import base64

    raw = f"{ids(h)['service_id']}:{ids(h)['service_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("value", [5, 1.5, True, None, ["a"], {"a": "b"}])
def test_a_json_value_that_is_not_a_string_is_refused(h: Harness, value: Any) -> None:
    """Before: ``{"grant_type": "client_credentials", "scope": 5}`` dropped ``scope`` and
    issued a token for every registered scope.  Now: invalid_request, naming it."""
    answer = h.client.post(
        "/oauth2/token",
        data=json.dumps({"grant_type": "client_credentials", "scope": value}),
        content_type="application/json",
        headers=_basic(h),
    )
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert body(answer)["error"] == "invalid_request"
    assert "scope" in body(answer)["error_description"]


def test_a_non_string_bearer_token_is_refused_at_userinfo(h: Harness) -> None:
    answer = h.client.post(
        "/oauth2/userinfo",
        data=json.dumps({"access_token": ["x"]}),
        content_type="application/json",
    )
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "path", ["/oauth2/token", "/oauth2/par", "/oauth2/introspect", "/oauth2/revoke"]
)
def test_a_repeated_parameter_is_refused(h: Harness, path: str) -> None:
    answer = h.client.post(
        path,
        data="grant_type=client_credentials&token=a&token=b&grant_type=refresh_token",
        content_type="application/x-www-form-urlencoded",
        headers=_basic(h),
    )
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
    assert "more than once" in body(answer)["error_description"]


def test_an_overlong_value_is_refused_not_cut(h: Harness) -> None:
    answer = token(h, grant_type="client_credentials", state="x" * (MAX_PARAMETER_LENGTH + 1))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
    assert "too long" in body(answer)["error_description"]


def test_authorize_by_post_refuses_a_parameter_in_the_url_and_the_body(h: Harness) -> None:
    """OIDC Core §3.1.2.1 allows POST; a name in both places is a repeated parameter
    (RFC 6749 §3.1), not "the body wins"."""
    h.login("alice", PASSWORD)
    asked = wiki_request(h)
    url = "/oauth2/authorize?" + urlencode({"scope": "openid profile"})
    answer = h.client.post(url, data=asked)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "more than once" in answer.get_data(as_text=True)
    # the same request in the body alone goes on
    fine = h.client.post("/oauth2/authorize", data=asked)
    assert fine.status_code == 302 and not fine.headers["Location"].startswith(REDIRECT + "?error")


@pytest.mark.parametrize("path", ["/login", "/consent", "/logout", "/account", "/device"])
def test_pages_refuse_non_strings_and_repeats_with_the_error_page(h: Harness, path: str) -> None:
    posted = h.client.post(path, data=json.dumps({"csrf": ["x"]}), content_type="application/json")
    assert posted.status_code == 400 and posted.mimetype == "text/html"
    assert "must be a string" in posted.get_data(as_text=True)
    repeated = h.client.get(f"{path}?next=/a&next=/b")
    assert repeated.status_code == 400 and repeated.mimetype == "text/html"


def test_the_token_endpoint_answers_get_with_405_and_allow(h: Harness) -> None:
    answer = h.client.get("/oauth2/token")
    # OPTIONS too: the token endpoint answers CORS preflights (tests/oidc/test_cors.py).
    assert answer.status_code == 405 and answer.headers["Allow"] == "OPTIONS, POST"
    assert body(answer)["error"] == "invalid_request"


from passport.pages.render import CONSOLE_JS_URL  # noqa: E402
from passport.pages.render import PASSKEY_JS_URL  # noqa: E402

EXPECTED = {
    "/.well-known/openid-configuration": {"GET"},
    "/.well-known/oauth-authorization-server": {"GET"},
    "/.well-known/jwks.json": {"GET"},
    "/oauth2/authorize": {"GET", "POST"},
    "/oauth2/token": {"POST"},
    "/oauth2/par": {"POST"},
    "/oauth2/userinfo": {"GET", "POST"},
    "/oauth2/introspect": {"POST"},
    "/oauth2/revoke": {"POST"},
    "/login": {"GET", "POST"},
    "/consent": {"GET", "POST"},
    "/logout": {"GET", "POST"},
    "/account": {"GET", "POST"},
    "/oauth2/device_authorization": {"POST"},
    "/device": {"GET", "POST"},
    "/login/verify": {"GET", "POST"},
    "/login/enrol": {"GET", "POST"},
    "/login/continue": {"POST"},
    "/webauthn/options": {"POST"},
    PASSKEY_JS_URL: {"GET"},
    "/password/forgot": {"GET", "POST"},
    "/password/reset": {"GET", "POST"},
    "/email/verify": {"GET", "POST"},
    "/invite": {"GET", "POST"},
    "/admin": {"GET"},
    "/admin/users": {"GET", "POST"},
    "/admin/user": {"GET", "POST"},
    "/admin/groups": {"GET", "POST"},
    "/admin/group": {"GET", "POST"},
    "/admin/applications": {"GET", "POST"},
    "/admin/application": {"GET", "POST"},
    "/admin/audit": {"GET"},
    "/admin/audit/tail": {"GET"},
    "/admin/keys": {"GET", "POST"},
    "/admin/health": {"GET"},
    CONSOLE_JS_URL: {"GET"},
    # A proxy's check comes with the method of the request it asks about.
    "/forward-auth": {"GET", "POST", "PUT", "PATCH", "DELETE"},
    "/forward-auth/return": {"GET"},
}


def test_routes_name_every_url_with_its_methods_and_family(h: Harness) -> None:
    from passport.web.errors import WebError

    provider: Provider = h.app.oidc
    routes = provider.routes()
    assert {r.path: set(r.methods) for r in routes} == EXPECTED
    assert len({r.label for r in routes}) == len(routes)
    refusal = WebError("no", number=405, headers={"Allow": "POST"})
    request: Any = None
    for route in routes:
        answer = route.refuse(request, refusal)
        assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
        protocol = route.path.startswith("/.well-known") or (
            route.path.startswith("/oauth2/") and route.path != "/oauth2/authorize"
        )
        assert answer.mimetype == ("application/json" if protocol else "text/html"), route.path
