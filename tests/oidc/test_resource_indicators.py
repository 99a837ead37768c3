"""Resource indicators (RFC 8707) and introspection by resource servers (RFC 7662 §2.1).

An application registers the resource identifiers of the APIs it serves; a client names
them with ``resource`` at the authorization and token endpoints (repeatable, §2); the
access token's ``aud`` is then those identifiers (RFC 9068 §3), kept with the token on
the server; the API, authenticated as its own application, may introspect tokens for
its resources and nothing else; Passport's own userinfo refuses a token made for
another resource."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import handle_of
from oidc_support import ids
from oidc_support import query
from oidc_support import rows
from oidc_support import token
from passport.cli import cli
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import OAuthToken
from passport.storage.models import User

from support import STRONG
from support import Harness
from support import PassportClient

ORDERS = "https://orders.example.com/api"
BILLING = "https://billing.example.com"
OLD = "https://old.example.com"  # registered by a disabled application


def apis(h: Harness) -> dict[str, tuple[str, str]]:
    """Register three resource servers (Orders, Billing, a disabled Old), each listing
    the service application Batch as a client that may get client credentials tokens
    for it (tests/oidc/test_resource_clients.py for the list itself); their
    ``(client_id, client_secret)`` by name."""
    made = getattr(h, "apis", None)
    if made is not None:
        return made  # type: ignore[no-any-return]
    credentials: dict[str, tuple[str, str]] = {}
    with h.app.services.db.session(write=True) as db, db.begin():
        batch = db.scalars(
            select(Application).where(Application.client_id == ids(h)["service_id"])
        ).one()
        for name, uri in (("Orders", ORDERS), ("Billing", BILLING), ("Old", OLD)):
            app, secret = directory.create_application(db, h.clock(), name, resources=[uri])
            directory.set_resource_clients(db, app, [batch])
            app.enabled = name != "Old"
            credentials[name] = (app.client_id or "", secret or "")
    h.apis = credentials  # type: ignore[attr-defined]
    return credentials


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def authorize_pairs(h: Harness, pairs: list[tuple[str, str]], client: Any = None) -> Any:
    """``/oauth2/authorize`` with parameters that may repeat (``resource``)."""
    return (client or h.client).get("/oauth2/authorize?" + urlencode(pairs))


def code_for(h: Harness, *resources: str, scope: str = "openid") -> str:
    """Alice's code for Wiki (made first-party: no consent page) with ``resources``."""
    h.login("alice", PASSWORD)
    first_party(h)
    answer = authorize_pairs(
        h,
        [
            ("client_id", ids(h)["client_id"]),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "s1"),
            *(("resource", r) for r in resources),
        ],
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    got = query(answer)
    assert "code" in got, got
    return got["code"]


def post_token(h: Harness, pairs: list[tuple[str, str]], auth: dict[str, str] | None = None) -> Any:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}"
    headers = auth or {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    return h.client.post(
        "/oauth2/token",
        data=urlencode(pairs),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )


def exchange_for(h: Harness, code: str, *resources: str) -> Any:
    return post_token(
        h,
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            *(("resource", r) for r in resources),
        ],
    )


def refresh_for(h: Harness, refresh_token: str, *resources: str) -> Any:
    return post_token(
        h,
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            *(("resource", r) for r in resources),
        ],
    )


def service_token(h: Harness, *resources: str) -> Any:
    """Batch's client credentials token, for ``resources``."""
    return post_token(
        h,
        [("grant_type", "client_credentials"), *(("resource", r) for r in resources)],
        auth=basic(ids(h)["service_id"], ids(h)["service_secret"]),
    )


def claims(jwt_token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(jwt_token.split(".")[1] + "=="))  # type: ignore[no-any-return]


def introspect(h: Harness, value: str, as_: tuple[str, str]) -> dict[str, Any]:
    answer = h.client.post("/oauth2/introspect", data={"token": value}, headers=basic(*as_))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return body(answer)


def wiki(h: Harness) -> tuple[str, str]:
    return ids(h)["client_id"], ids(h)["client_secret"]


def batch(h: Harness) -> tuple[str, str]:
    return ids(h)["service_id"], ids(h)["service_secret"]


# -- the audience -------------------------------------------------------------------------


def test_a_token_for_a_resource_has_it_as_audience_and_keeps_it_on_the_server(
    h: Harness,
) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS)))
    assert claims(issued["access_token"])["aud"] == ORDERS
    assert claims(issued["access_token"])["client_id"] == ids(h)["client_id"]
    # the ID token is still the client's (OIDC Core §2)
    assert claims(issued["id_token"])["aud"] == ids(h)["client_id"]
    with h.app.services.db.session() as db:
        stored = {row.kind: row.audience for row in db.scalars(select(OAuthToken))}
    assert stored == {"access": ORDERS, "refresh": ORDERS}


