"""The test suite's own fixture: between tests every table is emptied (or restored), so
that no row of one test reaches the next, and no child row is left whose parent went
(on SQLite the emptying engine does not enforce foreign keys, and `passport serve`
refuses a database with such rows)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy import inspect

from conftest import EMPTIED
from conftest import NOT_EMPTIED


def test_every_table_of_the_schema_is_emptied_or_restored(sqlite_template: Path) -> None:
    engine = create_engine(f"sqlite:///{sqlite_template}")
    try:
        tables = set(inspect(engine).get_table_names()) - {"sqlite_sequence"}
    finally:
        engine.dispose()
    assert tables - set(EMPTIED) - set(NOT_EMPTIED) == set()
    assert set(EMPTIED) <= tables  # and names no table that is not there
