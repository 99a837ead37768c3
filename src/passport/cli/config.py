"""``passport config show``."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.config import describe


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(config_file: str | None, database_url: str | None, as_json: bool) -> None:
    """Print every setting's effective value (secrets masked)."""
    rows = describe(settings_from(config_file, database_url=database_url))
    if as_json:
        click.echo(json.dumps({name: value for name, value, _ in rows}, indent=2))
        return
    table = Table("setting", "value", "meaning")
    for name, value, meaning in rows:
        table.add_row(name, value, meaning)
    Console().print(table)
