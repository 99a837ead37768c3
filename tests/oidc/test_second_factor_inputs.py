"""Hostile input to every form and endpoint of multi-factor sign-in — ``/login/verify``,
``/login/enrol``, ``/login/continue``, ``/webauthn/options``, the account page's factor
actions, ``Account/login``'s ``code`` and ``method`` — missing, empty, huge, not JSON,
deeply nested JSON, unicode, SQL-ish: never a 5xx, never a session or a factor where it
was refused.  Anonymous, half-way through a sign-in, and signed in; then Hypothesis with
free-form values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import text
from werkzeug.datastructures import MultiDict

from oidc_support import KEK
from second_factor_support import authenticator
from second_factor_support import cookie
from second_factor_support import enrol_passkey
from second_factor_support import enrol_totp
from second_factor_support import page_sign_in
from second_factor_support import token_of

from support import STRONG
from support import Harness
from support import PassportClient

COMBOS = [("sqlite", "db"), ("postgresql", "redis")]
HUGE = "9" * 70000  # over max_body_bytes (65536): 413, never parsed
LONG = "x" * 20000  # under the body limit, over every field's own
# Deeper than the JSON decoder's recursion limit, within the pages' 8192 per field.
NESTED_ARRAY = "[" * 3000 + "]" * 3000
NESTED_OBJECT = '{"response":{"a":' + "[" * 3000 + "]" * 3000 + "}}"
VALUES: list[str | None] = [
    None,  # missing
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999",
    "123456",
    "１２３４５６",  # noqa: RUF001 (full-width digits, on purpose)
    "' OR '1'='1' --",
    "1; DROP TABLE users; --",
    "\x00",
    "\u202e\u0000\ud7ff",
    "😀" * 40,
    "<script>alert(1)</script>",
    "not json",
    "null",
    "[]",
    "{}",
    '{"response": null}',
    '{"response": {}}',
    '{"id": 1, "rawId": [], "response": {"clientDataJSON": 7}, "type": {}}',
    '{"id": "AAAA", "rawId": "AAAA", "response": {"clientDataJSON": "", '
    '"authenticatorData": "", "signature": "", "userHandle": "\\u0000"}, "type": "public-key"}',
    NESTED_ARRAY,
    NESTED_OBJECT,
    LONG,
    HUGE,
]
FIELDS = {
    "/login/verify": ["method", "code", "credential", "next", "authorization"],
    "/login/enrol": ["action", "code", "credential", "name", "next"],
    "/login/continue": ["next", "authorization"],
    "/webauthn/options": ["purpose", "authorization"],
}
BASE = {
    "/login/verify": [{"method": "totp"}, {"method": "recovery"}, {"method": "passkey"}],
    "/login/enrol": [{"action": "totp"}, {"action": "passkey"}],
    "/login/continue": [{}],
    "/webauthn/options": [{"purpose": "signin"}, {"purpose": "verify"}, {"purpose": "register"}],
}
ACCOUNT = {
    "passkey-add": ["credential", "name"],
    "passkey-rename": ["id", "name"],
    "passkey-remove": ["id"],
    "totp-start": [],
    "totp-confirm": ["code"],
    "totp-remove": [],
    "recovery-new": [],
}


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    harness: Harness = factory(*request.param, key_encryption_key=KEK)
    assert harness.register("alice").status_code == 200
    assert harness.register("bob").status_code == 200
    return harness


def factor_rows(h: Harness) -> tuple[Any, ...]:
    """What a refused request must not have changed."""
    with h.app.services.db.session() as db:
        return tuple(
            tuple(db.execute(text(sql)))
            for sql in (
                "SELECT id, user_id, name, sign_count FROM webauthn_credentials ORDER BY id",
                "SELECT user_id, last_step FROM totp_credentials ORDER BY user_id",
                "SELECT code_hash FROM recovery_codes ORDER BY code_hash",
            )
        )


def sessions_of(h: Harness) -> int:
    return int(h.app.services.sessions.count_active(h.clock()))


def post(client: PassportClient, path: str, token: str, data: dict[str, Any]) -> Any:
    body = {"csrf": token, **{k: v for k, v in data.items() if v is not None}}
    return client.post(path, data=body)


def check(answer: Any, where: Any) -> None:
    assert answer.status_code < 500, (
        where,
        answer.status_code,
        answer.get_data(as_text=True)[:300],
    )
    page = answer.get_data(as_text=True)
    assert "Traceback" not in page and STRONG not in page
    if answer.status_code == 413:
        return
    assert answer.status_code in (200, 204, 302, 303, 400, 401, 403, 404, 409, 413, 429), where


def anonymous(h: Harness) -> tuple[PassportClient, str]:
    client = h.new_client()
    return client, token_of(client)


def halfway(h: Harness) -> tuple[PassportClient, str]:
    """Bob's password accepted, his second factor owed (he has an authenticator app)."""
    client = h.new_client()
    token = token_of(client)
    answer = client.post("/login", data={"csrf": token, "username": "bob", "password": STRONG})
    assert answer.headers["Location"].startswith("/login/verify"), answer.headers
    assert cookie(client, "passport_step") is not None
    return client, token


def signed_in(h: Harness) -> tuple[PassportClient, str]:
    client = h.new_client()
    page_sign_in(client, "alice")
    return client, token_of(client, "/account")


