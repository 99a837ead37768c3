"""Column types that behave the same on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy import Dialect
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database.

    MariaDB and SQLite keep no time zone; storing UTC everywhere and
    re-attaching it on load makes comparisons identical on all three.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class JSONList(TypeDecorator[list[str]]):
    """A list of strings kept as JSON text (portable, no JSON column type needed)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> str:
        return json.dumps(list(value or []))

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str]:
        if not value:
            return []
        loaded = json.loads(value)
        return [str(v) for v in loaded] if isinstance(loaded, list) else []
