"""The administrator's first steps from the README, through the real CLI, on every database."""

from __future__ import annotations

import getpass
import json
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from passport.cli import cli
from passport.storage.models import AuditEvent

from support import STRONG
from support import Harness


def passport(h: Harness, *args: str, stdin: str = "") -> Any:
    """Run a CLI command in process (click's runner): the same code, without a
    Python start-up per command; ``passport serve`` has real-process tests."""
    result = CliRunner().invoke(
        cli, [*args, "--database-url", h.settings.database_url], input=stdin
    )
    result.returncode = result.exit_code
    return result


def test_readme_walkthrough(harness: Harness) -> None:
    twice = f"{STRONG}\n{STRONG}\n"
    created = passport(harness, "admin", "create", "root", stdin=twice)
    assert created.returncode == 0, created.stderr
    assert STRONG not in created.stdout + created.stderr
    app = passport(harness, "app", "add", "Wiki", "--origin", "https://wiki.example.com", "--json")
    assert app.returncode == 0, app.stderr
    secret = json.loads(app.stdout)[0]["ClientSecret"]
    assert len(secret) >= 43
    assert passport(harness, "group", "add", "Editors").returncode == 0
    assert passport(harness, "grant", "add", "Wiki", "edit", "--group", "Editors").returncode == 0
    assert passport(harness, "user", "add", "erin", stdin=twice).returncode == 0
    assert passport(harness, "group", "add-member", "Editors", "erin").returncode == 0

    shown = json.loads(passport(harness, "user", "show", "erin", "--json").stdout)[0]
    assert shown["Groups"] == ["Editors"]
    listed = json.loads(passport(harness, "app", "list", "--json").stdout)
    assert [a["Name"] for a in listed] == ["Passport", "Wiki"]
    assert secret not in passport(harness, "app", "show", "Wiki", "--json").stdout

    harness.app.forget_origins()
    browser = harness.new_client()
    browser.post("/Account/login", data={"username": "erin", "password": STRONG})
    answer = browser.get(
        "/Permission/check?application=Wiki&permission=edit",
        headers={"Origin": "https://wiki.example.com"},
    )
    assert json.loads(answer.get_data(as_text=True))["Data"] == {"Granted": True}
    assert answer.headers["Access-Control-Allow-Origin"] == "https://wiki.example.com"

    root = harness.new_client()
    root.post("/Account/login", data={"username": "root", "password": STRONG})
    assert root.get("/Users/list").status_code == 200

    logout = passport(harness, "user", "logout-all", "erin")
    assert logout.returncode == 0 and "1 session(s)" in logout.stdout
    assert passport(harness, "user", "disable", "erin").returncode == 0
    tail = passport(harness, "audit", "tail", "--json", "-n", "50")
    events = [json.loads(line)["Event"] for line in tail.stdout.splitlines()]
    assert {"admin_create", "app_create", "group_create", "grant", "user_disable"} <= set(events)


def test_cli_errors_are_one_clear_line(factory: Any) -> None:
    harness = factory("sqlite")
    for args in (
        ("user", "show", "ghost"),
        ("group", "add-member", "Nope", "ghost"),
        ("grant", "add", "Wiki", "edit"),
        ("app", "add", "Passport"),
        ("app", "add", "Bad", "--origin", "javascript:alert(1)"),
    ):
        result = passport(harness, *args)
        assert result.returncode != 0, args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    weak = passport(harness, "user", "add", "frank", stdin="password\npassword\n")
    assert weak.returncode == 1 and "at least 12" in weak.stderr


def test_cli_changes_are_audited_with_the_operator(harness: Harness) -> None:
    twice = f"{STRONG}\n{STRONG}\n"
    assert passport(harness, "user", "add", "erin", stdin=twice).returncode == 0
    assert passport(harness, "group", "add", "Editors").returncode == 0
    assert passport(harness, "group", "add-member", "Editors", "erin").returncode == 0
    assert passport(harness, "user", "disable", "erin").returncode == 0
    tail = passport(harness, "audit", "tail", "--json", "-n", "50")
    events = {row["Event"]: row for row in map(json.loads, tail.stdout.splitlines())}
    operator = f"cli:{getpass.getuser()}"
    for event in ("user_create", "group_create", "group_add_member", "user_disable"):
        assert json.loads(events[event]["Detail"])["actor"] == operator, event
    with harness.app.services.db.session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.event == "user_disable")).all()
        assert [(r.actor_id, r.username, r.ip) for r in rows] == [(None, "erin", "cli")]