def test_without_resource_the_audience_is_the_client_as_before(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h)))
    assert claims(issued["access_token"])["aud"] == ids(h)["client_id"]
    assert introspect(h, issued["access_token"], wiki(h))["aud"] == ids(h)["client_id"]
    with h.app.services.db.session() as db:
        assert {row.audience for row in db.scalars(select(OAuthToken))} == {None}


def test_several_resources_make_a_list_audience(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, BILLING)))
    assert claims(issued["access_token"])["aud"] == [ORDERS, BILLING]
    assert introspect(h, issued["access_token"], apis(h)["Billing"])["aud"] == [ORDERS, BILLING]


def test_a_repeated_resource_counts_once(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, ORDERS)))
    assert claims(issued["access_token"])["aud"] == ORDERS


# -- narrowing, never widening (RFC 8707 §2.2) ---------------------------------------------


def test_the_token_request_may_narrow_the_code_s_resources(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, BILLING), BILLING))
    assert claims(issued["access_token"])["aud"] == BILLING
    # the refresh token keeps the whole grant: a refresh may ask for the other one
    refreshed = refresh_for(h, issued["refresh_token"], ORDERS)
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert claims(body(refreshed)["access_token"])["aud"] == ORDERS


@pytest.mark.parametrize("asked", [(BILLING,), (ORDERS, BILLING)])
def test_the_token_request_cannot_widen_the_code_s_resources(
    h: Harness, asked: tuple[str, ...]
) -> None:
    apis(h)
    code = code_for(h, ORDERS)
    refused = exchange_for(h, code, *asked)
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_target"
    assert rows(h, "oauth_tokens") == 0
    # the refusal rolled back: the code still works for what was authorized
    assert claims(body(exchange_for(h, code))["access_token"])["aud"] == ORDERS


def test_a_code_without_resource_cannot_get_a_token_for_one(h: Harness) -> None:
    apis(h)
    refused = exchange_for(h, code_for(h), ORDERS)
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")


def test_a_refresh_may_narrow_but_not_widen(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS)))
    widened = refresh_for(h, issued["refresh_token"], BILLING)
    assert (widened.status_code, body(widened)["error"]) == (400, "invalid_target")
    kept = refresh_for(h, issued["refresh_token"])  # nothing asked: the grant's resources
    assert claims(body(kept)["access_token"])["aud"] == ORDERS


def test_a_refresh_for_a_resource_whose_api_was_disabled_is_refused(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS)))
    with h.app.services.db.session(write=True) as db, db.begin():
        server = directory.resource_server(db, ORDERS)
        assert server is not None
        server.enabled = False
    refused = refresh_for(h, issued["refresh_token"])
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")


def test_a_refresh_without_resources_cannot_gain_one(h: Harness) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h)))
    refused = refresh_for(h, issued["refresh_token"], ORDERS)
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")


# -- client credentials ---------------------------------------------------------------------


def test_client_credentials_for_a_resource(h: Harness) -> None:
    apis(h)
    issued = body(service_token(h, ORDERS))
    assert claims(issued["access_token"])["aud"] == ORDERS
    seen = introspect(h, issued["access_token"], apis(h)["Orders"])
    assert seen["active"] is True and seen["client_id"] == ids(h)["service_id"]
    assert seen["sub"] == ids(h)["service_id"] and seen["aud"] == ORDERS


# -- hostile resource values -------------------------------------------------------------------

