"""Time ``passport users import`` of a generated 100,000-row CSV on a fresh SQLite file.

    .venv/bin/python bench/import_users.py [--rows 100000] [--batch-size 1000]

Prints rows/s, beside the baseline of the same rows written by a bare
``executemany`` into the same table in the same run (the floor of what the
database itself costs).
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import bcrypt

from passport.config import load_settings
from passport.services.importer import Importer
from passport.storage import migrate
from passport.storage.db import Database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="passport-import-"))
    password_hash = bcrypt.hashpw(b"some passphrase here", bcrypt.gensalt(4)).decode()
    source = tmp / "users.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["username", "email", "display_name", "groups", "password_hash"])
        for i in range(args.rows):
            writer.writerow(
                [f"user{i:07d}", f"u{i}@example.com", f"User {i}", f"team{i % 50}", password_hash]
            )

    database = Database(
        load_settings(environ={}, overrides={"database_url": f"sqlite:///{tmp}/passport.sqlite3"})
    )
    migrate.upgrade(database.engine)
    started = time.perf_counter()
    report = Importer(database, datetime.now(UTC), batch_size=args.batch_size).run(source)
    passport_seconds = time.perf_counter() - started

    raw = sqlite3.connect(tmp / "raw.sqlite3")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute(
        "CREATE TABLE users (username TEXT UNIQUE, email TEXT UNIQUE, display_name TEXT,"
        " password_hash TEXT)"
    )
    started = time.perf_counter()
    with source.open(newline="") as fh:
        rows = [
            (r["username"], r["email"], r["display_name"], r["password_hash"])
            for r in csv.DictReader(fh)
        ]
    for i in range(0, len(rows), args.batch_size):
        with raw:
            raw.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows[i : i + args.batch_size])
    raw_seconds = time.perf_counter() - started

    print(f"rows={args.rows} batch={args.batch_size} imported={report.imported}")
    rate = args.rows / passport_seconds
    print(f"passport users import : {passport_seconds:6.2f} s  {rate:9.0f} rows/s")
    print(f"bare executemany       : {raw_seconds:6.2f} s  {args.rows / raw_seconds:9.0f} rows/s")
    print(f"ratio (passport/bare)  : {raw_seconds / passport_seconds:6.2f}")


if __name__ == "__main__":
    main()
