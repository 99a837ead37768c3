"""Running Passport: /metrics, trusted proxies, and how many queries the hot paths make."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support import STRONG
from support import Harness
from support import QueryCounter


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_logins_and_sessions(factory: Any) -> None:
    h = factory("sqlite", metrics_token="scrape-secret")
    unauthorised = h.client.get("/metrics")
    assert unauthorised.status_code == 403
    auth = {"Authorization": "Bearer scrape-secret"}
    before = h.client.get("/metrics", headers=auth).get_data(as_text=True)
    h.register()
    h.login()
    h.login("alice", "wrong password!!")
    h.client.get("/Service/getApplication?name=Passport")
    after = h.client.get("/metrics", headers=auth).get_data(as_text=True)
    label = {"endpoint": "/Service/getApplication", "status": "200"}
    assert (
        metric(after, "passport_http_requests_total", **label)
        == metric(before, "passport_http_requests_total", **label) + 1
    )
    for outcome in ("success", "failure"):
        assert (
            metric(after, "passport_logins_total", outcome=outcome)
            == metric(before, "passport_logins_total", outcome=outcome) + 1
        )
    assert metric(after, "passport_active_sessions") == 1
    assert "passport_http_request_duration_seconds_bucket" in after
    assert "passport_db_pool_size" in after
    unknown = {"endpoint": "other", "status": "404"}
    h.client.get("/x/y/z/many/labels")
    again = h.client.get("/metrics", headers=auth).get_data(as_text=True)
    assert metric(again, "passport_http_requests_total", **unknown) >= 1
    assert "/x/y/z" not in again


def test_metrics_without_token_only_for_loopback(factory: Any) -> None:
    h = factory("sqlite")
    assert h.client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert h.client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("192.0.2.50", "203.0.113.9", "192.0.2.50"),
        ("10.0.0.1", "not-an-ip", "10.0.0.1"),
    ],
)
def test_forwarded_for_only_from_trusted_proxies(
    factory: Any, peer: str, forwarded: str, expected: str
) -> None:
    h = factory("sqlite", trusted_proxies="10.0.0.0/8")
    h.register()
    h.client.post(
        "/Account/login",
        data={"username": "alice", "password": "wrong password!!"},
        environ_base={"REMOTE_ADDR": peer},
        headers={"X-Forwarded-For": forwarded},
    )
    from sqlalchemy import select

    from passport.storage.models import AuditEvent

    with h.app.services.db.session() as db:
        event_row = db.scalars(select(AuditEvent).where(AuditEvent.event == "login")).one()
        assert event_row.ip == expected


def test_forwarded_proto_makes_cookies_secure_only_from_trusted_proxies(factory: Any) -> None:
    h = factory("sqlite", trusted_proxies="10.0.0.1")
    h.register()
    for peer, secure in (("10.0.0.1", True), ("192.0.2.7", False)):
        response = h.new_client().post(
            "/Account/login",
            data={"username": "alice", "password": STRONG},
            environ_base={"REMOTE_ADDR": peer},
            headers={
                "X-Forwarded-Proto": "https",
                "Origin": "http://localhost",  # Passport's configured origin (public_url)
            },
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        assert ("Secure" in response.headers["Set-Cookie"]) is secure
        assert ("Strict-Transport-Security" in response.headers) is secure


def test_hot_paths_make_few_queries(harness: Harness) -> None:
    harness.register()
    harness.login()
    harness.client.get("/Account/status")  # warm: the idle-timer touch is not every request
    counter = QueryCounter(harness.app.services.db.engine)
    harness.client.get("/Account/status")
    assert counter.count == 1  # the session joined with its user
    counter.count = 0
    harness.client.get("/Service/getApplication?name=Passport")
    assert counter.count == 2  # the session with its user (for LoggedIn), the application
    counter.count = 0
    harness.new_client().get("/Service/getApplication?name=Passport")
    assert counter.count == 1
    counter.count = 0
    answer = harness.client.get("/Permission/check?application=passport&permission=admin")
    assert json.loads(answer.get_data(as_text=True))["Data"] == {"Granted": False}
    assert counter.count == 2  # the session with its user, the application with the grant
    counter.count = 0
    harness.new_client().get("/Account/status")
    assert counter.count == 0
    data = json.loads(harness.client.get("/Account/status").get_data(as_text=True))
    assert data["LoggedIn"] is True
