"""``passport db upgrade|current|history``: Alembic migrations."""

from __future__ import annotations

import click
import sqlalchemy.exc

from passport.cli.common import database_unreachable
from passport.cli.common import open_database
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.storage import migrate


@click.group("db")
def db_group() -> None:
    """Create and migrate the database schema."""


@db_group.command("upgrade")
@settings_options
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(config_file: str | None, database_url: str | None, revision: str) -> None:
    """Apply migrations (safe to run from several processes at once)."""
    database = open_database(settings_from(config_file, database_url=database_url))
    try:
        before = migrate.upgrade(database.engine, revision)
        after = migrate.current_revision(database.engine)
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()
    click.echo(f"database schema: {before or 'empty'} -> {after}")


@db_group.command("current")
@settings_options
def current(config_file: str | None, database_url: str | None) -> None:
    """Show the database's revision and whether it is the newest."""
    database = open_database(settings_from(config_file, database_url=database_url))
    try:
        revision = migrate.current_revision(database.engine)
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()
    head = migrate.head_revision()
    state = "(head)" if revision == head else f"(out of date; head is {head})"
    click.echo(f"{revision or 'empty'} {state}")


@db_group.command("history")
def history() -> None:
    """List the migrations this version of Passport knows."""
    for revision, message in migrate.history():
        click.echo(f"{revision}  {message.splitlines()[0] if message else ''}")
