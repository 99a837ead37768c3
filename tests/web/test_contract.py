"""The Passport API contract of the original design, on every database."""

from __future__ import annotations

import json

import pytest

from support import Harness

ENVELOPE_KEYS = {"Success", "LoggedIn", "Data", "ClientExceptions", "ServerExceptions"}


def body(response: object) -> dict[str, object]:
    data = json.loads(response.get_data(as_text=True))  # type: ignore[attr-defined]
    assert set(data) == ENVELOPE_KEYS
    return data  # type: ignore[no-any-return]


def test_get_application_finds_passport(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=Passport")
    assert response.status_code == 200
    assert response.content_type == "application/json; charset=utf-8"
    assert body(response) == {
        "Success": True,
        "LoggedIn": False,
        "Data": {"Message": "Application ID for 'Passport' is: 1", "Application": {"ID": 1}},
        "ClientExceptions": [],
        "ServerExceptions": [],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/service/getapplication?name=Passport",
        "/SERVICE/GETAPPLICATION?NAME=Passport",
        "/Service/getApplication?Name=passport",
        "/Service/getApplication/?name=PASSPORT",
    ],
)
def test_urls_and_parameter_names_match_in_any_case(harness: Harness, path: str) -> None:
    response = harness.client.get(path)
    assert response.status_code == 200
    assert body(response)["Data"]["Application"] == {"ID": 1}  # type: ignore[index]


@pytest.mark.parametrize("query", ["", "?name=", "?other=Passport"])
def test_get_application_without_name(harness: Harness, query: str) -> None:
    response = harness.client.get("/Service/getApplication" + query)
    assert response.status_code == 400
    data = body(response)
    assert data["Success"] is False
    assert data["ClientExceptions"] == [
        {
            "Message": "Application name must be specified.",
            "Source": "name",
            "Value": None,
            "Number": "1",
        }
    ]


def test_get_application_unknown_name(harness: Harness) -> None:
    response = harness.client.get("/Service/getApplication?name=X")
    assert response.status_code == 404
    assert body(response)["ClientExceptions"] == [
        {
            "Message": "Could not find application 'X'.",
            "Source": "name",
            "Value": "X",
            "Number": "2",
        }
    ]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/c/m", "c/m"),
        ("/Service/nothing", "Service/nothing"),
        ("/Service/__init__", "Service/__init__"),
        ("/Service/_accounts", "Service/_accounts"),
        ("/Account/_accounts", "Account/_accounts"),
        ("/Service/ctx", "Service/ctx"),
        ("/Base/Index", "Base/Index"),
        ("/Controller/Index", "Controller/Index"),
        ("/Service/__class__", "Service/__class__"),
        ("/nope", "nope/Index"),
    ],
)
def test_unknown_methods_are_404(harness: Harness, path: str, value: str) -> None:
    response = harness.client.get(path)
    assert response.status_code == 404
    assert body(response)["ClientExceptions"] == [
        {"Message": f"No method '{value}' found.", "Source": "url", "Value": value, "Number": "404"}
    ]


def test_deeper_paths_are_404(harness: Harness) -> None:
    response = harness.client.get("/a/b/c")
    assert response.status_code == 404
    assert body(response)["ClientExceptions"][0]["Number"] == "404"  # type: ignore[index]


@pytest.mark.parametrize("path", ["/", "/Service", "/Service/Index", "/service/index"])
def test_index_names_service_and_version(harness: Harness, path: str) -> None:
    from passport import __version__

    response = harness.client.get(path)
    assert response.status_code == 200
    assert body(response)["Data"] == {"Service": "Passport", "Version": __version__}


def test_wrong_http_method_is_405_with_allow(harness: Harness) -> None:
    response = harness.client.post("/Service/getApplication", data={"name": "Passport"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert body(response)["ClientExceptions"][0]["Number"] == "405"  # type: ignore[index]
    response = harness.client.get("/Account/login")
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"


def test_security_headers_and_request_id(harness: Harness) -> None:
    response = harness.client.get("/")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert len(response.headers["X-Request-ID"]) == 16
    echoed = harness.client.get("/", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    refused = harness.client.get("/", headers={"X-Request-ID": "bad id <x>"})
    assert refused.headers["X-Request-ID"] != "bad id <x>"


def test_health_and_readiness(harness: Harness) -> None:
    assert harness.client.get("/healthz").status_code == 200
    ready = harness.client.get("/readyz")
    assert ready.status_code == 200
    assert body(ready)["Data"] == {"Status": "ready"}
