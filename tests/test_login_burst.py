"""A burst of correct logins against a real ``passport serve`` never starves cheap requests.

Password hashing is bounded (``PASSPORT_MAX_CONCURRENT_HASHES`` slots, as many waiting,
any more refused at once with 503 and ``Retry-After``) and the server runs more threads
than hashing can occupy, with a database pool sized for every thread.  So during a burst
every login is answered 200 or 503 -- never 500, never "database unreachable" -- and
``/healthz`` and ``Account/status`` are answered while the first hashes are still being
computed: no cheap request waits for a thread that a password hash holds.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from provision import Backend

from conftest import REDIS_URL
from support import STRONG

pytestmark = pytest.mark.live

USERS = 16
LOGINS = 64  # four per user: fewer than the five attempts at once that one account may have
# Two hashing slots whatever the machine, and hashes slow enough (argon2id t=30, about
# a second or two) that the first of them is still running while the probes go on.
BURST_SETTINGS = {"PASSPORT_MAX_CONCURRENT_HASHES": "2", "PASSPORT_ARGON2_TIME_COST": "30"}


@pytest.fixture(params=["sqlite-db", "postgresql-redis"])
def database(
    request: pytest.FixtureRequest,
    backends: dict[str, Backend],
    redis_client: Any,
    tmp_path: Path,
) -> tuple[str, dict[str, str]]:
    """A database URL and the environment that the servers over it share."""
    name, store = request.param.split("-")
    env: dict[str, str] = {}
    if name == "sqlite":
        url = f"sqlite:///{tmp_path / 'burst.sqlite3'}"
    else:
        from conftest import _empty_tables

        url = backends[name].url
        _empty_tables(url)
    if store == "redis":
        redis_client.flushdb()
        env["PASSPORT_REDIS_URL"] = REDIS_URL
    return url, env


def post(url: str, path: str, **data: str) -> requests.Response:
    return requests.post(url + path, data=data, headers={"Origin": url}, timeout=60)


def test_cheap_requests_are_answered_during_a_burst_of_correct_logins(
    database: tuple[str, dict[str, str]], live_server: Any
) -> None:
    url, env = database
    # The users are made by a server with the usual (fast) hashing parameters...
    setup = live_server(url, env=env)
    for n in range(USERS):
        assert post(setup.url, "/Account/register", username=f"user{n:02d}", password=STRONG).ok
    session = post(setup.url, "/Account/login", username="user00", password=STRONG)
    assert session.status_code == 200
    cookie = session.cookies
    setup.stop()
    # ... and signed in to one whose hashes are slow.
    server = live_server(url, env=env | BURST_SETTINGS)
    url = server.url

    logins: list[tuple[float, int, str, str | None]] = []
    probes: list[tuple[str, float, int, bool]] = []
    lock = threading.Lock()
    started = threading.Barrier(LOGINS + 1)
    burst_over = threading.Event()

    def log_in(n: int) -> None:
        started.wait()
        try:
            answer = post(url, "/Account/login", username=f"user{n % USERS:02d}", password=STRONG)
        except requests.RequestException as exc:  # e.g. no answer within the timeout
            with lock:
                logins.append((time.monotonic(), 0, type(exc).__name__, None))
            return
        with lock:
            logins.append(
                (
                    time.monotonic(),
                    answer.status_code,
                    answer.text,
                    answer.headers.get("Retry-After"),
                )
            )

    def probe() -> None:
        started.wait()
        while not burst_over.is_set():
            health = requests.get(url + "/healthz", timeout=60)
            with lock:
                probes.append(("healthz", time.monotonic(), health.status_code, True))
            status = requests.get(url + "/Account/status", cookies=cookie, timeout=60)
            logged_in = status.json().get("LoggedIn") is True
            with lock:
                probes.append(("status", time.monotonic(), status.status_code, logged_in))

    threads = [threading.Thread(target=log_in, args=(n,)) for n in range(LOGINS)]
    prober = threading.Thread(target=probe)
    for thread in [*threads, prober]:
        thread.start()
    for thread in threads:
        thread.join()
    burst_over.set()
    prober.join()

    # While the first hashes were computed, cheap requests kept being answered.  (When
    # hashing can hold every thread, none is answered before the first hash is done.)
    first_signed_in = min([at for at, code, _, _ in logins if code == 200], default=math.inf)
    early = [kind for kind, at, _, _ in probes if at < first_signed_in]
    assert early.count("healthz") >= 5, early
    assert early.count("status") >= 5, early

    assert len(logins) == LOGINS
    assert {code for _, code, _, _ in logins} <= {200, 503}, logins
    for _, code, text, retry_after in logins:
        assert "unreachable" not in text and "unexpected" not in text
        if code == 503:
            assert retry_after is not None and int(retry_after) > 0
    assert probes and all(code == 200 and ok for _, _, code, ok in probes), probes

    server.stop()
    log = server.output()
    assert "Traceback" not in log and STRONG not in log