def prepare(h: Harness) -> None:
    """Bob holds an authenticator app and a passkey (so that his half-way sign-in has
    every method to attack); Alice none (her signed-in session may enrol)."""
    client = h.new_client()
    page_sign_in(client, "bob")
    enrol_passkey(h, client, authenticator(h))
    enrol_totp(h, client)
    client.post("/Account/logout")


STATES: dict[str, Callable[[Harness], tuple[PassportClient, str]]] = {
    "anonymous": anonymous,
    "halfway": halfway,
    "signed-in": signed_in,
}


@pytest.mark.parametrize("state", list(STATES))
def test_hostile_values_in_the_second_step_forms(h: Harness, state: str) -> None:
    prepare(h)
    client, token = STATES[state](h)
    before, live = factor_rows(h), sessions_of(h)
    for path, fields in FIELDS.items():
        for base in BASE[path]:
            for name in fields:
                for value in VALUES:
                    data = {**base, name: value}
                    answer = post(client, path, token, data)
                    check(answer, (state, path, name, (value or "")[:40]))
                    assert sessions_of(h) == live, (state, path, name, (value or "")[:40])
    assert factor_rows(h) == before
    if state == "halfway":
        # The hostile posts did not end the half-way sign-in nor sign it in.
        assert json.loads(client.get("/Account/status").get_data(as_text=True))["LoggedIn"] is False


def test_hostile_values_in_the_account_factor_actions(h: Harness) -> None:
    prepare(h)
    client, token = signed_in(h)
    for action, fields in ACCOUNT.items():
        for name in fields or ["unused"]:
            for value in VALUES:
                before = factor_rows(h)
                answer = post(client, "/account", token, {"action": action, name: value})
                check(answer, (action, name, (value or "")[:40]))
                if answer.status_code >= 400:
                    assert factor_rows(h) == before, (action, name, (value or "")[:40])
    # Bob's factors were never touched from Alice's session.
    with h.app.services.db.session() as db:
        bob = db.execute(text("SELECT id FROM users WHERE username = 'bob'")).scalar_one()
        assert (
            db.execute(
                text("SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = :u"), {"u": bob}
            ).scalar_one()
            == 1
        )


@pytest.mark.parametrize("name", ["code", "method"])
def test_hostile_values_in_account_login(h: Harness, name: str) -> None:
    prepare(h)
    for value in VALUES:
        client = h.new_client()
        data = {"username": "bob", "password": STRONG, "code": "123456", name: value}
        answer = client.post(
            "/Account/login", data={k: v for k, v in data.items() if v is not None}
        )
        check(answer, (name, (value or "")[:40]))
        assert answer.status_code != 200, (name, value)
        envelope = json.loads(answer.get_data(as_text=True)) if answer.status_code != 413 else {}
        if envelope:
            assert envelope["ClientExceptions"], envelope
        h.clock.advance(seconds=3600)  # the throttle is not what this test is about
    assert sessions_of(h) == 0


def test_a_json_body_and_repeated_fields_on_the_forms(h: Harness) -> None:
    prepare(h)
    client, token = halfway(h)
    for path in FIELDS:
        as_json = client.post(
            path,
            data=json.dumps({"csrf": token, "code": "123456"}),
            content_type="application/json",
        )
        check(as_json, (path, "json"))
        repeated = client.post(
            path,
            data=MultiDict([("csrf", token), ("code", "1"), ("code", "2"), ("method", "totp")]),
        )
        check(repeated, (path, "repeated"))
    assert sessions_of(h) == 0


# -- property ------------------------------------------------------------------------------

free_text = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from([v for v in VALUES if v is None or len(v) < 20000]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    ).map(json.dumps),
)
requests = st.tuples(
    st.sampled_from([*FIELDS, "/account"]),
    st.dictionaries(
        st.sampled_from(
            [
                "method",
                "code",
                "credential",
                "next",
                "authorization",
                "purpose",
                "action",
                "name",
                "id",
            ]
        ),
        free_text,
        max_size=5,
    ),
    st.sampled_from(
        [None, *BASE["/login/verify"], *BASE["/login/enrol"], *BASE["/webauthn/options"]]
    )
    | st.sampled_from([{"action": a} for a in ACCOUNT]),
)


@pytest.mark.parametrize("state", ["anonymous", "halfway"])
def test_no_input_gives_a_500_or_a_session(h: Harness, state: str) -> None:
    prepare(h)
    client, token = STATES[state](h)
    before = factor_rows(h)

    @settings(
        max_examples=150 if h.backend == "sqlite" else 40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests)
    def probe(request: tuple[str, dict[str, str | None], dict[str, str] | None]) -> None:
        path, data, base = request
        answer = post(client, path, token, {**(base or {}), **data})
        check(answer, (path, data))
        assert sessions_of(h) == 0, (path, data)
        assert cookie(client, "passport_session") is None
        h.clock.advance(seconds=1)

    probe()
    assert factor_rows(h) == before


def test_no_input_to_a_signed_in_session_gives_a_500_or_changes_a_factor(h: Harness) -> None:
    prepare(h)
    client, token = signed_in(h)
    live = sessions_of(h)

    @settings(
        max_examples=100 if h.backend == "sqlite" else 30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=requests)
    def probe(request: tuple[str, dict[str, str | None], dict[str, str] | None]) -> None:
        path, data, base = request
        before = factor_rows(h)
        answer = post(client, path, token, {**(base or {}), **data})
        check(answer, (path, data))
        if answer.status_code >= 400:
            assert factor_rows(h) == before, (path, data)
        assert sessions_of(h) <= live + 1

    probe()
