"""Back-channel logout: signed logout tokens, delivered from a durable outbox with retries."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt as pyjwt
import pytest

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import seed
from passport.oidc.backchannel import EVENT
from passport.oidc.backchannel import deliver_due
from passport.services.applications import find_by_name

from support import Harness


class Receiver:
    """An application's back-channel endpoint that can be down for a while."""

    def __init__(self, failures: int = 0) -> None:
        self.tokens: list[str] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(503)
                else:
                    receiver.tokens.append(form["logout_token"][0])
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["sqlite", "postgresql"])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    # The receivers below listen on 127.0.0.1: the operator allows private targets.
    harness: Harness = factory(
        request.param, key_encryption_key=KEK, backchannel_allow_private=True
    )
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


def register(h: Harness, uri: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.backchannel_logout_uri = uri


def test_logout_reaches_the_application_even_after_it_was_down(h: Harness) -> None:
    receiver = Receiver(failures=2)
    try:
        register(h, receiver.url)
        issued = body(exchange(h, get_code(h)))
        assert "id_token" in issued
        assert h.client.post("/Account/logout").status_code == 200
        now = h.clock()
        assert deliver_due(h.app.services.db, now) == 0  # the application is down
        assert deliver_due(h.app.services.db, now) == 0  # not due yet: backing off
        h.clock.advance(seconds=3)
        assert deliver_due(h.app.services.db, h.clock()) == 0  # still down
        h.clock.advance(seconds=5)
        assert deliver_due(h.app.services.db, h.clock()) == 1
        assert deliver_due(h.app.services.db, h.clock() + timedelta(hours=1)) == 0  # delivered once

        (token,) = receiver.tokens
        jwks = body(h.client.get("/.well-known/jwks.json"))
        key = pyjwt.PyJWK(jwks["keys"][0])
        claims = pyjwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=h.ids["client_id"],  # type: ignore[attr-defined]
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["events"] == {EVENT: {}} and claims["sub"].startswith("user-")
        assert "nonce" not in claims
        assert pyjwt.get_unverified_header(token)["typ"] == "logout+jwt"

        root = h.new_client()
        h.register("root")
        from passport.services import directory
        from passport.storage.models import Application

        with h.app.services.db.session(write=True) as db, db.begin():
            user = directory.find_user(db, "root")
            passport = db.get(Application, 1)
            assert user is not None and passport is not None
            admin = directory.find_permission(db, passport, "admin")
            assert admin is not None
            directory.grant(db, admin, user=user)
        root.post(
            "/Account/login",
            data={"username": "root", "password": "correct horse battery staple"},
            headers={"Origin": "http://localhost"},
        )
        seen = body(root.get("/Users/logoutNotifications?username=alice"))["Data"]["Items"]
        assert seen[0]["Application"] == "Wiki" and seen[0]["Delivered"]
        assert seen[0]["Attempts"] == 3
    finally:
        receiver.close()


def test_applications_without_tokens_or_uri_are_not_told(h: Harness) -> None:
    receiver = Receiver()
    try:
        register(h, receiver.url)
        h.login("alice", PASSWORD)  # signed in, but Wiki never got tokens for alice
        h.client.post("/Account/logout")
        assert deliver_due(h.app.services.db, h.clock()) == 0
        assert receiver.tokens == []
    finally:
        receiver.close()


# -- only public targets (server-side request forgery) ----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def strict(request: pytest.FixtureRequest, factory: Any) -> Harness:
    """Passport with the default settings: back-channel logout to public addresses only."""
    harness: Harness = factory(request.param, key_encryption_key=KEK)
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


def last_errors(h: Harness) -> list[str]:
    from sqlalchemy import select

    from passport.storage.models import LogoutNotification

    with h.app.services.db.session() as db:
        return list(db.scalars(select(LogoutNotification.last_error)))


def test_a_name_resolving_to_a_private_address_is_not_contacted(
    strict: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenID Connect Back-Channel Logout 1.0 §2.2: a registered https name that resolves
    to loopback (DNS the delegate controls) is refused at delivery, with a clear error."""
    import socket

    from passport.services import outbound

    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rp.example.com":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(outbound.socket, "getaddrinfo", resolve)
    sent: list[str] = []
    register(strict, "https://rp.example.com:6379/backchannel")
    body(exchange(strict, get_code(strict)))
    assert strict.client.post("/Account/logout").status_code == 200
    assert (
        deliver_due(strict.app.services.db, strict.clock(), post=lambda uri, **kw: sent.append(uri))
        == 0
    )
    assert sent == []
    assert last_errors(strict) == [
        "refused, not contacted: the host name resolves to a non-public address"
    ]


def test_an_old_loopback_registration_is_not_contacted(strict: Harness) -> None:
    """A loopback http URI registered before the rule is refused at delivery too."""
    receiver = Receiver()
    try:
        register(strict, receiver.url)
        body(exchange(strict, get_code(strict)))
        strict.client.post("/Account/logout")
        assert deliver_due(strict.app.services.db, strict.clock()) == 0
        assert receiver.tokens == []
        assert last_errors(strict) == ["refused, not contacted: not https"]
    finally:
        receiver.close()


def test_the_recorded_error_carries_no_response_body(h: Harness) -> None:
    """LastError (Users/logoutNotifications, administrators only) is the status alone."""
    receiver = Receiver(failures=1)
    try:
        register(h, receiver.url)
        body(exchange(h, get_code(h)))
        h.client.post("/Account/logout")

        class Answer:
            status_code = 500
            text = "redis_version:7.0.0 secret body"
            closed = False

            def close(self) -> None:
                self.closed = True

        answer = Answer()
        assert deliver_due(h.app.services.db, h.clock(), post=lambda uri, **kw: answer) == 0
        assert last_errors(h) == ["HTTP 500"] and answer.closed
    finally:
        receiver.close()


@pytest.mark.parametrize(
    "uri",
    [
        "https://127.0.0.1:9443\\@8.8.8.8/",  # the HTTP client would connect to 127.0.0.1
        "https://[::127.0.0.1]/",
        "https://[::ffff:0:127.0.0.1]/",
    ],
)
def test_a_uri_the_http_client_reads_otherwise_is_not_contacted(uri: str) -> None:
    """Registered before the rule (or written to the database by hand): refused at delivery."""
    from passport.oidc.backchannel import refusal

    assert refusal(uri).startswith("refused, not contacted")
