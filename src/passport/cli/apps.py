"""``passport app ...``: register applications and their allowed origins."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime

import click
import sqlalchemy.exc
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from passport.cli.common import database_unreachable
from passport.cli.common import fail
from passport.cli.common import open_database
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.services.applications import find_by_name
from passport.services.applications import name_key
from passport.services.applications import normalise_origin
from passport.storage.models import Application


def _origins(values: tuple[str, ...]) -> list[str]:
    result = []
    for value in values:
        origin = normalise_origin(value)
        if origin is None or origin != value.strip().lower().rstrip("/"):
            fail(f"'{value}' is not an origin like https://app.example.com[:port]")
        result.append(origin)
    return result


@click.group("app")
def app_group() -> None:
    """Manage the applications that sign users in through Passport."""


@app_group.command("add")
@settings_options
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="Allowed origin (repeatable).")
@click.option("--description", default="", help="What the application is.")
def add(
    config_file: str | None,
    database_url: str | None,
    name: str,
    origins: tuple[str, ...],
    description: str,
) -> None:
    """Register application NAME."""
    if not 1 <= len(name) <= 100:
        fail("the application name must be 1 to 100 characters long")
    database = open_database(settings_from(config_file, database_url=database_url))
    try:
        with database.session(write=True) as db, db.begin():
            app = Application(
                name=name,
                name_key=name_key(name),
                description=description,
                allowed_origins=_origins(origins),
                created_at=datetime.now(UTC),
            )
            db.add(app)
        click.echo(f"application '{name}' registered with id {app.id}")
    except sqlalchemy.exc.IntegrityError:
        fail(f"an application named '{name}' already exists")
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()


@app_group.command("origins")
@settings_options
@click.argument("name")
@click.option("--add", "added", multiple=True, help="Origin to allow (repeatable).")
@click.option("--remove", "removed", multiple=True, help="Origin to stop allowing.")
def set_origins(
    config_file: str | None,
    database_url: str | None,
    name: str,
    added: tuple[str, ...],
    removed: tuple[str, ...],
) -> None:
    """Show or change the origins allowed for application NAME."""
    database = open_database(settings_from(config_file, database_url=database_url))
    try:
        with database.session(write=True) as db, db.begin():
            app = find_by_name(db, name)
            if app is None:
                fail(f"no application named '{name}'")
            current = [o for o in app.allowed_origins if o not in _origins(removed)]
            current += [o for o in _origins(added) if o not in current]
            app.allowed_origins = current
        click.echo("\n".join(current) or "(no origins)")
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()


@app_group.command("list")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_apps(config_file: str | None, database_url: str | None, as_json: bool) -> None:
    """List registered applications."""
    database = open_database(settings_from(config_file, database_url=database_url))
    try:
        with database.session() as db:
            apps = db.scalars(select(Application).order_by(Application.id)).all()
            rows = [(a.id, a.name, a.allowed_origins, a.description) for a in apps]
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"id": i, "name": n, "allowed_origins": o, "description": d}
                    for i, n, o, d in rows
                ],
                indent=2,
            )
        )
        return
    table = Table("id", "name", "allowed origins", "description")
    for i, n, o, d in rows:
        table.add_row(str(i), n, "\n".join(o), d)
    Console().print(table)
