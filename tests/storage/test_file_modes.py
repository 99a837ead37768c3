"""The SQLite database holds password hashes, emails and the audit log: its file and the
-wal/-shm files beside it are readable by their owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support import STRONG

LOOSE_UMASK = 0o022  # the usual default: files 0644, readable by everyone


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _passport(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "passport", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        umask=LOOSE_UMASK,
        timeout=120,
    )


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Processes started meanwhile (the live server) inherit the usual 022 umask."""
    previous = os.umask(LOOSE_UMASK)
    yield
    os.umask(previous)


def test_db_upgrade_creates_a_private_database(tmp_path: Path) -> None:
    database = tmp_path / "passport.sqlite3"
    result = _passport("db", "upgrade", "--database-url", f"sqlite:///{database}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _mode(database) == 0o600


@pytest.mark.live
def test_served_database_and_its_wal_and_shm_are_private(
    tmp_path: Path, loose_umask: None, live_server: Any
) -> None:
    database = tmp_path / "served.sqlite3"
    server = live_server(f"sqlite:///{database}")
    registered = requests.post(
        server.url + "/Account/register",
        data={"username": "alice", "password": STRONG},
        timeout=30,
    )
    assert registered.status_code == 200, registered.text
    # While the server runs, SQLite keeps the write-ahead log and its shared memory.
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_readable_database_is_tightened_with_one_warning(tmp_path: Path) -> None:
    database = tmp_path / "passport.sqlite3"
    url = f"sqlite:///{database}"
    assert _passport("db", "upgrade", "--database-url", url, cwd=tmp_path).returncode == 0
    database.chmod(0o644)  # as earlier versions left it
    result = _passport("db", "current", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _mode(database) == 0o600
    warnings = [line for line in result.stderr.splitlines() if "could be read by other" in line]
    assert warnings == [
        f"{database} could be read by other users; now 0600 (it holds password hashes)"
    ]
    again = _passport("db", "current", "--database-url", url, cwd=tmp_path)
    assert "could be read" not in again.stderr  # said once, when it was true


def test_a_file_that_is_not_a_database_keeps_its_mode(tmp_path: Path) -> None:
    """A URL naming another file (a typo, or ``sqlite:////etc/passwd``) must not change
    that file: SQLite refuses it, and its mode stays what it was."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database\n")
    other.chmod(0o644)
    result = _passport("user", "list", "--database-url", f"sqlite:///{other}", cwd=tmp_path)
    assert result.returncode != 0
    assert _mode(other) == 0o644
    assert "could be read" not in result.stderr
    assert other.read_text() == "not a database\n"


def test_a_symbolic_link_to_a_database_is_not_followed_to_change_a_mode(tmp_path: Path) -> None:
    database = tmp_path / "real.sqlite3"
    url = f"sqlite:///{database}"
    assert _passport("db", "upgrade", "--database-url", url, cwd=tmp_path).returncode == 0
    database.chmod(0o644)
    link = tmp_path / "link.sqlite3"
    link.symlink_to(database)
    _passport("db", "current", "--database-url", f"sqlite:///{link}", cwd=tmp_path)
    assert _mode(database) == 0o644