HOSTILE = {
    "relative": "/api",
    "no scheme": "orders.example.com/api",
    "fragment": ORDERS + "#x",
    "empty fragment": ORDERS + "#",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,<script>alert(1)</script>",
    "unicode host": "https://örders.example.com/api",
    "unicode path": ORDERS + "/é",
    "upper-case host": "https://ORDERS.example.com/api",
    "trailing slash": ORDERS + "/",
    "unregistered": "https://evil.example.com",
    "a disabled application's": OLD,
    "http": "http://orders.example.com/api",
    "long": "https://orders.example.com/" + "a" * 600,
    "space": ORDERS + " " + BILLING,
    "urn": "urn:example:orders",
    "sql": "https://x.example.com/' OR '1'='1",
    "newline": ORDERS + "\r\nX-Injected: 1",
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_resources_are_invalid_target_at_the_token_endpoint(h: Harness, value: str) -> None:
    apis(h)
    refused = service_token(h, value)
    assert refused.status_code == 400
    answer = body(refused)
    assert answer["error"] == "invalid_target"
    assert "Traceback" not in answer.get("error_description", "")
    assert rows(h, "oauth_tokens") == 0


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_resources_go_back_to_the_client_as_invalid_target(h: Harness, value: str) -> None:
    apis(h)
    h.login("alice", PASSWORD)
    answer = authorize_pairs(
        h,
        [
            ("client_id", ids(h)["client_id"]),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s1"),
            ("resource", ORDERS),
            ("resource", value),
        ],
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    got = query(answer)
    assert got["error"] == "invalid_target" and got["state"] == "s1"
    assert "code" not in got
    assert rows(h, "pending_authorizations") == 0


def test_a_resource_with_an_unregistered_redirect_uri_is_not_redirected(h: Harness) -> None:
    """The redirect URI is checked first (RFC 6749 §4.1.2.1): no redirect to an address
    the attacker chose, whatever the resource."""
    apis(h)
    answer = authorize_pairs(
        h,
        [
            ("client_id", ids(h)["client_id"]),
            ("redirect_uri", "https://evil.example.com/cb"),
            ("response_type", "code"),
            ("resource", "javascript:alert(1)"),
        ],
    )
    assert answer.status_code == 400 and "Location" not in answer.headers


def test_too_many_resources_are_refused(h: Harness) -> None:
    apis(h)
    many = [f"https://r{i}.example.com" for i in range(directory.MAX_RESOURCES + 1)]
    refused = service_token(h, *many)
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")


def test_a_huge_resource_is_refused_before_anything(h: Harness) -> None:
    refused = service_token(h, "https://orders.example.com/" + "a" * 9000)
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_request"


def test_an_empty_resource_is_absent(h: Harness) -> None:
    apis(h)
    issued = body(service_token(h, ""))
    assert claims(issued["access_token"])["aud"] == ids(h)["service_id"]


def test_resource_in_the_url_and_the_body_is_refused(h: Harness) -> None:
    apis(h)
    h.login("alice", PASSWORD)
    first_party(h)
    pairs = [
        ("client_id", ids(h)["client_id"]),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ]
    answer = h.client.post(
        "/oauth2/authorize?" + urlencode([("resource", ORDERS)]),
        data=urlencode([*pairs, ("resource", BILLING)]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400  # a repeated parameter: RFC 6749 §3.1, error page
    assert rows(h, "oauth_codes") == 0


def test_other_parameters_still_may_not_repeat(h: Harness) -> None:
    apis(h)
    refused = post_token(
        h,
        [("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
        auth=basic(*batch(h)),
    )
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_request")


# -- consent --------------------------------------------------------------------------------


def test_the_consent_page_names_the_apis_and_consent_covers_them(h: Harness) -> None:
    apis(h)
    h.login("alice", PASSWORD)

    def ask(*resources: str) -> Any:
        return authorize_pairs(
            h,
            [
                ("client_id", ids(h)["client_id"]),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", "openid"),
                *(("resource", r) for r in resources),
            ],
        )

    handle = handle_of(ask(ORDERS))
    page = h.client.get(f"/consent?authorization={handle}")
    html = page.get_data(as_text=True)
    assert "Orders" in html and ORDERS in html
    allowed = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    code = query(allowed)["code"]
    assert claims(body(exchange_for(h, code))["access_token"])["aud"] == ORDERS
    # allowed once: the same API again needs no page; another API asks again
    assert "code" in query(ask(ORDERS))
    assert ask(BILLING).headers["Location"].startswith("/consent?")
    assert "code" in query(ask())  # the scopes alone were allowed too


def test_a_consent_without_resources_does_not_cover_one(h: Harness) -> None:
    apis(h)
    h.login("alice", PASSWORD)
    base = [
        ("client_id", ids(h)["client_id"]),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
    ]
    handle = handle_of(authorize_pairs(h, base))
    page = h.client.get(f"/consent?authorization={handle}")
    h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    again = authorize_pairs(h, [*base, ("resource", ORDERS)])
    assert again.headers["Location"].startswith("/consent?")


# -- introspection by resource servers (RFC 7662 §2.1) -------------------------------------


def test_the_resource_server_the_client_and_no_one_else_may_introspect(h: Harness) -> None:
    credentials = apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, scope="openid profile")))
    access = issued["access_token"]
    by_rs = introspect(h, access, credentials["Orders"])
    assert by_rs["active"] is True
    assert by_rs["aud"] == ORDERS and by_rs["client_id"] == ids(h)["client_id"]
    assert by_rs["username"] == "alice" and by_rs["scope"] == "openid profile"
    assert introspect(h, access, wiki(h))["active"] is True  # its client
    # another API, an unrelated service: nothing, not even that it exists (§2.2, §4)
    assert introspect(h, access, credentials["Billing"]) == {"active": False}
    assert introspect(h, access, batch(h)) == {"active": False}
    # a resource server never learns about refresh tokens: they are its client's
    assert introspect(h, issued["refresh_token"], credentials["Orders"]) == {"active": False}
    assert introspect(h, issued["refresh_token"], wiki(h))["active"] is True


def test_a_disabled_resource_server_cannot_introspect(h: Harness) -> None:
    credentials = apis(h)
    access = body(service_token(h, ORDERS))["access_token"]
    with h.app.services.db.session(write=True) as db, db.begin():
        server = directory.resource_server(db, ORDERS)
        assert server is not None
        server.enabled = False
    answer = h.client.post(
        "/oauth2/introspect", data={"token": access}, headers=basic(*credentials["Orders"])
    )
    assert answer.status_code == 401


def test_an_api_that_gave_up_the_identifier_no_longer_sees_its_tokens(h: Harness) -> None:
    credentials = apis(h)
    access = body(service_token(h, ORDERS))["access_token"]
    with h.app.services.db.session(write=True) as db, db.begin():
        server = directory.resource_server(db, ORDERS)
        assert server is not None
        directory.set_resources(db, server, [], h.clock())
    assert introspect(h, access, credentials["Orders"]) == {"active": False}


def end(h: Harness, what: str, access: str, refresh: str | None) -> None:
    if what == "revoked":
        h.client.post("/oauth2/revoke", data={"token": access}, headers=basic(*wiki(h)))
        return
    with h.app.services.db.session(write=True) as db, db.begin():
        if what == "user disabled":
            user = db.scalars(select(User).where(User.username == "alice")).one()
            user.disabled = True
        elif what == "client disabled":
            app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
            app.enabled = False


@pytest.mark.parametrize("what", ["revoked", "expired", "user disabled", "client disabled"])
def test_ended_tokens_are_inactive_for_the_resource_server_at_once(h: Harness, what: str) -> None:
    credentials = apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS)))
    access = issued["access_token"]
    assert introspect(h, access, credentials["Orders"])["active"] is True
    if what == "expired":
        h.clock.advance(seconds=h.settings.access_token_lifetime + 1)
    else:
        end(h, what, access, issued.get("refresh_token"))
    assert introspect(h, access, credentials["Orders"]) == {"active": False}


