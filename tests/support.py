"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import sqlalchemy.event
from sqlalchemy.orm import Session
from werkzeug.test import Client
from werkzeug.test import TestResponse

from passport.app import PassportApp
from passport.config import Settings
from passport.storage.models import User

ORIGIN = "http://localhost"
STRONG = "correct horse battery staple"
_user_rows = itertools.count()


def user_row(
    db: Session,
    *,
    prefix: str = "u",
    disabled: bool = False,
    display_name: str = "",
    email: str | None = None,
) -> User:
    """A user written straight into the table (no password hashing, audit or mail), named
    ``<prefix><n>`` uniquely in the process: for service tests that need many users fast."""
    name = f"{prefix}{next(_user_rows)}"
    created = datetime(2026, 1, 1, tzinfo=UTC)
    row = User(
        username=name,
        username_key=name,
        display_name=display_name,
        email=email,
        password_hash="x",
        disabled=disabled,
        created_at=created,
        password_changed_at=created,
    )
    db.add(row)
    db.flush()
    return row


class FakeClock:
    """An injectable UTC clock that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class PassportClient(Client):
    """A WSGI test client that speaks like a browser page of Passport itself."""

    def post(self, *args: Any, **kwargs: Any) -> TestResponse:
        headers = kwargs.pop("headers", {})
        headers.setdefault("Origin", ORIGIN)
        return super().post(*args, headers=headers, **kwargs)


@dataclass
class Harness:
    app: PassportApp
    client: PassportClient
    settings: Settings
    backend: str
    store: str
    clock: FakeClock

    def register(
        self,
        username: str = "alice",
        password: str = STRONG,
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> Any:
        return self.client.post(
            "/Account/register",
            data={"username": username, "password": password, **extra},
            headers=dict(headers or {}),
        )

    def login(
        self,
        username: str = "alice",
        password: str = STRONG,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Any:
        return self.client.post(
            "/Account/login",
            data={"username": username, "password": password, **extra},
            headers=dict(headers or {}),
        )

    def new_client(self) -> PassportClient:
        return PassportClient(self.app)

    def administrator(self, username: str, *rights: str) -> PassportClient:
        """A new client signed in as a new user ``username`` holding these rights of the
        Passport application (``admin``, ``apps:write``…), granted directly in the
        database as an earlier administrator would have."""
        from passport.services import directory
        from passport.storage.models import Application

        assert self.register(username).status_code == 200
        with self.app.services.db.session(write=True) as db, db.begin():
            passport = db.get(Application, 1)
            user = directory.find_user(db, username)
            assert passport is not None and user is not None
            for right in rights:
                permission = directory.find_permission(db, passport, right)
                assert permission is not None
                directory.grant(db, permission, user=user)
        client = self.new_client()
        answer = client.post("/Account/login", data={"username": username, "password": STRONG})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return client


class TcpProxy:
    """A loopback TCP forwarder that a test can cut and restore, to play "database down"."""

    def __init__(self, target_port: int) -> None:
        from ports import free_port

        self.target_port = target_port
        self.port = free_port()
        self._server: Any = None
        self._conns: list[Any] = []

    def start(self) -> None:
        import socket
        import threading

        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(50)
        self._server = server

        def pump(src: Any, dst: Any) -> None:
            try:
                while chunk := src.recv(65536):
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._conns += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def stop(self) -> None:
        import socket

        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self._server.close()
            self._server = None
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._conns = []


class QueryCounter:
    def __init__(self, engine: Any) -> None:
        self.count = 0
        sqlalchemy.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            self.count += 1
