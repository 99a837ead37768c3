"""Untrusted text reaches the administrator's terminal escaped, never as escape
sequences or rich markup; ``--json`` stays exact JSON (security checklist item 45)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from passport.cli import cli
from passport.cli.common import json_text
from passport.cli.common import printable
from passport.services import directory

from support import Harness

HOSTILE_NAME = "\x1b]0;pwned\x07\n"


def passport(h: Harness, *args: str) -> Any:
    result = CliRunner().invoke(
        cli, [*args, "--database-url", h.settings.database_url], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain Ünïcode 😀", "plain Ünïcode 😀"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;pwned\x07\n", "\\x1b]0;pwned\\x07\\x0a"),
        ("\x9b31m", "\\x9b31m"),  # C1 CSI
        ("\x7f", "\\x7f"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # bidi override
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("back\\slash", "back\\\\slash"),
        ("[/] [bold]x", "[/] [bold]x"),  # markup is left alone here; never parsed
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_json_text_is_exact_json_and_safe() -> None:
    value = {"Name": "evil\u202e\x9b\x1b\x7f\u2028😀 \U000e0041", "List": ["[/]"]}
    text = json_text(value, indent=2)
    assert json.loads(text) == value
    assert not any(c in text for c in "\u202e\x9b\x1b\x7f\u2028\U000e0041")
    assert "😀" in text


def test_failed_login_names_are_escaped_in_audit_tail(harness: Harness) -> None:
    failed = harness.login(HOSTILE_NAME, "wrong password, of course")
    assert failed.status_code in (400, 401)
    shown = passport(harness, "audit", "tail").stdout
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]0;pwned\\x07\\x0a" in shown
    assert len(shown.strip().splitlines()) == 1  # the name's newline made no new line
    lines = passport(harness, "audit", "tail", "--json").stdout.splitlines()
    assert json.loads(lines[-1])["Username"] == HOSTILE_NAME
    assert "\x1b" not in "".join(lines)


@pytest.mark.parametrize("display_name", ["[/]", "[bold]x", "[link=x]y[/]"])
def test_markup_in_names_lists_as_written(harness: Harness, display_name: str) -> None:
    assert harness.register("mallory", displayName=display_name).status_code == 200
    listed = passport(harness, "user", "list").stdout
    assert display_name in listed
    assert "\x1b" not in listed
    shown = passport(harness, "user", "show", "mallory").stdout
    assert display_name in shown
    as_json = json.loads(passport(harness, "user", "list", "--json").stdout)
    assert as_json[0]["DisplayName"] == display_name


def test_bidi_and_separators_in_a_display_name_are_refused(harness: Harness) -> None:
    response = harness.register("bob", displayName="Bob\u202egnp.exe\u2028x")
    assert response.status_code == 400


def test_bidi_and_separators_in_a_stored_display_name_are_escaped(harness: Harness) -> None:
    """Names stored before the text rule (services/text.py) still reach the terminal
    escaped."""
    name = "Bob\u202egnp.exe\u2028x"
    assert harness.register("bob").status_code == 200
    with harness.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, "bob")
        assert user is not None
        user.display_name = name
    listed = passport(harness, "user", "list").stdout
    assert "\u202e" not in listed and "\u2028" not in listed
    assert "Bob\\u202egnp.exe\\u2028x" in listed
    assert json.loads(passport(harness, "user", "list", "--json").stdout)[0]["DisplayName"] == name