def test_opaque_tokens_carry_their_audience_too(h: Harness) -> None:
    credentials = apis(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.scalars(select(Application).where(Application.name == "Batch")).one()
        app.access_token_format = "opaque"
    access = body(service_token(h, BILLING))["access_token"]
    assert access.count(".") == 0
    seen = introspect(h, access, credentials["Billing"])
    assert seen["active"] is True and seen["aud"] == BILLING
    assert introspect(h, access, credentials["Orders"]) == {"active": False}


# -- userinfo ---------------------------------------------------------------------------


def test_userinfo_refuses_a_token_made_for_another_resource(h: Harness) -> None:
    apis(h)
    for_api = body(exchange_for(h, code_for(h, ORDERS)))["access_token"]
    refused = h.client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {for_api}"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert "sub" not in body(refused)
    for_us = body(exchange_for(h, code_for(h)))["access_token"]
    allowed = h.client.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {for_us}"})
    assert allowed.status_code == 200 and body(allowed)["sub"].startswith("user-")


# -- registration ---------------------------------------------------------------------------


def admin(h: Harness) -> PassportClient:
    """An administrator's API client (the ``admin`` right of the Passport application)."""
    return h.administrator("root", "admin")


def test_resource_identifiers_through_the_api(h: Harness) -> None:
    client = admin(h)
    made = client.post("/Applications/create", data={"name": "Orders", "resources": ORDERS})
    assert made.status_code == 200, made.get_data(as_text=True)
    assert body(made)["Data"]["Application"]["Resources"] == [ORDERS]
    shown = body(client.get("/Applications/get?application=Orders"))
    assert shown["Data"]["Application"]["Resources"] == [ORDERS]
    # one resource, one resource server
    taken = client.post("/Applications/update", data={"application": "Wiki", "resources": ORDERS})
    assert taken.status_code == 409
    changed = client.post(
        "/Applications/update",
        data={"application": "Orders", "resources": f"{BILLING} {ORDERS}"},
    )
    assert body(changed)["Data"]["Application"]["Resources"] == [BILLING, ORDERS]
    emptied = client.post("/Applications/update", data={"application": "Orders", "resources": ""})
    assert body(emptied)["Data"]["Application"]["Resources"] == []
    # now free for another application
    moved = client.post("/Applications/update", data={"application": "Wiki", "resources": ORDERS})
    assert moved.status_code == 200


# What registration refuses: the malformed values (the others are well-formed URIs that
# are simply not registered; a list parameter splits at spaces and commas).
MALFORMED = {
    k: v
    for k, v in HOSTILE.items()
    if k not in ("unregistered", "a disabled application's", "trailing slash", "space", "sql")
    and k != "newline"
}


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
def test_invalid_resource_identifiers_are_refused_at_registration(h: Harness, value: str) -> None:
    client = admin(h)
    for path, params in (
        ("/Applications/update", {"application": "Wiki"}),
        ("/Applications/create", {"name": "Notes"}),
    ):
        answer = client.post(path, data={**params, "resources": value})
        assert answer.status_code == 400, (path, value, answer.get_data(as_text=True))
        assert body(answer)["ClientExceptions"][0]["Source"] == "resources"
    assert rows(h, "application_resources") == 0
    with h.app.services.db.session() as db:
        assert "Notes" not in db.scalars(select(Application.name)).all()


def test_resource_identifiers_through_the_cli(h: Harness) -> None:
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    made = run("app", "add", "Orders", "--resource", ORDERS, "--resource", BILLING, "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)[0]["Resources"] == [BILLING, ORDERS]
    assert run("app", "update", "Wiki", "--resource", ORDERS).exit_code == 1  # taken
    assert run("app", "update", "Orders", "--resource", ORDERS).exit_code == 0
    assert json.loads(run("app", "show", "Orders", "--json").output)[0]["Resources"] == [ORDERS]
    refused = run("app", "update", "Orders", "--resource", "javascript:alert(1)")
    assert refused.exit_code == 1 and "resource identifier" in refused.output
    assert run("app", "update", "Orders", "--no-resources").exit_code == 0
    assert json.loads(run("app", "show", "Orders", "--json").output)[0]["Resources"] == []
    both = run("app", "update", "Orders", "--no-resources", "--resource", ORDERS)
    assert both.exit_code == 2


def test_deleting_the_application_frees_its_identifiers(h: Harness) -> None:
    apis(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        server = directory.resource_server(db, ORDERS)
        assert server is not None
        directory.delete_application(db, server, h.clock())
    assert rows(h, "application_resources") == 2
    refused = service_token(h, ORDERS)
    assert body(refused)["error"] == "invalid_target"


def test_token_helper_still_works_without_resources(h: Harness) -> None:
    """The plain helpers (one value per name) keep working: nothing else changed."""
    answer = token(
        h,
        auth=False,
        grant_type="client_credentials",
        client_id=ids(h)["service_id"],
        client_secret=ids(h)["service_secret"],
    )
    assert answer.status_code == 200


# -- pushed authorization requests (RFC 9126) carry every resource ---------------------


def test_a_pushed_request_keeps_every_resource(h: Harness) -> None:
    """``resource`` repeated in a push (RFC 9126 §2.1: any authorization request
    parameter) is kept whole, checked, and reaches the code and the token."""
    apis(h)
    h.login("alice", PASSWORD)
    first_party(h)
    pairs = [
        ("client_id", ids(h)["client_id"]),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("resource", ORDERS),
        ("resource", BILLING),
    ]
    headers = {**basic(*wiki(h)), "Content-Type": "application/x-www-form-urlencoded"}
    refused = h.client.post(
        "/oauth2/par", data=urlencode([*pairs, ("resource", OLD)]), headers=headers
    )
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")
    pushed = h.client.post("/oauth2/par", data=urlencode(pairs), headers=headers)
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    answer = h.client.get(
        "/oauth2/authorize?"
        + urlencode({"client_id": ids(h)["client_id"], "request_uri": body(pushed)["request_uri"]})
    )
    code = query(answer)["code"]
    assert claims(body(exchange_for(h, code))["access_token"])["aud"] == [ORDERS, BILLING]


# -- the device grant (RFC 8628) names no resource ----------------------------------------


def test_the_device_grant_cannot_gain_a_resource_at_the_token_endpoint(h: Harness) -> None:
    """A device authorization holds no resource, so asking for one when redeeming it would
    widen the grant (RFC 8707 §2.2): ``invalid_target``, and the device code still works."""
    apis(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki_app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        wiki_app.device_grant = True
    started = h.client.post(
        "/oauth2/device_authorization", data={"scope": "openid"}, headers=basic(*wiki(h))
    )
    assert started.status_code == 200, started.get_data(as_text=True)
    device = body(started)
    browser = PassportClient(h.app)
    browser.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    form = form_of(browser.get("/device"))
    browser.post("/device", data={**form, "user_code": device["user_code"]})
    browser.post("/device", data={**form, "user_code": device["user_code"], "decision": "allow"})
    h.clock.advance(seconds=5)
    grant = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device["device_code"]),
    ]
    refused = post_token(h, [*grant, ("resource", ORDERS)])
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")
    issued = post_token(h, grant)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    assert claims(body(issued)["access_token"])["aud"] == ids(h)["client_id"]


# -- an identifier's next owner inherits nothing (security review M1) ---------------------


def consented_grant(h: Harness, resource: str, scope: str = "openid") -> dict[str, Any]:
    """Alice allows Wiki (not first-party: the consent page) for ``resource``; its tokens."""
    h.login("alice", PASSWORD)
    handle = handle_of(ask_for(h, resource, scope=scope))
    page = h.client.get(f"/consent?authorization={handle}")
    allowed = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    issued = body(exchange_for(h, query(allowed)["code"]))
    assert "refresh_token" in issued, issued
    return issued


def ask_for(h: Harness, *resources: str, scope: str = "openid", **extra: str) -> Any:
    return authorize_pairs(
        h,
        [
            ("client_id", ids(h)["client_id"]),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", scope),
            ("state", "s1"),
            *(("resource", r) for r in resources),
            *extra.items(),
        ],
    )


def newcomer(client: PassportClient, name: str, resource: str) -> tuple[str, str]:
    made = client.post("/Applications/create", data={"name": name, "resources": resource})
    assert made.status_code == 200, made.get_data(as_text=True)
    data = body(made)["Data"]
    return data["Application"]["ClientId"], data["ClientSecret"]


def assert_nothing_inherited(h: Harness, issued: dict[str, Any], new: tuple[str, str]) -> None:
    assert introspect(h, issued["access_token"], new) == {"active": False}
    refreshed = refresh_for(h, issued["refresh_token"])
    assert (refreshed.status_code, body(refreshed)["error"]) == (400, "invalid_grant")
    again = query(ask_for(h, ORDERS, prompt="none"))
    assert again.get("error") == "consent_required", again


def test_a_deleted_api_s_identifier_re_registered_inherits_nothing(h: Harness) -> None:
    """RFC 8707 §2: the audience restricts a token to the resource server it was issued
    for; a later owner of the identifier is another one."""
    apis(h)
    issued = consented_grant(h, ORDERS)
    client = admin(h)
    assert client.post("/Applications/delete", data={"application": "Orders"}).status_code == 200
    assert_nothing_inherited(h, issued, newcomer(client, "NewUnrelated", ORDERS))


def test_an_identifier_moved_to_another_api_inherits_nothing(h: Harness) -> None:
    apis(h)
    issued = consented_grant(h, ORDERS)
    also = body(refresh_for(h, issued["refresh_token"]))  # a rotated family, still alive
    client = admin(h)
    emptied = client.post("/Applications/update", data={"application": "Orders", "resources": ""})
    assert emptied.status_code == 200
    evil = newcomer(client, "Evil", ORDERS)
    assert introspect(h, also["access_token"], evil) == {"active": False}
    assert_nothing_inherited(h, {**issued, "refresh_token": also["refresh_token"]}, evil)


def test_a_moved_identifier_leaves_the_client_s_other_grants_alone(h: Harness) -> None:
    apis(h)
    other = body(exchange_for(h, code_for(h, BILLING)))
    plain = body(exchange_for(h, code_for(h)))
    client = admin(h)
    client.post("/Applications/update", data={"application": "Orders", "resources": ""})
    assert introspect(h, other["access_token"], apis(h)["Billing"])["active"] is True
    assert introspect(h, plain["access_token"], wiki(h))["active"] is True
    assert refresh_for(h, other["refresh_token"]).status_code == 200


def test_allowing_an_api_deleted_while_the_consent_page_was_shown_gives_no_code(
    h: Harness,
) -> None:
    apis(h)
    h.login("alice", PASSWORD)
    handle = handle_of(ask_for(h, ORDERS))
    page = h.client.get(f"/consent?authorization={handle}")
    client = admin(h)
    assert client.post("/Applications/delete", data={"application": "Orders"}).status_code == 200
    newcomer(client, "NewUnrelated", ORDERS)
    allowed = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    assert "code=" not in allowed.headers.get("Location", "")
    assert rows(h, "oauth_codes") == 0


def test_allowing_an_api_disabled_while_the_consent_page_was_shown_is_invalid_target(
    h: Harness,
) -> None:
    apis(h)
    h.login("alice", PASSWORD)
    handle = handle_of(ask_for(h, ORDERS))
    page = h.client.get(f"/consent?authorization={handle}")
    assert (
        admin(h)
        .post("/Applications/setEnabled", data={"application": "Orders", "enabled": "false"})
        .status_code
        == 200
    )
    allowed = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    assert query(allowed).get("error") == "invalid_target"
    assert rows(h, "oauth_codes") == 0


def test_a_code_for_an_api_disabled_before_the_token_request_is_refused(h: Harness) -> None:
    """The code's own resources are checked at the token endpoint, not only those the
    token request names (RFC 8707 §2)."""
    apis(h)
    code = code_for(h, ORDERS)
    with h.app.services.db.session(write=True) as db, db.begin():
        server = directory.resource_server(db, ORDERS)
        assert server is not None
        server.enabled = False
    refused = exchange_for(h, code)
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")
    assert rows(h, "oauth_tokens") == 0


def test_an_unused_code_for_a_removed_identifier_is_dropped(h: Harness) -> None:
    apis(h)
    code = code_for(h, ORDERS)
    client = admin(h)
    client.post("/Applications/update", data={"application": "Orders", "resources": ""})
    newcomer(client, "NewUnrelated", ORDERS)
    refused = exchange_for(h, code)
    assert (refused.status_code, body(refused)["error"]) == (400, "invalid_grant")


# -- registration refuses misleading identifiers (review I1) ------------------------------

MISLEADING = {
    "user information": "https://u@orders.example.com/api",
    "a host behind user information": "https://api-a.example.com@evil.example",
    "password": "https://u:p@orders.example.com/api",
    "query": ORDERS + "?tenant=1",
    "empty query": ORDERS + "?",
}


def own_addresses(h: Harness) -> list[str]:
    base = h.settings.public_url.rstrip("/")
    return [base, base + "/", base + "/oauth2/userinfo"]


def test_misleading_identifiers_are_refused_through_the_api(h: Harness) -> None:
    client = admin(h)
    for value in [*MISLEADING.values(), *own_addresses(h)]:
        for path, params in (
            ("/Applications/update", {"application": "Wiki"}),
            ("/Applications/create", {"name": "Notes"}),
        ):
            answer = client.post(path, data={**params, "resources": value})
            assert answer.status_code == 400, (path, value, answer.get_data(as_text=True))
            assert body(answer)["ClientExceptions"][0]["Source"] == "resources"
    assert rows(h, "application_resources") == 0


def test_misleading_identifiers_are_refused_through_the_cli(h: Harness) -> None:
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    for value in [*MISLEADING.values(), *own_addresses(h)]:
        refused = run("app", "add", "Notes", "--resource", value)
        assert refused.exit_code == 1 and "resource identifier" in refused.output, refused.output
        refused = run("app", "update", "Wiki", "--resource", value)
        assert refused.exit_code == 1 and "resource identifier" in refused.output, refused.output
    assert rows(h, "application_resources") == 0


# -- Passport's own address, whatever spells it (review: own origin off by default) ------

SERVED = "http://127.0.0.1:8123"  # a SQLite set-up without a public URL, on port 8123
PUBLIC = "https://sso.example.com"
OWN = {
    # no PASSPORT_PUBLIC_URL: the effective issuer is the served address
    "": [SERVED, SERVED + "/", SERVED + "/oauth2/userinfo", "http://localhost:8123/api"],
    # a trailing dot names the same host (RFC 1034 §3.1); :443 is https's own port
    PUBLIC: [
        PUBLIC + "./",
        PUBLIC + ".:443",
        PUBLIC + ".:443/oauth2/userinfo",
        PUBLIC + ":443/api",
        "https://sso.example.com../x",
    ],
}
ELSEWHERE = {
    "": ["http://127.0.0.1:8124/api", "http://localhost:9/api"],
    PUBLIC: ["https://api.sso.example.com/", PUBLIC + ":8443/api"],
}


def admin_at(h: Harness, base: str) -> PassportClient:
    """:func:`admin`, speaking to Passport at ``base`` (its effective issuer)."""
    client = h.new_client()
    at: dict[str, Any] = {"base_url": base, "headers": {"Origin": base}}
    form = {"username": "root", "password": STRONG}
    assert client.post("/Account/register", data=form, **at).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        right = directory.find_permission(db, passport, "admin")
        assert right is not None
        directory.grant(db, right, user=directory.get_user(db, "root"))
    assert client.post("/Account/login", data=form, **at).status_code == 200
    return client


@pytest.mark.parametrize("public_url", ["", PUBLIC], ids=["no public URL", "public URL"])
def test_passports_own_address_is_refused_through_the_api(factory: Any, public_url: str) -> None:
    """RFC 8707 §2 registration: Passport itself is no resource server — with no
    ``PASSPORT_PUBLIC_URL`` (the SQLite default; the check was off) its served address,
    and the public URL's host with a trailing dot or its default port spelled out."""
    h: Harness = factory("sqlite", public_url=public_url, port=8123, key_encryption_key=KEK)
    base = public_url or SERVED
    client = admin_at(h, base)
    at: dict[str, Any] = {"base_url": base, "headers": {"Origin": base}}
    assert client.post("/Applications/create", data={"name": "Notes"}, **at).status_code == 200
    for value in OWN[public_url]:
        for path, params in (
            ("/Applications/create", {"name": "Other"}),
            ("/Applications/update", {"application": "Notes"}),
        ):
            answer = client.post(path, data={**params, "resources": value}, **at)
            assert answer.status_code == 400, (path, value, answer.get_data(as_text=True))
            assert body(answer)["ClientExceptions"][0]["Source"] == "resources"
            assert "own address" in answer.get_data(as_text=True)
    assert rows(h, "application_resources") == 0
    for value in ELSEWHERE[public_url]:
        answer = client.post(
            "/Applications/update", data={"application": "Notes", "resources": value}, **at
        )
        assert answer.status_code == 200, (value, answer.get_data(as_text=True))


@pytest.mark.parametrize("public_url", ["", PUBLIC], ids=["no public URL", "public URL"])
def test_passports_own_address_is_refused_through_the_cli(factory: Any, public_url: str) -> None:
    """The same rule in ``passport app add|update --resource``: the CLI's settings give
    the same effective issuer (``PASSPORT_PUBLIC_URL``, or the SQLite served address)."""
    h: Harness = factory("sqlite", public_url=public_url, port=8123, key_encryption_key=KEK)
    env = {
        "PASSPORT_PUBLIC_URL": public_url,
        "PASSPORT_PORT": "8123",
        "PASSPORT_HOST": "",
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
    }

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    assert run("app", "add", "Notes").exit_code == 0
    for value in OWN[public_url]:
        refused = run("app", "add", "Other", "--resource", value)
        assert refused.exit_code == 1 and "own address" in refused.output, (value, refused.output)
        refused = run("app", "update", "Notes", "--resource", value)
        assert refused.exit_code == 1 and "own address" in refused.output, (value, refused.output)
    assert rows(h, "application_resources") == 0
    for value in ELSEWHERE[public_url]:
        assert run("app", "update", "Notes", "--resource", value).exit_code == 0, value


# -- the device authorization endpoint refuses resource (review I3) ----------------------


def test_resource_at_the_device_authorization_endpoint_is_invalid_target(h: Harness) -> None:
    """RFC 8707 §2 ``invalid_target``, rather than a device code whose token would not
    be for the API the client named."""
    apis(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki_app = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        wiki_app.device_grant = True
    for value in (ORDERS, "https://evil.example.com"):
        refused = h.client.post(
            "/oauth2/device_authorization",
            data={"scope": "openid", "resource": value},
            headers=basic(*wiki(h)),
        )
        assert (refused.status_code, body(refused)["error"]) == (400, "invalid_target")
    assert rows(h, "device_authorizations") == 0
    empty = h.client.post(
        "/oauth2/device_authorization",
        data={"scope": "openid", "resource": ""},
        headers=basic(*wiki(h)),
    )
    assert empty.status_code == 200  # an empty value is absent (RFC 6749 §3.1)


# -- introspection names the user only with the profile scope (review L3) ----------------


@pytest.mark.parametrize("scope", ["openid", "openid email"])
def test_introspection_gives_no_username_without_profile(h: Harness, scope: str) -> None:
    """OIDC Core §5.4: ``preferred_username`` is a ``profile`` claim; RFC 7662 §2.2 makes
    ``username`` optional.  Neither the API nor the client learns it otherwise."""
    credentials = apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, scope=scope)))
    for caller in (credentials["Orders"], wiki(h)):
        seen = introspect(h, issued["access_token"], caller)
        assert seen["active"] is True and "username" not in seen, seen
    seen = introspect(h, issued["refresh_token"], wiki(h))
    assert seen["active"] is True and "username" not in seen
    with_profile = body(exchange_for(h, code_for(h, ORDERS, scope=scope + " profile")))
    assert introspect(h, with_profile["access_token"], credentials["Orders"])["username"] == "alice"


