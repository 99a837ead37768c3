"""The CLI follows click's conventions: exit status 1 for a failure, 2 for bad usage, one
line and never a traceback; ``passport --help`` imports no command module; the old
``passport users import`` spelling still works, hidden."""

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import click
import pytest
from click.testing import CliRunner

from passport.cli import COMMANDS
from passport.cli import cli

HEAVY = ("sqlalchemy", "werkzeug", "rich", "passport.composition", "passport.services")


def run(*args: str, stdin: str = "") -> Any:
    return CliRunner().invoke(cli, list(args), input=stdin)


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'passport.sqlite3'}"
    upgraded = run("db", "upgrade", "--database-url", url)
    assert upgraded.exit_code == 0, upgraded.output
    return url


def test_help_imports_no_command_module() -> None:
    """`passport --help` lists every command with its short help from the lazy map: no
    SQLAlchemy, Werkzeug, rich, composition or service is imported for it."""
    probe = (
        "import sys\n"
        "from passport.cli import main\n"
        "sys.argv = ['passport', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "print('MODULES', *sorted(sys.modules))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    help_text, _, modules_line = result.stdout.partition("MODULES ")
    modules = modules_line.split()
    loaded = [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert loaded == []
    assert not [m for m in modules if m.startswith("passport.cli.") and m != "passport.cli.common"]
    listed = commands_in(help_text)
    assert sorted(listed) == sorted(n for n, entry in COMMANDS.items() if not entry.hidden)
    for name, shown in listed.items():  # click cuts a long one at the terminal's width
        assert COMMANDS[name].short_help.startswith(shown.removesuffix("...")), name


def commands_in(help_text: str) -> dict[str, str]:
    """The Commands section of a help text: name -> short help."""
    section = help_text.split("Commands:\n", 1)[1]
    return dict(line.strip().split(None, 1) for line in section.splitlines() if line.strip())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_lazy_map_tells_the_commands_own_short_help(name: str) -> None:
    entry = COMMANDS[name]
    module_name, attribute = entry.target.split(":")
    command = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(command, click.Command) and command.name == name
    assert command.hidden is entry.hidden
    stand_in = click.Command(name, help=entry.short_help)
    assert command.get_short_help_str(200) == stand_in.get_short_help_str(200)


def test_every_command_of_a_group_is_reachable() -> None:
    """Every subcommand resolves through the lazy root (no module fails to import)."""
    for name in COMMANDS:
        shown = run(name, "--help")
        assert shown.exit_code == 0, (name, shown.output)


@pytest.mark.parametrize(
    "args",
    [
        ("nonsense",),
        ("user", "shw", "erin"),
        ("user", "show"),  # missing argument
        ("user", "list", "--no-such-option"),
        ("user", "import", "/no/such/file.csv"),
        ("audit", "tail", "-n", "many"),
        ("audit", "tail", "-n", "-1"),  # review: printed the whole log
        ("audit", "tail", "-n", "99999999999999999999"),  # review: an unexpected OverflowError
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_not_found_exits_1_with_one_line(database: str) -> None:
    result = run("user", "show", "ghost", "--database-url", database)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["passport: Could not find user 'ghost'."]
    refused = run("app", "delete", "Passport", "--yes", "--database-url", database)
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1


def test_a_message_with_terminal_sequences_is_shown_escaped(database: str) -> None:
    result = run("user", "show", "\x1b]0;pwned\x07", "--database-url", database)
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\\x1b]0;pwned\\x07" in result.stderr


def test_an_unreachable_database_exits_1_with_one_line() -> None:
    url = "postgresql+psycopg://passport:topsecret@127.0.0.1:1/passport"
    for args in (("user", "list"), ("group", "add", "Staff"), ("db", "current")):
        result = run(*args, "--database-url", url)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.strip().splitlines() == [
            "passport: cannot reach the database (OperationalError); "
            "is it running and is the URL right?"
        ], args
        assert "topsecret" not in result.output


def test_a_bad_setting_is_bad_usage_in_one_line(database: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("PASSPORT_PORT", "eighty")
    result = run("user", "list", "--database-url", database)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "passport: configuration error: setting port: 'eighty' is not a valid int"
    ]


def test_grant_needs_exactly_one_holder(database: str) -> None:
    result = run("grant", "add", "Passport", "admin", "--database-url", database)
    assert result.exit_code == 2
    assert result.stderr.strip() == "passport: give exactly one of --user or --group"


def _csv(path: Path, *usernames: str) -> Path:
    hashed = bcrypt.hashpw(b"an imported passphrase", bcrypt.gensalt(4)).decode()
    rows = "".join(f"{name},,,,{hashed}\n" for name in usernames)
    path.write_text("username,email,display_name,groups,password_hash\n" + rows)
    return path


def test_user_import_and_its_old_spelling(database: str, tmp_path: Path) -> None:
    """`passport user import` is the spelling; `passport users import` still works for the
    scripts written for it, and is not listed."""
    new = run(
        "user", "import", str(_csv(tmp_path / "a.csv", "ann")), "--json", "--database-url", database
    )
    assert new.exit_code == 0, new.output
    assert json.loads(new.stdout)["Imported"] == 1
    old = run(
        "users",
        "import",
        str(_csv(tmp_path / "b.csv", "bob")),
        "--json",
        "--database-url",
        database,
    )
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout)["Imported"] == 1
    listed = json.loads(run("user", "list", "--json", "--database-url", database).stdout)
    assert [u["Username"] for u in listed] == ["ann", "bob"]
    assert "users" not in commands_in(run("--help").stdout)
    assert run("users", "--help").exit_code == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_old_schema_is_told_to_upgrade_on_every_database(backend: str, tmp_path: Path) -> None:
    """PostgreSQL reports a missing column as a ProgrammingError, not an OperationalError:
    it is explained too, not left to the last resort."""
    from provision import create_postgresql

    server = None
    if backend == "postgresql":
        server = create_postgresql(f"passport_c{secrets.token_hex(4)}", secrets.token_urlsafe(18))
        url = server.url
    else:
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    try:
        assert run("db", "upgrade", "--revision", "0005", "--database-url", url).exit_code == 0
        result = run("user", "list", "--database-url", url)
        assert result.exit_code == 1, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "out of date (0005" in line and "run `passport db upgrade` first" in line
    finally:
        if server is not None:
            server.drop()
