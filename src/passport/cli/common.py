"""Shared CLI pieces that cost nothing to import: text that is safe to print in an
administrator's terminal, the failures (click's conventions), the settings options, and
the lazy group that imports a command's module only when that command runs.

Nothing here imports SQLAlchemy, Werkzeug or a service at module level: ``passport
--help`` imports this module and must stay fast.  What a command needs to act (the
composed services, the administrative operations) is in :mod:`passport.cli.context`.
"""

from __future__ import annotations

import importlib
import json
import sys
import unicodedata
from collections.abc import Callable
from collections.abc import Mapping
from typing import IO
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import NoReturn
from typing import TypeVar

import click

if TYPE_CHECKING:
    from passport.config import Settings
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


# -- failures ------------------------------------------------------------------------------------


class Failure(click.ClickException):
    """An operational failure (not found, refused, database unreachable): exit status 1,
    one escaped line ``passport: <message>`` on stderr, never a traceback."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"passport: {printable(self.format_message())}", file=file, err=file is None)


class Misuse(click.UsageError):
    """Bad usage that click cannot see while parsing — a bad setting from the environment
    or the config file, an unusable database URL: exit status 2, like click's own usage
    errors, but one escaped line (the settings may not come from this command line)."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"passport: {printable(self.format_message())}", file=file, err=file is None)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command with ``message``: exit status 1 (:class:`Failure`), or 2 for bad
    usage (:class:`Misuse`)."""
    raise Misuse(message) if code == 2 else Failure(message)


def database_unreachable(exc: Exception, database: Database | None = None) -> NoReturn:
    """A database error, explained: a database that answers but whose schema is older than
    this Passport (a missing table or column) is told to upgrade, not to check the URL."""
    raise database_failure(exc, database) from None


def database_failure(exc: Exception, database: Database | None = None) -> Failure:
    if database is not None and (outdated := schema_out_of_date(database)) is not None:
        return outdated
    return Failure(
        f"cannot reach the database ({type(exc).__name__}); is it running and is the URL right?"
    )


def schema_out_of_date(database: Database) -> Failure | None:
    """The failure to show when ``database`` answers at an older schema revision."""
    import sqlalchemy.exc

    from passport.storage import migrate

    try:
        revision = migrate.current_revision(database.engine)
    except sqlalchemy.exc.SQLAlchemyError:
        return None
    finally:
        database.dispose()
    head = migrate.head_revision()
    if revision == head:
        return None
    return Failure(
        f"the database schema is out of date ({revision or 'empty'}, need {head}); "
        "run `passport db upgrade` first"
    )


# ``ctx.meta`` key: how to find the database a command used, to explain its errors
# (set by ``pass_cli``; a function, so that nothing is opened just to be remembered).
DATABASE = "passport.database"


def click_error(
    exc: Exception, database: Callable[[], Database] | None = None
) -> click.ClickException | None:
    """The one translation of what services raise into click's failures; ``None`` for an
    unexpected exception (``main`` reports it in one line with an error id)."""
    from passport.config import ConfigError
    from passport.errors import PassportError

    if isinstance(exc, PassportError):  # not found, refused by policy, unavailable ...
        return Failure(exc.message)
    if isinstance(exc, ConfigError):
        return Misuse(f"configuration error: {exc}")
    # Only loaded modules are asked: an exception cannot be of a class never imported.
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.OperationalError):
        return database_failure(exc, database() if database is not None else None)
    if sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.ProgrammingError):
        # PostgreSQL reports a missing table so: explained only if the schema is old.
        return schema_out_of_date(database()) if database is not None else None
    keys = sys.modules.get("passport.oidc.keys")
    if keys is not None and isinstance(exc, keys.KeyConfigurationError):
        return Failure(str(exc))
    return None


# -- settings ------------------------------------------------------------------------------------


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


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def settings_from(config_file: str | None, **overrides: Any) -> Settings:
    from passport.config import load_settings

    return load_settings(config_file=config_file, overrides=overrides)


def open_database(settings: Settings) -> Database:
    import sqlalchemy.exc

    from passport.storage.db import Database

    try:
        return Database(settings)
    except (ValueError, sqlalchemy.exc.ArgumentError) as exc:
        raise Misuse(f"cannot use database_url: {exc}") from None


# -- the lazy root group -------------------------------------------------------------------------


class Lazy(NamedTuple):
    """A command known by name before its module is imported: ``"module:attribute"`` and
    the short help ``passport --help`` shows (tests check it against the command's)."""

    target: str
    short_help: str
    hidden: bool = False


class LazyGroup(click.Group):
    """click's documented lazy-loading group: a command's module is imported when that
    command runs (or its own ``--help`` is asked), never to list the commands.

    It is also the one place where failures become click's: every command runs inside
    its :meth:`invoke`, so a service's :class:`~passport.errors.ClientError`, a bad
    setting or an unreachable database ends as one line and the right exit status."""

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        module_name, attribute = self.lazy[name].target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[name].target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, laid out as click's own ``format_commands``
        does, from the lazy map: nothing is imported to list them."""
        shown: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            entry = self.lazy.get(name)
            command: click.Command | None
            if entry is not None:  # a stand-in that knows only the short help
                command = click.Command(name, help=entry.short_help, hidden=entry.hidden)
            else:
                command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                shown.append((name, command))
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in shown])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            mapped = click_error(exc, ctx.meta.get(DATABASE))
            if mapped is None:
                raise
            raise mapped from None
