"""Pushed Authorization Requests (RFC 9126), in process on SQLite and on PostgreSQL with
Redis sessions: ``/oauth2/par`` (§2) and ``/oauth2/authorize`` with its ``request_uri``
(§4), the per-application and server-wide "PAR required" (§5-6), and discovery.
"""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import ids
from oidc_support import pkce
from oidc_support import query
from oidc_support import rows
from oidc_support import seed
from oidc_support import token
from oidc_support import wiki_request
from passport.cli import cli
from passport.oidc.authorization import AUTHORIZATION_PARAMETERS
from passport.oidc.pushed import LIFETIME
from passport.services.applications import find_by_name
from passport.services.housekeeping import purge_expired
from passport.storage.models import AuditEvent
from passport.storage.models import PushedAuthorizationRequest

from support import ORIGIN
from support import Harness
from support import PassportClient

URN = "urn:ietf:params:oauth:request_uri:"


def basic(h: Harness) -> dict[str, str]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def push(h: Harness, headers: dict[str, str] | None = None, **data: str) -> Any:
    """POST the Wiki's authorization request to the PAR endpoint (secret_basic)."""
    return h.client.post("/oauth2/par", data=data, headers=basic(h) if headers is None else headers)


def pushed_uri(h: Harness, **data: str) -> str:
    answer = push(h, **wiki_request(h, **data))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(body(answer)["request_uri"])


def use(h: Harness, request_uri: str, client_id: str | None = None, **extra: str) -> Any:
    """The authorization request of RFC 9126 §4: ``client_id`` and ``request_uri``."""
    cid = ids(h)["client_id"] if client_id is None else client_id
    return authorize(h, client_id=cid, request_uri=request_uri, **extra)


def sign_in(h: Harness) -> None:
    answer = h.login("alice", PASSWORD)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def set_app(h: Harness, name: str = "Wiki", **values: Any) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        for key, value in values.items():
            setattr(app, key, value)


def error_page(answer: Any, code: str) -> None:
    """An error page, never a redirect (RFC 6749 §4.1.2.1)."""
    assert answer.status_code == 400, answer.status_code
    assert "Location" not in answer.headers and answer.mimetype == "text/html"
    assert f"<code>{code}</code>" in answer.get_data(as_text=True)


# -- the push (§2) ------------------------------------------------------------------------


def test_push_answers_201_with_a_fresh_request_uri_kept_only_as_its_hash(h: Harness) -> None:
    answer = push(h, **wiki_request(h))
    assert answer.status_code == 201 and answer.mimetype == "application/json"
    assert answer.headers["Cache-Control"] == "no-store"
    document = body(answer)
    assert set(document) == {"request_uri", "expires_in"}
    assert document["expires_in"] == LIFETIME == 60
    uri = document["request_uri"]
    assert uri.startswith(URN) and len(uri) == len(URN) + 43
    assert uri != body(push(h, **wiki_request(h)))["request_uri"]
    with h.app.services.db.session() as db:
        stored = list(db.scalars(select(PushedAuthorizationRequest)))
    assert len(stored) == 2
    assert hashlib.sha256(uri.encode()).hexdigest() in {r.request_uri_hash for r in stored}
    assert all(uri[len(URN) :] not in r.request_uri_hash + r.parameters for r in stored)
    assert all("client_secret" not in r.parameters for r in stored)


