"""Create and drop a Passport database with a least-privilege user, exactly as
``docs/sql/`` tells an administrator to (names and password substituted).

Used by the test suite and by the benchmarks.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SQL = Path(__file__).resolve().parent.parent / "docs" / "sql"


def _personalise(script: str, name: str, password: str) -> str:
    """The admin's script with our database/user name and password in place of the defaults."""
    return re.sub(r"\bpassport\b", name, script).replace("change-me", password)


def _run(cmd: list[str], script: str) -> None:
    result = subprocess.run(cmd, input=script, text=True, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {result.stderr.strip()}")


@dataclass
class Backend:
    name: str
    url: str
    drop: Callable[[], None]


def create_mariadb(name: str, password: str) -> Backend:
    script = _personalise((SQL / "mariadb.sql").read_text(), name, password)
    _run(["mariadb", "-uroot", "-h127.0.0.1"], script)
    url = f"mysql+pymysql://{name}:{password}@127.0.0.1:3306/{name}"

    def drop() -> None:
        _run(
            ["mariadb", "-uroot", "-h127.0.0.1"],
            _personalise((SQL / "mariadb-drop.sql").read_text(), name, password),
        )

    return Backend("mariadb", url, drop)


def create_postgresql(name: str, password: str) -> Backend:
    script = _personalise((SQL / "postgresql.sql").read_text(), name, password)
    _run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"], script)
    url = f"postgresql+psycopg://{name}:{password}@127.0.0.1:5432/{name}"

    def drop() -> None:
        _run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q"],
            _personalise((SQL / "postgresql-drop.sql").read_text(), name, password),
        )

    return Backend("postgresql", url, drop)
