"""SQL expressions that each database spells its own way, written once here.

:class:`hour_number` is the whole hours since 1970-01-01 00:00 UTC of a
:class:`passport.storage.types.UTCDateTime` column (naive UTC in every database), so
that a query can ``GROUP BY`` the hour on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement


class hour_number(FunctionElement[int]):
    """``hour_number(column)``: the hour of a UTC timestamp as a whole number."""

    type = BigInteger()
    inherit_cache = True
    name = "hour_number"


@compiles(hour_number, "sqlite")
def _sqlite(element: hour_number, compiler: Any, **kw: Any) -> str:
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"; strftime('%s') reads it as UTC.  The
    # fraction is cut off first: SQLite rounds it to milliseconds, so that 12:59:59.9999
    # would count as 13:00.
    (column,) = element.clauses
    seconds = f"substr({compiler.process(column, **kw)}, 1, 19)"
    return f"(CAST(strftime('%s', {seconds}) AS INTEGER) / 3600)"


@compiles(hour_number, "postgresql")
def _postgresql(element: hour_number, compiler: Any, **kw: Any) -> str:
    # A timestamp without time zone: its epoch is that of the same wall time in UTC.
    (column,) = element.clauses
    return f"CAST(floor(extract(epoch FROM {compiler.process(column, **kw)}) / 3600) AS BIGINT)"


@compiles(hour_number, "mysql")
@compiles(hour_number, "mariadb")
def _mariadb(element: hour_number, compiler: Any, **kw: Any) -> str:
    # Not UNIX_TIMESTAMP(), which reads a DATETIME in the session's time zone.
    (column,) = element.clauses
    return f"TIMESTAMPDIFF(HOUR, '1970-01-01 00:00:00', {compiler.process(column, **kw)})"
