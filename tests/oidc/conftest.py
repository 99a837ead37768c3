"""A live Passport with applications and a user, for real OAuth/OIDC clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from oidc_support import KEK
from oidc_support import Provider
from oidc_support import seed
from provision import Backend

from conftest import _empty_tables


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
    yield Provider(server.url, **ids)
