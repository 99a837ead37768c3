"""Bad input on every parameter of every method: a clear envelope error, nothing lost.

The table of hostile values is applied to each registered endpoint and each of
its parameters, in the query string (GET) or the body (POST, form and JSON).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from passport.api import API
from passport.storage.models import Application
from passport.storage.models import LoginSession
from passport.storage.models import User

from support import STRONG
from support import Harness

HOSTILE = [
    "",
    " ",
    "x" * 5000,
    "Ünïcödé 😀 \u202e",
    "' OR '1'='1",
    "1; DROP TABLE users; --",
    "<script>alert(1)</script>",
    "a\x00b",
    "%00",
    "../../etc/passwd",
    "-1",
    "99999999999999999999999",
]
ENDPOINTS = list(API)
WRITE_ENDPOINTS = [e for e in ENDPOINTS if "POST" in e.http_methods]


def snapshot(h: Harness) -> tuple[int, ...]:
    with h.app.services.db.session() as db:
        return tuple(
            db.scalar(select(func.count()).select_from(model)) or 0
            for model in (User, Application, LoginSession)
        )


def strict_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON (RFC 8259 §6)")


def envelope(response: Any) -> dict[str, Any]:
    data = json.loads(response.get_data(as_text=True), parse_constant=strict_constant)
    assert set(data) == {"Success", "LoggedIn", "Data", "ClientExceptions", "ServerExceptions"}
    assert data["ServerExceptions"] == []
    return data  # type: ignore[no-any-return]


def call(h: Harness, endpoint: Any, params: dict[str, Any], *, as_json: bool = False) -> Any:
    if "GET" in endpoint.http_methods:
        return h.client.get(endpoint.path, query_string=params)
    if as_json:
        return h.client.post(endpoint.path, json=params)
    return h.client.post(endpoint.path, data=params)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.path for e in ENDPOINTS])
def test_hostile_values_never_break_anything(harness: Harness, endpoint: Any) -> None:
    harness.register("bob")
    before = snapshot(harness)
    for param in endpoint.params:
        for value in HOSTILE:
            for as_json in (False, True):
                response = call(harness, endpoint, {param.name: value}, as_json=as_json)
                assert response.status_code < 500, (param.name, value)
                data = envelope(response)
                if response.status_code >= 400:
                    assert data["Success"] is False
                    assert data["ClientExceptions"], (param.name, value)
                    assert STRONG not in response.get_data(as_text=True)
                if "GET" in endpoint.http_methods:
                    break  # query strings have no JSON form
    assert snapshot(harness) == before


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=[e.path for e in WRITE_ENDPOINTS])
def test_wrong_json_types_are_400(harness: Harness, endpoint: Any) -> None:
    for param in endpoint.params:
        for value in ([1, 2], {"a": 1}, 1.5):
            response = harness.client.post(endpoint.path, json={param.name: value})
            assert response.status_code in (400, 401), (param.name, value)
            error = envelope(response)["ClientExceptions"][0]
            if response.status_code == 400:
                assert error["Source"] == param.name
                assert error["Number"] == "3"


def test_huge_query_string_is_414(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=" + "x" * 10_000_000)
    assert response.status_code == 414
    assert envelope(response)["ClientExceptions"][0]["Number"] == "414"


def test_huge_body_is_413(harness: Harness) -> None:
    before = snapshot(harness)
    response = harness.client.post(
        "/Account/register", data={"username": "carol", "password": "p" * 10_000_000}
    )
    assert response.status_code == 413
    assert envelope(response)["ClientExceptions"][0]["Number"] == "413"
    assert snapshot(harness) == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1,2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"username=%ff%fe", "application/x-www-form-urlencoded"),
        (b"username=a&username=b", "application/x-www-form-urlencoded"),
        (b"<xml/>", "application/xml"),
    ],
)
def test_malformed_bodies_are_4xx(harness: Harness, data: bytes, content_type: str) -> None:
    response = harness.client.post("/Account/register", data=data, content_type=content_type)
    assert response.status_code in (400, 415)
    assert envelope(response)["ClientExceptions"]


def test_invalid_utf8_in_query_is_400(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=%ff")
    assert response.status_code == 400
    assert envelope(response)["ClientExceptions"][0]["Source"] == "request"


def test_repeated_parameter_is_refused(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=Passport&NAME=Other")
    assert response.status_code == 400
    assert "more than once" in envelope(response)["ClientExceptions"][0]["Message"]


def test_unknown_parameters_are_ignored(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=Passport&extra=1&__class__=x")
    assert response.status_code == 200


INT_PARAMS = [(e, p) for e in ENDPOINTS for p in e.params if p.kind is int]


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() is True, int() refuses it
        "\u0663",  # ARABIC-INDIC DIGIT THREE: int() accepts it
        "\uff11\uff12",  # FULLWIDTH 12
        "1\u00b9",
        "1" * 20,
        "9" * 4400,  # beyond int()'s default digit limit
        "--1",
        "1_000",
        "0x10",
    ],
)
def test_int_parameters_take_ascii_digits_only(harness: Harness, value: str) -> None:
    """``GET /Users/list?offset=%C2%B2`` was a 500: '²'.isdigit() but int('²') fails."""
    assert INT_PARAMS
    for endpoint, param in INT_PARAMS:
        response = call(harness, endpoint, {param.name: value})
        assert response.status_code == 400, (endpoint.path, param.name, value)
        error = envelope(response)["ClientExceptions"][0]
        assert (error["Source"], error["Number"]) == (param.name, "3")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=[e.path for e in WRITE_ENDPOINTS])
def test_deeply_nested_json_is_400(harness: Harness, endpoint: Any) -> None:
    """A body nested thousands deep made json.loads raise RecursionError (a 500)."""
    harness.register("bob")
    before = snapshot(harness)
    name = endpoint.params[0].name if endpoint.params else "x"
    for body in (nested(5000), f'{{"{name}": {nested(5000)}}}', nested(33)):
        response = harness.client.post(endpoint.path, data=body, content_type="application/json")
        assert response.status_code == 400, body[:40]
        error = envelope(response)["ClientExceptions"][0]
        assert error["Source"] == "request"
        assert "nested deeper than 32" in error["Message"]
    # 32 levels are parsed: the value is then refused for its type, not the nesting.
    within = harness.client.post(
        endpoint.path, data=f'{{"{name}": {nested(31)}}}', content_type="application/json"
    )
    assert within.status_code < 500
    assert not any("nested" in e["Message"] for e in envelope(within)["ClientExceptions"])
    assert snapshot(harness) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_deeply_nested_json_at_the_token_endpoint_is_an_oauth_error(
    factory: Any, backend: str
) -> None:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    harness = factory(backend, "db", public_url="http://localhost", key_encryption_key=key)
    response = harness.client.post(
        "/oauth2/token", data=nested(5000), content_type="application/json"
    )
    assert response.status_code == 400
    assert json.loads(response.get_data(as_text=True))["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        '{"username": "\\ud800", "password": "x"}',
        '{"username": "a\\udfffb"}',
        '{"\\ud83d": "lone half of an emoji as a key"}',
        '{"username": "ok", "USERNAME": "\\udc00"}',
    ],
)
def test_lone_surrogates_in_json_are_400(harness: Harness, body: str) -> None:
    """JSON escapes can spell lone surrogates, which no answer or database can encode."""
    before = snapshot(harness)
    response = harness.client.post("/Account/register", data=body, content_type="application/json")
    assert response.status_code == 400
    assert envelope(response)["ClientExceptions"][0]["Source"] == "request"
    assert snapshot(harness) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_not_echoed(harness: Harness, literal: str) -> None:
    """The error echoes the value it refuses; NaN has no JSON spelling, so it is not echoed."""
    response = harness.client.post(
        "/Account/register", data=f'{{"username": {literal}}}', content_type="application/json"
    )
    assert response.status_code == 400
    error = envelope(response)["ClientExceptions"][0]  # strict JSON parse inside
    assert (error["Source"], error["Value"]) == ("username", None)


def test_a_json_name_given_twice_is_refused_not_last_wins(harness: Harness) -> None:
    """``{"username": "nobody", "username": "alice"}`` once signed in as alice: a filter
    reading the first value and Passport the last must never disagree (review finding)."""
    harness.register("alice")
    body = '{"username": "nobody-here", "username": "alice", "password": "' + STRONG + '"}'
    response = harness.client.post(
        "/Account/login", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "more than once" in envelope(response)["ClientExceptions"][0]["Message"]
    assert not response.headers.getlist("Set-Cookie")
    nested = '{"username": "alice", "password": "x", "extra": {"a": 1, "a": 2}}'
    again = harness.client.post(
        "/Account/login", data=nested, headers={"Content-Type": "application/json"}
    )
    assert again.status_code == 400


def test_a_parameter_in_both_the_url_and_the_body_is_refused_even_if_equal(
    harness: Harness,
) -> None:
    harness.register("alice")
    response = harness.client.post(
        "/Account/login?application=Passport",
        data={"username": "alice", "password": STRONG, "application": "Passport"},
    )
    assert response.status_code == 400
    assert "more than once" in envelope(response)["ClientExceptions"][0]["Message"]
