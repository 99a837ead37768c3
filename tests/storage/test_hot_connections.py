"""The kept connections of ``Database.hot_read`` outlive no thread.

A WSGI server ends idle request threads (Granian's blocking threads after their idle
timeout) and starts new ones; connections kept per thread were stranded with the threads
that were gone until the pool ran dry and every request waited for its timeout (503).
The kept connections are a free list: a thread takes one for its statement and gives it
back."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from passport.storage.db import Database
from provision import Backend

from conftest import make_settings


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_threads_that_come_and_go_leave_no_connection_checked_out(
    backend: str, backends: dict[str, Backend]
) -> None:
    database = Database(make_settings(backends[backend].url, db_pool_size=2))
    pool = database.engine.pool
    try:
        for _generation in range(10):  # far more threads than the pool could ever strand
            threads = [threading.Thread(target=_read, args=(database,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        # At most the threads that ever read at once hold a kept connection.
        assert pool.checkedout() <= 4  # type: ignore[attr-defined]
        with database.session() as db:  # and the pool still lends
            assert db.execute(text("SELECT 1")).scalar() == 1
    finally:
        database.dispose()


def test_a_broken_statement_drops_its_connection(backends: dict[str, Backend]) -> None:
    database = Database(make_settings(backends["sqlite"].url))
    try:
        with pytest.raises(OperationalError), database.hot_read() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        with database.hot_read() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        assert len(database._idle) == 1
    finally:
        database.dispose()


def _read(database: Database) -> None:
    with database.hot_read() as conn:
        conn.execute(text("SELECT 1")).scalar()
