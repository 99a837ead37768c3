"""Shared CLI pieces: the settings options, clear one-line failures, and text that is
safe to print in an administrator's terminal."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Callable
from typing import Any
from typing import NoReturn
from typing import TypeVar

import click
import sqlalchemy.exc

from passport.config import Settings
from passport.config import load_settings
from passport.storage import migrate
from passport.storage.db import Database

F = TypeVar("F", bound=Callable[..., Any])


# Characters a terminal may act on instead of showing: C0 and C1 controls and DEL (escape
# sequences: ESC, CSI U+009B, OSC ...), line/paragraph separators, and format characters
# (bidi overrides such as U+202E that reorder what is shown), lone surrogates.
_ACTIVE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(value: object) -> str:
    """Untrusted text as it may reach a terminal: every control, separator or format
    character shown escaped (``\\x1b``, ``\\u202e``), and the backslash doubled, so that
    what is shown is unambiguous.  Security checklist item 45."""
    text = "" if value is None else str(value)
    return "".join(
        "\\\\" if c == "\\" else _escape(c) if unicodedata.category(c) in _ACTIVE else c
        for c in text
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: object, indent: int | None = None) -> str:
    """``value`` as exact JSON that is also safe in a terminal: what ``json`` leaves raw
    inside strings (DEL, C1 controls, separators, format characters) is ``\\u``-escaped."""
    raw = json.dumps(value, indent=indent, ensure_ascii=False, default=str)
    return "".join(
        _json_escape(c) if ord(c) >= 0x7F and unicodedata.category(c) in _ACTIVE else c for c in raw
    )


def say(message: str, *, err: bool = False) -> None:
    """Print one line that may carry untrusted text (names, values), escaped."""
    click.echo(printable(message), err=err)


def fail(message: str, code: int = 2) -> NoReturn:
    say(f"passport: {message}", err=True)
    sys.exit(code)


def settings_options(func: F) -> F:
    """``--config`` and ``--database-url``, accepted by every command that needs settings."""
    func = click.option(
        "--database-url",
        envvar=None,
        help="Database URL (overrides PASSPORT_DATABASE_URL and the config file).",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        help="TOML settings file (default: $PASSPORT_CONFIG).",
    )(func)
    return func


def settings_from(config_file: str | None, **overrides: Any) -> Settings:
    return load_settings(config_file=config_file, overrides=overrides)


def open_database(settings: Settings) -> Database:
    try:
        return Database(settings)
    except (ValueError, sqlalchemy.exc.ArgumentError) as exc:
        fail(f"cannot use database_url: {exc}")


def database_unreachable(exc: Exception, database: Database | None = None) -> NoReturn:
    """A database error, explained: a database that answers but whose schema is older than
    this Passport (a missing table or column) is told to upgrade, not to check the URL."""
    if database is not None:
        try:
            revision = migrate.current_revision(database.engine)
        except sqlalchemy.exc.SQLAlchemyError:
            revision = "unreachable"
        head = migrate.head_revision()
        if revision != "unreachable" and revision != head:
            fail(
                f"the database schema is out of date ({revision or 'empty'}, need {head}); "
                "run `passport db upgrade` first"
            )
    fail(f"cannot reach the database ({type(exc).__name__}); is it running and is the URL right?")
