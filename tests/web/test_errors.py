"""Never an unhandled error: unexpected failures are a 500 envelope with an error id,
a lost database is a 503 that heals by itself, and nothing secret reaches the client or log."""

from __future__ import annotations

import json
import logging
import re

import pytest

from passport.app import PassportApp
from passport.web.controller import Controller
from passport.web.registry import Registry
from passport.web.registry import expose
from provision import Backend

from conftest import make_settings
from support import FakeClock
from support import PassportClient
from support import TcpProxy

BOOM = Registry()


@BOOM.controller("Boom")
class BoomController(Controller):
    @expose("GET")
    def method(self) -> None:
        raise KeyError("secret-value-do-not-leak SELECT * FROM users")


@BOOM.controller("Fragile")
class FragileController(Controller):
    def __init__(self, ctx: object) -> None:
        raise RuntimeError("password=hunter2")

    @expose("GET")
    def Index(self) -> None:
        """Never reached."""


def make(url: str, registry: Registry | None = BOOM) -> PassportClient:
    return PassportClient(PassportApp(make_settings(url), registry=registry, clock=FakeClock()))


@pytest.mark.parametrize("path", ["/Boom/method", "/Fragile"])
def test_unexpected_exception_is_500_with_error_id(
    backends: dict[str, Backend], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    client = make(backends["sqlite"].url)
    with caplog.at_level(logging.ERROR, logger="passport"):
        response = client.get(path)
    assert response.status_code == 500
    data = json.loads(response.get_data(as_text=True))
    assert data["Success"] is False and data["ClientExceptions"] == []
    (message,) = [e["Message"] for e in data["ServerExceptions"]]
    error_id = re.fullmatch(r"An unexpected error occurred \(error id ([0-9a-f]{8})\)\.", message)
    assert error_id is not None
    logged = [r.getMessage() for r in caplog.records if r.name == "passport"]
    assert len(logged) == 1 and error_id.group(1) in logged[0]
    for text in (response.get_data(as_text=True), caplog.text):
        assert "secret-value" not in text and "hunter2" not in text
        assert "SELECT" not in text and "Traceback" not in text


def test_database_down_is_503_and_recovers(backends: dict[str, Backend]) -> None:
    proxy = TcpProxy(5432)
    proxy.start()
    url = backends["postgresql"].url.replace(":5432/", f":{proxy.port}/")
    client = make(url, registry=None)
    try:
        assert client.get("/Service/getApplication?name=Passport").status_code == 200
        proxy.stop()
        for path in ("/Service/getApplication?name=Passport", "/readyz"):
            down = client.get(path)
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "5"
            data = json.loads(down.get_data(as_text=True))
            assert data["ServerExceptions"] == [
                {"Message": "The database is unreachable; retry later."}
            ]
            assert "postgresql" not in down.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200
        proxy.start()
        back = client.get("/Service/getApplication?name=Passport")
        assert back.status_code == 200
        assert client.get("/readyz").status_code == 200
    finally:
        proxy.stop()


def test_unreachable_database_from_the_start_is_503(tmp_path: object) -> None:
    client = make("postgresql+psycopg://nobody:pw@127.0.0.1:1/none", registry=None)
    response = client.get("/Service/getApplication?name=Passport")
    assert response.status_code == 503
    assert "pw" not in response.get_data(as_text=True)
