"""Fixtures of the web tests: ``h``, a SQLite harness (the console's tests use it)."""

from __future__ import annotations

from typing import Any

import pytest

from support import Harness


@pytest.fixture
def h(factory: Any) -> Harness:
    harness: Harness = factory("sqlite")
    return harness
