"""The admin console's pages with 100,000 users: how long each takes to answer.

    .venv/bin/python bench/console_pages.py [--backend sqlite|postgresql|mariadb]
        [--users 100000] [--repeat 30]

Imports ``--users`` users (``passport user import``, one bcrypt hash for all, a tenth
disabled by SQL afterwards, one in five without a confirmed address — the importer
confirms none; half are given one), starts ``passport serve`` on the database, signs
an administrator in and fetches each page ``--repeat`` times in turn: the first and
the last page of users, searches (a unique username, a common fragment of many, a
fragment of no one), the filters, the groups, the audit log, the dashboard.  Prints
median and 95th percentile wall time per page, and each median as a ratio to
``/Account/status`` with the same session in the same run (the cheapest signed-in
answer: the baseline that leaves the page's own cost).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bcrypt
import requests
from measure import free_port
from measure import wait_up
from sqlalchemy import create_engine
from sqlalchemy import text

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent / "src")
sys.path.insert(0, str(HERE.parent / "tests"))
PASSPORT = [sys.executable, "-m", "passport"]
ADMIN_PASSWORD = "an administrator's passphrase"
PAGES = [
    ("users, first page", "/admin/users"),
    ("users, last page", "/admin/users?offset={last}"),
    ("search: one username", "/admin/users?q=user0054321"),
    ("search: many (user00999)", "/admin/users?q=user00999"),
    ("search: nobody", "/admin/users?q=zz-nobody"),
    ("search: an email domain", "/admin/users?q=example.org"),
    ("filter: disabled", "/admin/users?state=disabled"),
    ("filter: unconfirmed", "/admin/users?state=unverified"),
    ("a user's page", "/admin/user?id=54321"),
    ("groups", "/admin/groups"),
    ("audit log", "/admin/audit"),
    ("dashboard", "/admin"),
]


def write_users(path: Path, count: int) -> None:
    password_hash = bcrypt.hashpw(b"some passphrase here", bcrypt.gensalt(4)).decode()
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["username", "email", "display_name", "groups", "password_hash"])
        for i in range(count):
            domain = "example.org" if i % 10 == 0 else "example.com"
            writer.writerow(
                [f"user{i:07d}", f"u{i}@{domain}", f"User {i}", f"team{i % 50}", password_hash]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="passport-console-"))
    drop: Callable[[], None] | None = None
    if args.backend == "sqlite":
        database_url = f"sqlite:///{tmp}/console.sqlite3"
    else:
        from provision import create_mariadb
        from provision import create_postgresql

        create = create_mariadb if args.backend == "mariadb" else create_postgresql
        backend = create(f"passport_c{secrets.token_hex(4)}", secrets.token_urlsafe(18))
        database_url, drop = backend.url, backend.drop
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    env["PASSPORT_DATABASE_URL"] = database_url
    server = None
    try:
        subprocess.run([*PASSPORT, "db", "upgrade"], env=env, cwd=tmp, check=True)
        source = tmp / "users.csv"
        write_users(source, args.users)
        started = time.perf_counter()
        subprocess.run(
            [*PASSPORT, "user", "import", str(source), "--json"],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        imported = time.perf_counter() - started
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET disabled = :yes WHERE id % 10 = 3"), {"yes": True})
            conn.execute(
                text("UPDATE users SET email_verified = :yes WHERE id % 5 <> 0"), {"yes": True}
            )
        engine.dispose()
        subprocess.run(
            [*PASSPORT, "admin", "create", "root"],
            input=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n",
            text=True,
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [*PASSPORT, "serve", "--port", str(port)],
            env=env | {"PASSPORT_PUBLIC_URL": base},
            cwd=tmp,
            stdout=(tmp / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_up(base + "/healthz", server)
        browser = requests.Session()
        signed_in = browser.post(
            base + "/Account/login",
            data={"username": "root", "password": ADMIN_PASSWORD},
            headers={"Origin": base},
            timeout=30,
        )
        assert signed_in.json()["Success"], signed_in.text
        last = (args.users // 25) * 25
        urls = [("baseline: /Account/status", "/Account/status")] + [
            (name, path.format(last=last)) for name, path in PAGES
        ]
        times: dict[str, list[float]] = {name: [] for name, _ in urls}
        for _, path in urls:  # once each first: warm caches, check every page answers
            answer = browser.get(base + path, timeout=60, allow_redirects=False)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        for _ in range(args.repeat):
            for name, path in urls:
                started = time.perf_counter()
                answer = browser.get(base + path, timeout=60, allow_redirects=False)
                times[name].append(time.perf_counter() - started)
                assert answer.status_code == 200, (path, answer.status_code)
        baseline = statistics.median(times[urls[0][0]])
        print(
            f"{args.users} users on {args.backend}: imported in {imported:.1f} s; "
            f"{args.repeat} rounds, one page after the other"
        )
        print("| page | median ms | p95 ms | median ÷ Account/status |")
        print("|---|---|---|---|")
        results = {}
        for name, _ in urls:
            ordered = sorted(times[name])
            median = statistics.median(ordered)
            p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
            results[name] = {"median_ms": median * 1000, "p95_ms": p95 * 1000}
            print(f"| {name} | {median * 1000:.1f} | {p95 * 1000:.1f} | {median / baseline:.1f} |")
        out = HERE / "results" / f"console-{args.backend}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"users": args.users, "pages": results}, indent=1) + "\n")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if drop is not None:
            drop()


if __name__ == "__main__":
    main()