def test_pushed_request_then_authorize_gives_a_code_the_client_exchanges(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    verifier, challenge = pkce()
    uri = pushed_uri(h, nonce="n-1", code_challenge=challenge, code_challenge_method="S256")
    answer = use(h, uri)
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    values = query(answer)
    assert values["state"] == "st" and values["iss"] == ORIGIN
    issued = body(exchange(h, values["code"], code_verifier=verifier))
    assert "id_token" in issued, issued
    payload = issued["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["nonce"] == "n-1"
    assert rows(h, "pushed_authorization_requests") == 0


def test_the_pushed_parameters_count_and_those_of_the_url_are_ignored(h: Harness) -> None:
    """RFC 9126 §4 with RFC 9101 §6.3: only the pushed request counts — a redirect URI,
    state or scope added to the URL changes nothing."""
    sign_in(h)
    first_party(h)
    uri = pushed_uri(h, state="pushed", scope="openid")
    answer = use(
        h,
        uri,
        redirect_uri="https://evil.example/cb",
        state="injected",
        scope="openid email",
        response_mode="form_post",
        prompt="none",
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    assert query(answer)["state"] == "pushed"
    issued = body(exchange(h, query(answer)["code"]))
    assert issued["scope"] == "openid"


def test_a_public_client_pushes_with_its_client_id_alone(h: Harness) -> None:
    sign_in(h)
    verifier, challenge = pkce()
    spa = ids(h)["public_client_id"]
    params = {
        "client_id": spa,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    answer = push(h, headers={}, **params)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    code = query(use(h, body(answer)["request_uri"], client_id=spa))["code"]
    issued = token(
        h,
        auth=False,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=spa,
        code_verifier=verifier,
    )
    assert issued.status_code == 200, issued.get_data(as_text=True)


@pytest.mark.parametrize(
    "how", ["nothing", "confidential client_id alone", "wrong secret", "unknown", "bad Basic"]
)
def test_push_without_client_authentication_is_invalid_client(h: Harness, how: str) -> None:
    """§2.1: client authentication as at the token endpoint (RFC 6749 §2.3)."""
    params = {k: v for k, v in wiki_request(h).items() if k != "client_id"}
    wiki = ids(h)["client_id"]
    headers, extra = {
        "nothing": ({}, {}),
        "confidential client_id alone": ({}, {"client_id": wiki}),
        "wrong secret": ({}, {"client_id": wiki, "client_secret": "wrong"}),
        "unknown": ({}, {"client_id": "nobody", "client_secret": "x"}),
        "bad Basic": ({"Authorization": "Basic !!!"}, {}),
    }[how]
    answer = push(h, headers=headers, **params, **extra)
    assert answer.status_code == 401, (how, answer.get_data(as_text=True))
    assert body(answer)["error"] == "invalid_client"
    assert rows(h, "pushed_authorization_requests") == 0


def test_client_id_is_required_beside_basic_authentication(h: Harness) -> None:
    """RFC 9126 §2.1: client_id "is similarly required in a pushed authorization
    request"."""
    answer = push(h, **{k: v for k, v in wiki_request(h).items() if k != "client_id"})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert body(answer)["error"] == "invalid_request"
    assert "client_id" in body(answer)["error_description"]
    # empty, it names no client beside the header's: client authentication refuses it
    answer = push(h, **wiki_request(h, client_id=""))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
    assert rows(h, "pushed_authorization_requests") == 0


def test_expired_pushed_requests_go_when_the_next_one_is_pushed(h: Harness) -> None:
    pushed_uri(h)
    h.clock.advance(seconds=LIFETIME)
    pushed_uri(h)
    assert rows(h, "pushed_authorization_requests") == 1


def test_push_with_a_disabled_application_is_invalid_client(h: Harness) -> None:
    set_app(h, enabled=False)
    assert push(h, **wiki_request(h)).status_code == 401


def test_basic_for_one_client_and_client_id_of_another_is_refused(h: Harness) -> None:
    answer = push(h, **wiki_request(h, client_id=ids(h)["public_client_id"]))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"


def test_request_uri_inside_a_pushed_request_is_refused(h: Harness) -> None:
    """RFC 9126 §2.1: "The request_uri authorization request parameter ... MUST NOT be
    provided" — whatever its value."""
    earlier = pushed_uri(h)
    for value in (earlier, "https://rp.example/request.jwt", ""):
        answer = push(h, **wiki_request(h, request_uri=value))
        assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
        assert "request_uri" in body(answer)["error_description"]
    assert rows(h, "pushed_authorization_requests") == 1


def test_get_on_the_par_endpoint_is_405(h: Harness) -> None:
    answer = h.client.get("/oauth2/par?" + urlencode(wiki_request(h)), headers=basic(h))
    assert answer.status_code == 405 and answer.headers["Allow"] == "OPTIONS, POST"
    assert body(answer)["error"] == "invalid_request"


# -- the same validation as /oauth2/authorize ---------------------------------------------

BAD_REQUESTS = [
    {"response_type": "token"},
    {"response_type": ""},
    {"scope": "nothing-known"},
    {"scope": "x" * 501},
    {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
    {"code_challenge": "a" * 43},
    {"code_challenge": "short", "code_challenge_method": "S256"},
    {"max_age": "-1"},
    {"max_age": "٣"},
    {"max_age": "99999999999"},
    {"prompt": "none login"},
    {"response_mode": "fragment"},
    {"request": "e30.e30."},
    {"state": "s" * 2049},
    {"nonce": "n" * 256},
    {"login_hint": "l" * 255},
]


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=lambda bad: ",".join(bad))
def test_a_bad_pushed_request_gets_the_error_authorize_would_send(
    h: Harness, bad: dict[str, str]
) -> None:
    """RFC 9126 §2.1 ("validate the pushed request as it would an authorization request")
    and §2.3: the same error code as the authorization endpoint's redirect, as JSON 400."""
    at_authorize = query(authorize(h, **wiki_request(h, **bad)))
    answer = push(h, **wiki_request(h, **bad))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert body(answer)["error"] == at_authorize["error"]
    assert body(answer)["error_description"] == at_authorize["error_description"]
    assert rows(h, "pushed_authorization_requests") == 0


def test_a_public_client_pushing_without_pkce_is_refused_as_at_authorize(h: Harness) -> None:
    spa = ids(h)["public_client_id"]
    params = {**wiki_request(h), "client_id": spa}
    answer = push(h, headers={}, **params)
    assert answer.status_code == 400
    assert body(answer)["error"] == query(authorize(h, **params))["error"] == "invalid_request"


@pytest.mark.parametrize(
    "redirect_uri", ["https://evil.example/cb", "", REDIRECT + "/", REDIRECT.upper()]
)
def test_an_unregistered_redirect_uri_is_refused_and_nothing_is_redirected(
    h: Harness, redirect_uri: str
) -> None:
    assert authorize(h, **wiki_request(h, redirect_uri=redirect_uri)).status_code == 400
    answer = push(h, **wiki_request(h, redirect_uri=redirect_uri))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
    assert "Location" not in answer.headers


# -- hostile input ------------------------------------------------------------------------


def test_a_repeated_parameter_is_refused(h: Harness) -> None:
    raw = urlencode([*wiki_request(h).items(), ("scope", "openid email")])
    answer = h.client.post(
        "/oauth2/par",
        data=raw,
        headers={**basic(h), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"


def test_parameters_in_the_url_do_not_count(h: Harness) -> None:
    """§2.1: the request is the form body; a client secret in the URL is refused."""
    answer = h.client.post("/oauth2/par?client_secret=leak", data=wiki_request(h), headers=basic(h))
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_request"
    answer = h.client.post(
        "/oauth2/par?response_type=token", data=wiki_request(h), headers=basic(h)
    )
    assert answer.status_code == 201


@pytest.mark.parametrize(
    ("value", "status"),
    [("x" * 8193, 400), ("a\x00b", 400)],
    ids=["over 8192", "NUL"],
)
def test_a_malformed_value_is_refused(h: Harness, value: str, status: int) -> None:
    answer = push(h, **wiki_request(h, state=value))
    assert answer.status_code == status and body(answer)["error"] == "invalid_request"


def test_a_body_too_large_is_413(h: Harness) -> None:
    filler = {f"x{n}": "y" * 8000 for n in range(10)}
    answer = push(h, **wiki_request(h), **filler)
    assert answer.status_code == 413 and body(answer)["error"] == "invalid_request"


def test_a_request_too_large_to_keep_is_refused_not_cut(h: Harness) -> None:
    # Parameters the authorization endpoint reads, too long together (unknown prompt
    # values are ignored there, and a method without a challenge is not read).
    big = {"prompt": "login " * 1300, "code_challenge_method": "y" * 8000}
    answer = push(h, **wiki_request(h, **big))
    assert answer.status_code == 400 and "too large" in body(answer)["error_description"]
    assert rows(h, "pushed_authorization_requests") == 0


def stored_parameters(h: Harness) -> list[dict[str, Any]]:
    with h.app.services.db.session() as db:
        kept = db.scalars(select(PushedAuthorizationRequest.parameters)).all()
    return [json.loads(text) for text in kept]


def test_only_the_parameters_the_authorization_endpoint_reads_are_kept(h: Harness) -> None:
    """F1: parameters that no rule reads are ignored (RFC 6749 §3.1) and not stored, so a
    push cannot park 32 KB of filler for a minute; what is read survives the trip."""
    sign_in(h)
    first_party(h)
    filler = {f"x{n}": "y" * 8000 for n in range(4)}
    answer = push(h, **wiki_request(h, nonce="n-1", login_hint="alice"), **filler)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    [kept] = stored_parameters(h)
    assert set(kept) == {
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "login_hint",
    }
    assert set(kept) <= AUTHORIZATION_PARAMETERS
    assert kept["nonce"] == "n-1"
    assert len(json.dumps(kept)) < 1000
    answer = use(h, body(answer)["request_uri"])
    assert query(answer)["state"] == "st"


def public_request(h: Harness, **extra: str) -> dict[str, str]:
    """A valid authorization request of the public Spa client (PKCE S256), to push."""
    _verifier, challenge = pkce()
    return {
        "client_id": ids(h)["public_client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def public_push(h: Harness, ip: str = "192.0.2.1") -> Any:
    return h.client.post("/oauth2/par", data=public_request(h), environ_base={"REMOTE_ADDR": ip})


def test_live_pushed_requests_per_client_are_capped_without_dropping_one(
    factory: Any,
) -> None:
    """F1: anyone may push with a public client's client_id, so a client has at most
    ``max_pushed_requests_per_client`` live ones; one more is 429 (RFC 9126 §2.3) with
    Retry-After, and the requests already pushed still work."""
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, max_pushed_requests_per_client=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    first = [public_push(h, f"198.51.100.{n}") for n in range(3)]
    assert [a.status_code for a in first] == [201, 201, 201]
    refused = public_push(h, "198.51.100.9")
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert body(refused)["error"] == "invalid_request"
    assert 0 < int(refused.headers["Retry-After"]) <= LIFETIME
    assert rows(h, "pushed_authorization_requests") == 3
    # The other clients are not held back by this one's requests.
    assert push(h, **wiki_request(h)).status_code == 201
    # None already pushed was dropped: each is still taken once at authorize.
    spa = ids(h)["public_client_id"]
    sign_in(h)
    answer = use(h, body(first[0])["request_uri"], client_id=spa)
    assert answer.status_code == 302 and "code" in query(answer), answer.get_data(as_text=True)
    # Once one is used (or expires) there is room again.
    assert public_push(h).status_code == 201
    h.clock.advance(seconds=LIFETIME + 1)
    assert [public_push(h, f"203.0.113.{n}").status_code for n in range(3)] == [201] * 3


def test_one_address_fills_only_its_share_of_a_public_clients_pushes(factory: Any) -> None:
    """M2 (ASVS 5 §6.3.1: no malicious lockout; RFC 9126 §2.3): a stranger acting as a
    public client from one address holds at most ``max_live_requests_per_client_address``
    live pushes, so the client-wide cap is out of its reach and another address still
    gets through; a confidential client that proves its secret is not held to it."""
    h: Harness = factory(
        "sqlite", "db", key_encryption_key=KEK, max_live_requests_per_client_address=3
    )
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    assert [public_push(h).status_code for _ in range(3)] == [201] * 3
    refused = public_push(h)
    assert refused.status_code == 429, refused.get_data(as_text=True)
    assert body(refused)["error"] == "invalid_request"
    assert 0 < int(refused.headers["Retry-After"]) <= LIFETIME
    assert public_push(h, "::ffff:192.0.2.1").status_code == 429  # the same IPv4 client
    assert rows(h, "pushed_authorization_requests") == 3
    assert public_push(h, "192.0.2.2").status_code == 201  # the user elsewhere
    for _ in range(5):
        assert push(h, **wiki_request(h)).status_code == 201  # proven: the client cap only
    h.clock.advance(seconds=LIFETIME)
    assert public_push(h).status_code == 201  # its own pushes expired: room again


def test_the_share_per_address_comes_before_the_client_wide_cap(factory: Any) -> None:
    """M2: with the client-wide cap as the backstop, one address alone cannot reach it."""
    h: Harness = factory(
        "sqlite",
        "db",
        key_encryption_key=KEK,
        max_live_requests_per_client_address=2,
        max_pushed_requests_per_client=4,
    )
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    assert [public_push(h).status_code for _ in range(5)] == [201, 201, 429, 429, 429]
    assert [public_push(h, "192.0.2.2").status_code for _ in range(2)] == [201, 201]
    assert public_push(h, "192.0.2.3").status_code == 429  # the backstop: 4 live


def test_pushes_without_credentials_are_throttled_per_address(factory: Any) -> None:
    """F1: a push that carries no client credentials counts on its address's counter
    (the project's throttle: a limit per window, then growing delays) — 429 with
    Retry-After; another address, and a client that authenticates, go on."""
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, throttle_client_request_limit=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    assert [public_push(h).status_code for _ in range(3)] == [201] * 3
    limited = public_push(h)
    assert limited.status_code == 429 and body(limited)["error"] == "invalid_request"
    wait = int(limited.headers["Retry-After"])
    assert wait > 0
    # The same /64 is the same client (F3); another address is not held back.
    assert public_push(h, "2001:db8:1:2::1").status_code == 201
    assert public_push(h, "2001:db8:1:2::1").status_code == 201
    assert public_push(h, "2001:db8:1:2::1").status_code == 201
    assert public_push(h, "2001:db8:1:2:ffff::9").status_code == 429
    assert public_push(h, "192.0.2.2").status_code == 201
    for _ in range(5):
        assert push(h, **wiki_request(h)).status_code == 201  # authenticated: not counted
    h.clock.advance(seconds=wait + 1)
    assert public_push(h).status_code == 201


FAKE_CREDENTIALS: dict[str, tuple[dict[str, str], dict[str, str], int]] = {
    # how: (headers, body, status) — what each proves is nothing: a public client's push
    "client_assertion": ({}, {"client_assertion": "x"}, 401),
    "client_assertion_type": (
        {},
        {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        401,
    ),
    "empty client_secret": ({}, {"client_secret": ""}, 201),
    "Bearer header": ({"Authorization": "Bearer x"}, {}, 401),
    "bad Basic header": ({"Authorization": "Basic !!!"}, {}, 401),
}


@pytest.mark.parametrize("how", sorted(FAKE_CREDENTIALS))
def test_credentials_that_prove_nothing_do_not_skip_the_address_counter(
    factory: Any, how: str
) -> None:
    """M1 (RFC 9126 §2.3, ASVS 5 §6.3.1): what decides the address counter is what the
    credentials prove, not what the request carries.  An assertion (RFC 7521 §4.2) or a
    non-Basic Authorization header is an unsupported method, refused invalid_client
    (RFC 6749 §2.3, §5.2) and counted; an empty secret is ``none``, counted."""
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, throttle_client_request_limit=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    headers, extra, status = FAKE_CREDENTIALS[how]
    data = public_request(h, **extra)
    env = {"REMOTE_ADDR": "192.0.2.1"}
    for _ in range(3):
        answer = h.client.post("/oauth2/par", data=data, headers=headers, environ_base=env)
        assert answer.status_code == status, answer.get_data(as_text=True)
        if status == 401:
            assert body(answer)["error"] == "invalid_client"
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="passport"'
    limited = h.client.post("/oauth2/par", data=data, headers=headers, environ_base=env)
    assert limited.status_code == 429, limited.get_data(as_text=True)
    assert public_push(h).status_code == 429  # the same address, plain: over too
    assert public_push(h, "192.0.2.2").status_code == 201


def test_failed_authentication_counts_on_the_address(factory: Any) -> None:
    """M1: a wrong secret for the confidential client is counted too (only a proven
    secret is not), so guessing is no way around the address's counter."""
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, throttle_client_request_limit=3)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    data = {**wiki_request(h), "client_secret": "wrong"}
    env = {"REMOTE_ADDR": "192.0.2.1"}
    for _ in range(3):
        assert h.client.post("/oauth2/par", data=data, environ_base=env).status_code == 401
    assert h.client.post("/oauth2/par", data=data, environ_base=env).status_code == 429
    assert public_push(h).status_code == 429
    for _ in range(5):
        assert push(h, **wiki_request(h)).status_code == 201  # a proven secret: not counted


@pytest.mark.parametrize("endpoint", ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"])
@pytest.mark.parametrize("how", ["client_assertion", "Bearer header"])
def test_unsupported_client_authentication_is_invalid_client_everywhere(
    h: Harness, endpoint: str, how: str
) -> None:
    """The same client_auth.authenticate: an assertion or a Bearer header is a method
    Passport does not support, never silently ``none`` (RFC 6749 §2.3, §5.2)."""
    headers, extra, _status = FAKE_CREDENTIALS[how]
    data = {"client_id": ids(h)["public_client_id"], "token": "x", **extra}
    if endpoint == "/oauth2/token":
        data.update(grant_type="authorization_code", code="x", redirect_uri=REDIRECT)
    answer = h.client.post(endpoint, data=data, headers=headers)
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert body(answer)["error"] == "invalid_client"


def test_json_bodies_with_nested_or_typed_values_are_refused(h: Harness) -> None:
    for value in ({"a": "b"}, ["openid"], 1, True, None):
        document = {**wiki_request(h), "scope": value}
        answer = h.client.post(
            "/oauth2/par",
            data=json.dumps(document),
            headers={**basic(h), "Content-Type": "application/json"},
        )
        assert answer.status_code in (400, 415), (value, answer.status_code)
        assert body(answer)["error"] == "invalid_request"
    assert rows(h, "pushed_authorization_requests") == 0


def test_unicode_values_travel_unchanged(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    state = "état-✓-𝄞-\u202e"
    answer = use(h, pushed_uri(h, state=state))
    assert query(answer)["state"] == state


# -- the request_uri at the authorization endpoint (§4) -----------------------------------


def test_a_request_uri_is_bound_to_the_client_that_pushed_it(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    uri = pushed_uri(h)
    error_page(use(h, uri, client_id=ids(h)["public_client_id"]), "invalid_request_uri")
    error_page(use(h, uri, client_id=""), "invalid_client")
    # Another client's attempt does not burn it: the one that pushed it still can.
    assert "code" in query(use(h, uri))


def test_a_request_uri_is_used_once(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    uri = pushed_uri(h)
    assert "code" in query(use(h, uri))
    error_page(use(h, uri), "invalid_request_uri")


def test_reloading_the_login_page_carries_on_but_the_request_uri_starts_nothing_twice(
    h: Harness,
) -> None:
    """§4 "SHOULD treat request_uri values as one-time use": the pending authorization it
    started survives a reload of the sign-in page; the authorization URL does not."""
    uri = pushed_uri(h, state="once")
    started = use(h, uri)
    login = started.headers["Location"]
    assert login.startswith("/login?")
    error_page(use(h, uri), "invalid_request_uri")
    assert h.client.get(login).status_code == 200
    page = h.client.get(login)  # the reload
    assert page.status_code == 200
    signed = h.client.post(
        "/login", data={**form_of(page), "username": "alice", "password": PASSWORD}
    )
    assert signed.status_code == 302
    consent = h.client.get(signed.headers["Location"])
    done = h.client.post("/consent", data={**form_of(consent), "decision": "allow"})
    assert query(done)["state"] == "once" and "code" in query(done)
    assert rows(h, "pending_authorizations") == 0


def test_an_expired_request_uri_is_refused(h: Harness) -> None:
    """§4: "An expired request_uri MUST be rejected as invalid"."""
    sign_in(h)
    first_party(h)
    uri = pushed_uri(h)
    h.clock.advance(seconds=LIFETIME)
    error_page(use(h, uri), "invalid_request_uri")


def test_a_request_uri_just_before_expiry_works(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    uri = pushed_uri(h)
    h.clock.advance(seconds=LIFETIME - 1)
    assert "code" in query(use(h, uri))


@pytest.mark.parametrize(
    "value",
    [
        URN + "x" * 43,
        URN + "short",
        URN,
        URN + "x" * 5000,
        URN + "é" * 43,
        URN.upper() + "x" * 43,
    ],
)
def test_unknown_or_malformed_request_uris_are_an_error_page(h: Harness, value: str) -> None:
    answer = use(h, value)
    if value.startswith(URN):
        error_page(answer, "invalid_request_uri")
    else:  # not one of ours: a Request Object by reference, refused at the redirect URI
        answer = authorize(h, **wiki_request(h, request_uri=value))
        assert query(answer)["error"] == "request_uri_not_supported"


@pytest.mark.parametrize("value", ["https://rp.example/r.jwt", "urn:example:request"])
def test_other_request_uris_stay_unsupported(h: Harness, value: str) -> None:
    answer = authorize(h, **wiki_request(h, request_uri=value))
    assert query(answer)["error"] == "request_uri_not_supported"


def test_the_application_is_judged_as_it_is_when_the_request_uri_is_used(h: Harness) -> None:
    """§4: validated "as it would any other authorization request" — a redirect URI no
    longer registered is an error page; a client made public in between needs PKCE."""
    sign_in(h)
    first_party(h)
    uri, later = pushed_uri(h), pushed_uri(h)
    set_app(h, redirect_uris=["https://elsewhere.example/cb"])
    error_page(use(h, uri), "invalid_redirect_uri")
    set_app(h, redirect_uris=[REDIRECT], confidential=False)
    answer = use(h, later)
    assert query(answer)["error"] == "invalid_request"
    assert "PKCE" in query(answer)["error_description"]


def test_a_deleted_application_takes_its_pushed_requests_along(h: Harness) -> None:
    pushed_uri(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        db.delete(app)
    assert rows(h, "pushed_authorization_requests") == 0


# -- PAR required (§5-6) ------------------------------------------------------------------


def test_an_application_requiring_par_refuses_a_plain_request(h: Harness) -> None:
    """§4: refused "using the invalid_request error code", to its verified redirect URI."""
    sign_in(h)
    first_party(h)
    set_app(h, require_pushed_authorization_requests=True)
    answer = authorize(h, **wiki_request(h))
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    assert query(answer)["error"] == "invalid_request" and query(answer)["state"] == "st"
    assert "pushed_authorization_request_endpoint" in query(answer)["error_description"]
    # a request_uri that is not a pushed one is not PAR either
    answer = authorize(h, **wiki_request(h, request_uri="https://rp.example/r"))
    assert query(answer)["error"] == "invalid_request"
    # an unregistered redirect URI is still never redirected to
    error_page(
        authorize(h, **wiki_request(h, redirect_uri="https://evil.example/")),
        "invalid_redirect_uri",
    )
    assert "code" in query(use(h, pushed_uri(h)))
    # other applications are not concerned
    set_app(h, require_pushed_authorization_requests=False)
    assert "code" in query(authorize(h, **wiki_request(h)))


def test_the_server_wide_setting_requires_par_of_every_application(factory: Any) -> None:
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, require_par=True)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    sign_in(h)
    first_party(h)
    meta = body(h.client.get("/.well-known/openid-configuration"))
    assert meta["require_pushed_authorization_requests"] is True
    assert query(authorize(h, **wiki_request(h)))["error"] == "invalid_request"
    assert "code" in query(use(h, pushed_uri(h)))


def test_discovery_announces_the_par_endpoint(h: Harness) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = body(h.client.get(path))
        assert meta["pushed_authorization_request_endpoint"] == f"{ORIGIN}/oauth2/par"
        assert meta["require_pushed_authorization_requests"] is False
        assert meta["request_uri_parameter_supported"] is False


def admin(h: Harness) -> PassportClient:
    """An administrator's API client (the ``admin`` right of the Passport application)."""
    return h.administrator("root", "admin")


def test_the_api_sets_par_required_and_audits_it(h: Harness) -> None:
    client = admin(h)
    made = client.post(
        "/Applications/create",
        data={"name": "Notes", "requirePushedAuthorizationRequests": "true"},
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    assert body(made)["Data"]["Application"]["RequirePushedAuthorizationRequests"] is True
    plain = client.post("/Applications/create", data={"name": "Plain"})
    assert body(plain)["Data"]["Application"]["RequirePushedAuthorizationRequests"] is False
    for value, expected in (("true", True), ("false", False)):
        answer = client.post(
            "/Applications/update",
            data={"application": "Wiki", "requirePushedAuthorizationRequests": value},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert body(answer)["Data"]["Application"]["RequirePushedAuthorizationRequests"] is (
            expected
        )
    for bad in ("yes please", "", "2", "{}"):
        answer = client.post(
            "/Applications/update",
            data={"application": "Wiki", "requirePushedAuthorizationRequests": bad},
        )
        assert answer.status_code == 400, bad
        assert body(answer)["ClientExceptions"][0]["Source"] == (
            "requirePushedAuthorizationRequests"
        )
    with h.app.services.db.session() as db:
        changes = list(
            db.scalars(select(AuditEvent.detail).where(AuditEvent.event == "app_update"))
        )
    assert any("requirePushedAuthorizationRequests" in str(c) for c in changes), changes


def test_the_cli_sets_par_required(h: Harness) -> None:
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    assert run("app", "update", "Wiki", "--par-required").exit_code == 0
    shown = json.loads(run("app", "show", "Wiki", "--json").output)[0]
    assert shown["RequirePushedAuthorizationRequests"] is True
    sign_in(h)
    first_party(h)
    assert query(authorize(h, **wiki_request(h)))["error"] == "invalid_request"
    assert run("app", "update", "Wiki", "--no-par-required").exit_code == 0
    assert "code" in query(authorize(h, **wiki_request(h)))
    made = json.loads(run("app", "add", "Notes", "--par-required", "--json").output)[0]
    assert made["RequirePushedAuthorizationRequests"] is True
    plain = json.loads(run("app", "add", "Plain", "--json").output)[0]
    assert plain["RequirePushedAuthorizationRequests"] is False


# -- housekeeping -------------------------------------------------------------------------


def test_housekeeping_purges_pushed_requests_nobody_used(h: Harness) -> None:
    """Kept while live (and the purge's 5 minutes' margin), gone after."""
    pushed_uri(h)
    assert purge_expired(h.app.services.db, h.clock()).pushed_authorization_requests == 0
    h.clock.advance(seconds=LIFETIME + 4 * 60)
    assert purge_expired(h.app.services.db, h.clock()).pushed_authorization_requests == 0
    h.clock.advance(seconds=61)
    assert purge_expired(h.app.services.db, h.clock()).pushed_authorization_requests == 1
    assert rows(h, "pushed_authorization_requests") == 0


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("postgresql", marks=pytest.mark.postgresql),
    ],
)
def test_concurrent_pushes_never_overshoot_the_cap(factory: Any, backend: str) -> None:
    """The cap is a count and an insert: pushes arriving at once, from many addresses,
    must not all see room (RFC 9126 §2.3 429; ASVS 5 §2.4.1 bounded resources) — the
    client's row is locked before counting (``pushed.room_for``)."""
    h: Harness = factory(
        backend,
        "db",
        key_encryption_key=KEK,
        max_pushed_requests_per_client=3,
        throttle_client_request_limit=1_000,
    )
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    data = public_request(h)
    start = Barrier(12)

    def one(n: int) -> int:
        client = PassportClient(h.app)
        start.wait()
        address = {"REMOTE_ADDR": f"198.51.100.{n + 1}"}
        return client.post("/oauth2/par", data=data, environ_base=address).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(one, range(12)))
    assert sorted(statuses) == [201] * 3 + [429] * 9, statuses
    assert rows(h, "pushed_authorization_requests") == 3