# -- the refresh grace window answers only the same request (review I2) ------------------


def test_a_retry_in_the_grace_window_must_ask_for_the_same(h: Harness) -> None:
    """RFC 9700 §4.14.2's grace is for a retry: another ``resource`` (RFC 8707 §2.2) or
    ``scope`` (RFC 6749 §6) would get the first request's tokens under its name."""
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS, BILLING, scope="openid profile")))
    old = issued["refresh_token"]
    first = refresh_for(h, old, ORDERS)
    assert first.status_code == 200
    assert claims(body(first)["access_token"])["aud"] == ORDERS
    same = refresh_for(h, old, ORDERS)
    assert body(same)["access_token"] == body(first)["access_token"]
    other = refresh_for(h, old, BILLING)
    assert (other.status_code, body(other)["error"]) == (400, "invalid_grant")
    wider = refresh_for(h, old)  # both resources: not what the rotation answered
    assert (wider.status_code, body(wider)["error"]) == (400, "invalid_grant")
    narrower = post_token(
        h,
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", old),
            ("resource", ORDERS),
            ("scope", "openid"),
        ],
    )
    assert (narrower.status_code, body(narrower)["error"]) == (400, "invalid_grant")
    # the refusals do not end the family: the new refresh token still works
    assert refresh_for(h, body(first)["refresh_token"]).status_code == 200


@pytest.mark.parametrize("what", ["api disabled", "user disabled"])
def test_a_retry_in_the_grace_window_is_checked_again(h: Harness, what: str) -> None:
    apis(h)
    issued = body(exchange_for(h, code_for(h, ORDERS)))
    assert refresh_for(h, issued["refresh_token"]).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        if what == "api disabled":
            server = directory.resource_server(db, ORDERS)
            assert server is not None
            server.enabled = False
        else:
            db.scalars(select(User).where(User.username == "alice")).one().disabled = True
    again = refresh_for(h, issued["refresh_token"])
    expected = "invalid_target" if what == "api disabled" else "invalid_grant"
    assert (again.status_code, body(again)["error"]) == (400, expected)
