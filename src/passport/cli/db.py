"""``passport db upgrade|current|history``: Alembic migrations; ``passport db purge``:
housekeeping (:mod:`passport.services.housekeeping`)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import click
import sqlalchemy.exc

from passport.cli.common import database_unreachable
from passport.cli.common import json_text
from passport.cli.common import open_database
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.services import housekeeping
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


@db_group.command("purge")
@settings_options
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=housekeeping.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows deleted per transaction.",
)
@click.option(
    "--keep-notifications",
    "keep_days",
    type=click.IntRange(0, None),
    default=housekeeping.Retention().notifications.days,
    show_default=True,
    help="Days to keep delivered or abandoned back-channel logout notifications.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def purge(
    config_file: str | None,
    database_url: str | None,
    batch_size: int,
    keep_days: int,
    as_json: bool,
) -> None:
    """Delete expired sessions, codes, tokens, pending authorizations, old logout
    notifications and spent throttle counters once (served processes do it every 10
    minutes by themselves).  Audit records are never deleted."""
    # Here, not at the top: `passport db upgrade` needs none of the protocol's imports.
    from passport.oidc.backchannel import MAX_ATTEMPTS

    database = open_database(settings_from(config_file, database_url=database_url))
    retention = housekeeping.Retention(
        notifications=timedelta(days=keep_days), delivery_attempts=MAX_ATTEMPTS
    )
    try:
        report = housekeeping.purge_expired(
            database, datetime.now(UTC), batch_size=batch_size, retention=retention
        )
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError) as exc:
        database_unreachable(exc, database)
    finally:
        database.dispose()
    counts = report.as_dict()
    if as_json:
        click.echo(json_text(counts))
        return
    width = max(len(table) for table in counts)
    for table, count in counts.items():
        click.echo(f"{table:<{width}}  {count}")
    click.echo(f"{'total':<{width}}  {report.total}")
