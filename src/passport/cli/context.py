"""What a command needs to act: the composed services, a transaction, the operations.

The commands of ``passport admin|user|group|grant|app|keys|audit`` are the operations of
:mod:`passport.services.administration` (shared with the admin API), acted by the
machine's operator: whoever can read the database credentials holds every right, so the
escalation policy lets them through, but every change is audited with the actor
``cli:<os user>`` and ends what it must end (sessions, tokens, back-channel logout)
exactly as through the API.  Output is a table by default and JSON with ``--json``;
untrusted text is printed escaped.  A command parses, calls one service operation and
formats: failures are translated in one place (:class:`passport.cli.common.LazyGroup`).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from passport.cli.common import DATABASE
from passport.cli.common import json_text
from passport.cli.common import printable
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.composition import Services
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.audit import write as write_audit
from passport.services.policy import Actor


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str] | None = None) -> None:
    """Rows as a table (every cell plain text, escaped: never rich markup) or as JSON."""
    if as_json:
        click.echo(json_text(rows, indent=2))
        return
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(*columns)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    Console().print(table)


def _cell(value: Any) -> Text:
    if isinstance(value, list):
        return Text("\n".join(printable(v) for v in value))
    return Text("" if value is None else printable(value))


def operator_name() -> str:
    """The operating-system user running the command (for the audit log)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def prompt_password(label: str = "Password") -> str:
    return str(click.prompt(label, hide_input=True, confirmation_prompt=True))


class Cli:
    """What a command needs: the composed services, a transaction, the operations."""

    def __init__(self, config_file: str | None, database_url: str | None) -> None:
        self.services = Services(settings_from(config_file, database_url=database_url))
        self.now = datetime.now(UTC)
        self.caller = Caller(ip="cli", user_agent="passport-cli", now=self.now)
        self.actor = Actor.operator(operator_name())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction, committed if the block ends normally; the connections are
        released either way.  Errors go up to the group, which explains them."""
        try:
            with self.services.db.session(write=True) as db, db.begin():
                yield db
        finally:
            self.services.close()

    def accounts(self, db: Session) -> Accounts:
        """The account rules in ``db``'s transaction: audit records are written in it,
        after-actions run at once."""
        return self.services.accounts(
            db, audit=lambda record, durable=False: write_audit(db, record), after=_run
        )

    def administration(self, db: Session) -> Administration:
        """The administrative operations, acted by this machine's operator."""
        # Another process's cached origins expire by themselves within seconds.
        return Administration(self.accounts(db), self.actor, self.caller, origins_changed=_nothing)


def _nothing() -> None:
    return None


def _run(action: Callable[[], None]) -> None:
    action()


def pass_cli(func: Callable[..., Any]) -> Callable[..., Any]:
    """Replace ``--config``/``--database-url`` with a ready :class:`Cli`."""

    @settings_options
    @click.pass_context
    def wrapper(
        ctx: click.Context, /, config_file: str | None, database_url: str | None, **kwargs: Any
    ) -> Any:
        cli = Cli(config_file, database_url)
        ctx.meta[DATABASE] = lambda: cli.services.db
        try:
            return ctx.invoke(func, cli, **kwargs)
        finally:
            cli.services.close()

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper
