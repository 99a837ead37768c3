"""``passport serve`` and friends, as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from passport.storage import migrate
from provision import Backend
from provision import create_postgresql


def passport(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "passport", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment | (env or {}),
        timeout=60,
    )


def test_serve_on_sqlite_migrates_and_answers(live_server: Any, tmp_path: Path) -> None:
    server = live_server(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    response = requests.get(server.url + "/Service/getApplication?name=Passport", timeout=5)
    assert response.status_code == 200
    assert response.json()["Data"]["Application"] == {"ID": 1}
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
    missing = requests.get(server.url + "/x/y?secret=hunter2", timeout=5)
    assert missing.status_code == 404
    server.stop()
    log = server.output()
    assert "GET /Service/getApplication 200" in log
    assert "hunter2" not in log and "Traceback" not in log


def test_serve_refuses_out_of_date_schema_on_postgresql(tmp_path: Path, live_server: Any) -> None:
    backend = create_postgresql(f"passport_s{secrets.token_hex(4)}", secrets.token_urlsafe(18))
    try:
        refused = passport("serve", "--port", "1", "--database-url", backend.url, cwd=tmp_path)
        assert refused.returncode == 1  # an operational failure (click: 1), not bad usage
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "run `passport db upgrade` first" in lines[0]
        assert "Traceback" not in refused.stderr

        assert passport(
            "db", "current", "--database-url", backend.url, cwd=tmp_path
        ).stdout.startswith("empty (out of date")
        upgraded = passport("db", "upgrade", "--database-url", backend.url, cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        current = passport("db", "current", "--database-url", backend.url, cwd=tmp_path)
        assert current.stdout.strip() == f"{migrate.head_revision()} (head)"

        server = live_server(backend.url, "--workers", "2")
        response = requests.get(server.url + "/Service/getApplication?name=Passport", timeout=5)
        assert response.json()["Data"]["Application"] == {"ID": 1}
    finally:
        backend.drop()


def test_bad_settings_stop_start_up_with_one_line(tmp_path: Path) -> None:
    cases = [
        ({"PASSPORT_PORT": "eighty"}, "setting port: 'eighty' is not a valid int"),
        ({"PASSPORT_DATABASE_URL": "oracle://x"}, "unsupported scheme 'oracle'"),
        ({"PASSPORT_CONFIG": str(tmp_path / "missing.toml")}, "missing.toml"),
        ({"PASSPORT_ARGON2_MEMORY_KIB": "1024"}, "argon2_memory_kib must be >= 19456"),
    ]
    for env, expected in cases:
        result = passport("serve", cwd=tmp_path, env=env)
        assert result.returncode == 2, env
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert expected in lines[0]


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://passport:topsecret@127.0.0.1:1/passport"
    result = passport("serve", "--database-url", url, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "passport: cannot reach the database (OperationalError); "
        "is it running and is the URL right?"
    ]


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "passport.toml"
    config.write_text("[passport]\nport = 9000\nworkers = 3\n")
    result = passport(
        "config",
        "show",
        "--json",
        "--config",
        str(config),
        cwd=tmp_path,
        env={
            "PASSPORT_WORKERS": "4",
            "PASSPORT_DATABASE_URL": "postgresql+psycopg://passport:topsecret@db/passport",
            "PASSPORT_REDIS_URL": "redis://:redispw@cache:6379/0",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "topsecret" not in result.stdout and "redispw" not in result.stdout
    import json

    shown = json.loads(result.stdout)
    assert shown["port"] == "9000"
    assert shown["workers"] == "4"
    assert shown["database_url"] == "postgresql+psycopg://passport:***@db/passport"


@pytest.mark.parametrize("database", ["sqlite", "mariadb", "postgresql"])
def test_contract_through_a_real_server(
    database: str, backends: dict[str, Backend], live_server: Any
) -> None:
    server = live_server(backends[database].url)
    get = lambda path: requests.get(server.url + path, timeout=5)  # noqa: E731
    ok = get("/service/GETAPPLICATION?NAME=passport")
    assert ok.status_code == 200 and ok.json()["Data"]["Application"] == {"ID": 1}
    assert ok.headers["Content-Type"] == "application/json; charset=utf-8"
    assert get("/Service/getApplication").json()["ClientExceptions"][0]["Number"] == "1"
    assert get("/Service/getApplication?name=X").status_code == 404
    assert get("/c/m").json()["ClientExceptions"][0]["Value"] == "c/m"
    jsonp = get("/Service/getApplication?name=Passport&callback=cb")
    assert jsonp.text.startswith("/**/cb(") and jsonp.status_code == 200
    assert get("/Service/getApplication?name=Passport&callback=alert(1)").status_code == 400
    wrong = requests.post(server.url + "/Service/getApplication", timeout=5)
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    huge = requests.post(
        server.url + "/Account/register",
        data={"username": "x", "password": "p" * 10_000_000},
        headers={"Origin": server.url},
        timeout=30,
    )
    assert huge.status_code == 413
    assert huge.json()["ClientExceptions"][0]["Number"] == "413"
    assert get("/readyz").status_code == 200