def test_the_cli_and_the_api_give_one_answer(harness: Harness) -> None:
    """The same operation refuses the same input with the same message on both."""
    assert passport(harness, "app", "add", "Spa", "--public").returncode == 0
    cli_answer = passport(harness, "app", "rotate-secret", "Spa")
    assert cli_answer.returncode == 1
    root = harness.new_client()
    harness.register("root")
    assert passport(harness, "admin", "create", "root").returncode == 0
    root.post("/Account/login", data={"username": "root", "password": STRONG})
    api_answer = root.post("/Applications/rotateSecret", data={"application": "Spa"})
    message = json.loads(api_answer.get_data(as_text=True))["ClientExceptions"][0]["Message"]
    assert cli_answer.stderr.strip() == f"passport: {message}"
    for args in (("app", "disable", "Passport"), ("app", "delete", "Passport", "--yes")):
        refused = passport(harness, *args)
        assert refused.returncode == 1 and "Passport" in refused.stderr, args


def test_app_scopes_from_the_cli(harness: Harness) -> None:
    added = passport(
        harness, "app", "add", "Batch", "--scope", "jobs:run", "--scope", "r", "--json"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)[0]["Scopes"] == ["jobs:run", "r"]
    assert passport(harness, "app", "update", "Batch", "--scope", "x").returncode == 0
    shown = json.loads(passport(harness, "app", "show", "Batch", "--json").stdout)[0]
    assert shown["Scopes"] == ["x"]
    refused = passport(harness, "app", "update", "Batch", "--scope", 'a"b')
    assert refused.returncode == 1 and "scope" in refused.stderr


def test_app_refresh_tokens_from_the_cli(harness: Harness) -> None:
    """``--no-refresh-tokens`` / ``--refresh-tokens`` (OIDC Core §11 policy) on add and
    update; ``update`` without either leaves the setting as it is."""
    added = passport(harness, "app", "add", "Batch", "--json")
    assert json.loads(added.stdout)[0]["RefreshTokens"] is True
    added = passport(harness, "app", "add", "Cal", "--no-refresh-tokens", "--json")
    assert json.loads(added.stdout)[0]["RefreshTokens"] is False
    assert passport(harness, "app", "update", "Batch", "--no-refresh-tokens").returncode == 0
    assert passport(harness, "app", "update", "Batch", "--description", "d").returncode == 0
    shown = json.loads(passport(harness, "app", "show", "Batch", "--json").stdout)[0]
    assert shown["RefreshTokens"] is False
    assert passport(harness, "app", "update", "Batch", "--refresh-tokens").returncode == 0
    shown = json.loads(passport(harness, "app", "show", "Batch", "--json").stdout)[0]
    assert shown["RefreshTokens"] is True


def test_app_device_grant_from_the_cli(harness: Harness) -> None:
    """``--device-grant`` / ``--no-device-grant`` (RFC 8628) on add and update; off by
    default, and ``update`` without either leaves it as it is."""
    added = passport(harness, "app", "add", "Batch", "--json")
    assert json.loads(added.stdout)[0]["DeviceGrant"] is False
    added = passport(harness, "app", "add", "Tv", "--device-grant", "--json")
    assert json.loads(added.stdout)[0]["DeviceGrant"] is True
    assert passport(harness, "app", "update", "Batch", "--device-grant").returncode == 0
    assert passport(harness, "app", "update", "Batch", "--description", "d").returncode == 0
    shown = json.loads(passport(harness, "app", "show", "Batch", "--json").stdout)[0]
    assert shown["DeviceGrant"] is True
    assert passport(harness, "app", "update", "Batch", "--no-device-grant").returncode == 0
    shown = json.loads(passport(harness, "app", "show", "Batch", "--json").stdout)[0]
    assert shown["DeviceGrant"] is False


def test_the_operator_setting_for_private_backchannel_targets_reaches_the_cli(
    harness: Harness, monkeypatch: Any
) -> None:
    """PASSPORT_BACKCHANNEL_ALLOW_PRIVATE is read from the settings of whoever registers
    the application (the README's example application runs on 127.0.0.1)."""
    uri = "http://127.0.0.1:5000/backchannel-logout"
    args = ["app", "add", "Example", "--redirect-uri", "http://127.0.0.1:5000/callback"]
    refused = passport(harness, *args, "--backchannel-logout-uri", uri)
    assert refused.returncode == 1 and "public host" in refused.stderr
    monkeypatch.setenv("PASSPORT_BACKCHANNEL_ALLOW_PRIVATE", "true")
    allowed = passport(harness, *args, "--backchannel-logout-uri", uri, "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)[0]["BackchannelLogoutUri"] == uri


def test_an_old_schema_is_told_to_upgrade_not_to_check_the_url(tmp_path: Any) -> None:
    """A database at an older revision answers, but lacks tables and columns: the operator
    is told to run `passport db upgrade`, not that the database cannot be reached."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    runner = CliRunner()
    old = runner.invoke(cli, ["db", "upgrade", "--revision", "0005", "--database-url", url])
    assert old.exit_code == 0, old.output
    for args in (["user", "list"], ["group", "add", "Staff"], ["app", "list"]):
        result = runner.invoke(cli, [*args, "--database-url", url])
        assert result.exit_code != 0
        assert "passport db upgrade" in result.output and "out of date" in result.output, args
        assert "cannot reach" not in result.output and "Traceback" not in result.output
