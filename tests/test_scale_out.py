"""Several ``passport serve`` processes sharing one database (and Redis) act as one service."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from provision import Backend

from conftest import REDIS_URL
from support import STRONG

pytestmark = pytest.mark.live


def post(url: str, path: str, jar: Any = None, **data: str) -> requests.Response:
    return requests.post(url + path, data=data, cookies=jar, headers={"Origin": url}, timeout=10)


@pytest.fixture(params=["postgresql-redis", "mariadb-redis", "postgresql-db"])
def two_servers(
    request: pytest.FixtureRequest,
    backends: dict[str, Backend],
    live_server: Any,
    redis_client: Any,
) -> tuple[Any, Any]:
    database, store = request.param.split("-")
    from conftest import _empty_tables

    _empty_tables(backends[database].url)
    redis_client.flushdb()
    env = {"PASSPORT_REDIS_URL": REDIS_URL} if store == "redis" else {}
    first = live_server(backends[database].url, env=env)
    second = live_server(backends[database].url, env=env)
    return first, second


def test_log_in_on_one_be_logged_in_on_all(two_servers: tuple[Any, Any]) -> None:
    a, b = two_servers
    assert post(a.url, "/Account/register", username="alice", password=STRONG).ok
    login = post(b.url, "/Account/login", username="alice", password=STRONG)
    assert login.json()["LoggedIn"] is True
    jar = login.cookies
    for server in (a, b):
        assert requests.get(server.url + "/Account/status", cookies=jar, timeout=5).json()[
            "LoggedIn"
        ]
    # the cookie is host-only; send it to the other process as a browser would to one host
    assert post(a.url, "/Account/logout", jar).json()["Data"] == {"LoggedOut": True}
    for server in (a, b):
        assert not requests.get(server.url + "/Account/status", cookies=jar, timeout=5).json()[
            "LoggedIn"
        ]


def test_throttling_counts_across_processes(two_servers: tuple[Any, Any]) -> None:
    a, b = two_servers
    post(a.url, "/Account/register", username="alice", password=STRONG)
    for i in range(5):
        server = (a, b)[i % 2]
        assert (
            post(server.url, "/Account/login", username="alice", password="wrong!" * 3).status_code
            == 401
        )
    for server in (a, b):
        locked = post(server.url, "/Account/login", username="alice", password=STRONG)
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) > 0
