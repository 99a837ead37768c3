"""The OpenID Connect provider under test: in process (``h``) and as a live server
(``provider``), both seeded with applications and a user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from oidc_support import KEK
from oidc_support import Provider
from oidc_support import seed
from provision import Backend

from conftest import _empty_tables
from support import Harness

# SQLite with the database session store; PostgreSQL with Redis sessions.
IN_PROCESS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=IN_PROCESS, ids=[f"{b}-{s}" for b, s in IN_PROCESS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    backend, store = request.param
    harness: Harness = factory(backend, store, key_encryption_key=KEK, key_rotation_delay=0)
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


@pytest.fixture(params=["sqlite", "postgresql"])
def provider(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[Provider]:
    url = backends[request.param].url
    _empty_tables(url)
    ids = seed(url)
    server = live_server(
        url, env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK, "PASSPORT_KEY_ROTATION_DELAY": "0"}
    )
    yield Provider(server.url, **ids, database_url=url)
