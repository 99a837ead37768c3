"""``passport users import``: existing hashes verified at login and upgraded, bad rows
reported by line, batches all-or-nothing, interrupted imports resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher
from passlib.hash import django_pbkdf2_sha256
from sqlalchemy import func
from sqlalchemy import select

from passport.services.importer import ImportAborted
from passport.services.importer import Importer
from passport.services.importer import checkpoint_path
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import User

from support import Harness

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORDS = {
    "bcrypt": "bcrypt user's own passphrase",
    "django": "django user's own passphrase",
    "argon2": "argon2 user's own passphrase",
}


def reference_hashes() -> dict[str, str]:
    """Hashes made by the reference libraries, as the old systems stored them."""
    return {
        "bcrypt": bcrypt.hashpw(PASSWORDS["bcrypt"].encode(), bcrypt.gensalt(4)).decode(),
        "django": django_pbkdf2_sha256.using(rounds=2000).hash(PASSWORDS["django"]),
        "argon2": PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORDS["argon2"]),
    }


def users(h: Harness) -> int:
    with h.app.services.db.session() as db:
        return db.scalar(select(func.count()).select_from(User)) or 0


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, ["username", "email", "display_name", "groups", "password_hash"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_each_hash_format_logs_in_and_is_upgraded(harness: Harness, tmp_path: Path) -> None:
    hashes = reference_hashes()
    rows = [
        {
            "username": f"{kind}-user",
            "email": f"{kind}@example.com",
            "display_name": kind.title(),
            "groups": "Imported;Staff",
            "password_hash": hashes[kind],
        }
        for kind in hashes
    ]
    report = Importer(harness.app.services.db, NOW).run(write_csv(tmp_path / "u.csv", rows))
    assert (report.imported, report.skipped) == (3, 0)
    for kind, password in PASSWORDS.items():
        assert harness.login(f"{kind}-user", "not the password at all").status_code == 401
        assert harness.login(f"{kind}-user", password).status_code == 200, kind
        with harness.app.services.db.session() as db:
            stored = db.scalars(select(User).where(User.username == f"{kind}-user")).one()
            assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert harness.login(f"{kind}-user", password).status_code == 200
    with harness.app.services.db.session() as db:
        assert sorted(db.scalars(select(Group.name)).all()) == ["Imported", "Staff"]
        assert db.scalar(select(func.count()).select_from(GroupMember)) == 6


def test_bad_rows_are_reported_by_line_and_skipped(harness: Harness, tmp_path: Path) -> None:
    good = reference_hashes()["bcrypt"]
    harness.register("existing")
    rows = [
        {"username": "ok1", "password_hash": good},
        {"username": "x", "password_hash": good},  # line 3: too short
        {"username": "ok2", "password_hash": "plaintext"},  # line 4: not a hash
        {"username": "OK1", "password_hash": good},  # line 5: twice in the file
        {"username": "existing", "password_hash": good},  # line 6: taken
        {"username": "ok3", "email": "nope", "password_hash": good},  # line 7: bad email
        {"username": "ok4", "groups": "1234", "password_hash": good},  # line 8: numeric group
        {"username": "ok5", "password_hash": good},
    ]
    report = Importer(harness.app.services.db, NOW).run(write_csv(tmp_path / "u.csv", rows))
    assert report.imported == 2
    assert [line for line, _ in report.errors] == [3, 4, 5, 6, 7, 8]
    assert "already exists" in dict(report.errors)[6]
    assert users(harness) == 3


def test_look_alike_names_are_reported_not_crashed_on(harness: Harness, tmp_path: Path) -> None:
    """Usernames collide by look-alike key (users.username_skeleton): the importer reports a
    look-alike of a name in the file or in the directory by its line, as it does a taken name."""
    good = reference_hashes()["bcrypt"]
    harness.register("existing")
    rows = [
        {"username": "root", "password_hash": good},
        {"username": "r\u043e\u043et", "password_hash": good},  # line 3: looks like root
        {"username": "\u0435xisting", "password_hash": good},  # line 4: looks like existing
        {"username": "bob", "password_hash": good},
    ]
    report = Importer(harness.app.services.db, NOW).run(write_csv(tmp_path / "u.csv", rows))
    assert report.imported == 2
    assert [line for line, _ in report.errors] == [3, 4]
    assert "looks like" in dict(report.errors)[3] and "already exists" in dict(report.errors)[4]
    assert users(harness) == 3


def test_look_alike_group_names_are_reported(harness: Harness, tmp_path: Path) -> None:
    """Group names collide by look-alike key too (groups.name_skeleton): a row naming a
    look-alike of an existing group, or of another spelling in the file, is reported by line
    (never silently joined to the look-alike group, never a crash)."""
    from passport.services import directory

    good = reference_hashes()["bcrypt"]
    with harness.app.services.db.session(write=True) as db, db.begin():
        directory.create_group(db, "Admins")
    cyrillic_a = "\u0410dmins"  # looks like Admins
    rows = [
        {"username": "ann", "groups": "Staff", "password_hash": good},
        {"username": "ben", "groups": cyrillic_a, "password_hash": good},  # line 3
        {"username": "cat", "groups": "\u0405taff", "password_hash": good},  # line 4: Staff
        {"username": "dan", "groups": "Admins;staff", "password_hash": good},
    ]
    report = Importer(harness.app.services.db, NOW).run(write_csv(tmp_path / "u.csv", rows))
    assert [line for line, _ in report.errors] == [3, 4]
    assert report.imported == 2
    with harness.app.services.db.session() as db:
        assert sorted(db.scalars(select(Group.name)).all()) == ["Admins", "Staff"]
        assert db.scalar(select(func.count()).select_from(GroupMember)) == 3


def test_bytes_that_are_not_utf8_are_reported_by_line(harness: Harness, tmp_path: Path) -> None:
    good = reference_hashes()["bcrypt"].encode()
    path = tmp_path / "u.csv"
    path.write_bytes(
        b"username,email,display_name,groups,password_hash\n"
        b"ann,,,," + good + b"\n"
        b"\xff\xfe,,,," + good + b"\n"  # line 3: not UTF-8
        b"ben,,Ben \xe9,," + good + b"\n"  # line 4: Latin-1 in the display name
        b"cat,,,Staff\xff," + good + b"\n"  # line 5: in a group name
        b"dan,,,," + good + b"\n"
    )
    report = Importer(harness.app.services.db, NOW).run(path)
    assert [line for line, _ in report.errors] == [3, 4, 5]
    assert report.imported == 2 and users(harness) == 2


def test_an_unexpected_cli_error_is_one_line_without_sql_or_secrets(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import sqlalchemy.exc

    from passport import cli

    secret_hash = reference_hashes()["bcrypt"]

    def explode(self: Any, path: Path, resume: bool = True) -> Any:
        raise sqlalchemy.exc.IntegrityError(
            "INSERT INTO users (username, password_hash) VALUES (?, ?)",
            [("root", secret_hash)],
            Exception("UNIQUE constraint failed"),
        )

    monkeypatch.setattr(Importer, "run", explode)
    path = write_csv(tmp_path / "u.csv", [{"username": "root", "password_hash": secret_hash}])
    args = ["passport", "users", "import", str(path), "--database-url"]
    monkeypatch.setattr(sys, "argv", [*args, harness.settings.database_url])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "unexpected IntegrityError (error id " in err and len(err.strip().splitlines()) == 1
    for leaked in ("Traceback", "INSERT", "UNIQUE", secret_hash):
        assert leaked not in out + err


def test_abort_keeps_earlier_batches_and_resumes(harness: Harness, tmp_path: Path) -> None:
    good = reference_hashes()["bcrypt"]
    rows = [{"username": f"user{i:03d}", "password_hash": good} for i in range(10)]
    rows[7]["password_hash"] = "garbage"
    path = write_csv(tmp_path / "u.csv", rows)
    with pytest.raises(ImportAborted, match="line 9"):
        Importer(harness.app.services.db, NOW, batch_size=3, on_error="abort").run(path)
    assert users(harness) == 6  # two whole batches; the third never committed
    rows[7]["password_hash"] = good
    write_csv(path, rows)
    with pytest.raises(ImportAborted, match="file changed"):
        Importer(harness.app.services.db, NOW, batch_size=3).run(path, resume=True)
    report = Importer(harness.app.services.db, NOW, batch_size=3).run(path, resume=False)
    assert (report.imported, report.already_present) == (4, 6)
    assert users(harness) == 10


def test_interrupted_import_resumes_without_duplicates(harness: Harness, tmp_path: Path) -> None:
    good = reference_hashes()["django"]
    path = tmp_path / "u.jsonl"
    path.write_text(
        "".join(
            json.dumps({"username": f"j{i:04d}", "groups": ["Jsonl"], "password_hash": good}) + "\n"
            for i in range(250)
        )
    )
    seen = 0

    def crash_midway(n: int) -> None:
        nonlocal seen
        seen += n
        if seen >= 120:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Importer(harness.app.services.db, NOW, batch_size=50, progress=crash_midway).run(path)
    assert users(harness) == 150  # the batch being reported had committed
    assert json.loads(checkpoint_path(path).read_text())["done_line"] == 150
    report = Importer(harness.app.services.db, NOW, batch_size=50).run(path, resume=True)
    assert report.resumed_from == 150 and report.imported == 100
    assert users(harness) == 250
    assert not checkpoint_path(path).exists()


@pytest.mark.slow
def test_hundred_thousand_rows(factory: Any, tmp_path: Path) -> None:
    h = factory("sqlite")
    hashes = list(reference_hashes().values())
    path = write_csv(
        tmp_path / "big.csv",
        [
            {
                "username": f"bulk{i:06d}",
                "email": f"bulk{i}@example.com",
                "display_name": "",
                "groups": f"team{i % 10}",
                "password_hash": hashes[i % 3],
            }
            for i in range(100_000)
        ],
    )
    report = Importer(h.app.services.db, NOW, batch_size=2000).run(path)
    assert report.imported == 100_000 and not report.errors
    assert users(h) == 100_000
    assert h.login("bulk099999", PASSWORDS["bcrypt"]).status_code == 200


def test_cli_import(backends: Any, tmp_path: Path, harness: Harness) -> None:
    path = write_csv(
        tmp_path / "u.csv",
        [
            {"username": "cli1", "password_hash": reference_hashes()["bcrypt"]},
            {"username": "?", "password_hash": "x"},
        ],
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "passport",
            "users",
            "import",
            str(path),
            "--json",
            "--database-url",
            harness.settings.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["Imported"] == 1 and summary["Skipped"] == 1
    assert summary["Errors"][0]["Line"] == 3
    aborted = subprocess.run(
        [
            sys.executable,
            "-m",
            "passport",
            "users",
            "import",
            str(path),
            "--on-error",
            "abort",
            "--restart",
            "--database-url",
            harness.settings.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert aborted.returncode == 1
    assert "line 3" in aborted.stderr and "Traceback" not in aborted.stderr
