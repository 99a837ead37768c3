"""``passport audit tail``: read the audit log."""

from __future__ import annotations

import time
from typing import Any

import click
from sqlalchemy import select

from passport.cli.common import json_option
from passport.cli.common import json_text
from passport.cli.common import printable
from passport.cli.context import Cli
from passport.cli.context import pass_cli
from passport.storage.models import AuditEvent


@click.group("audit")
def audit_group() -> None:
    """Read the audit log."""


def _event_row(e: AuditEvent) -> dict[str, Any]:
    return {
        "ID": e.id,
        "At": e.at.isoformat(timespec="seconds"),
        "Event": e.event,
        "Outcome": e.outcome,
        "Username": e.username,
        "Application": e.application,
        "IP": e.ip,
        "Detail": e.detail,
    }


@audit_group.command("tail")
@click.option(
    "-n",
    "--lines",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many recent events (1 to 100,000).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they come.")
@json_option
@pass_cli
def audit_tail(cli: Cli, lines: int, follow: bool, as_json: bool) -> None:
    """Print the newest audit events (JSON Lines with --json)."""

    def show(rows: list[AuditEvent]) -> None:
        for e in rows:
            row = _event_row(e)
            if as_json:
                click.echo(json_text(row))
            else:
                safe = {key: printable(value) for key, value in row.items()}
                click.echo(
                    f"{safe['At']}  {safe['Event']:<20} {safe['Outcome']:<10} "
                    f"{safe['Username']:<20} {safe['IP']:<16} {safe['Detail']}"
                )

    try:
        with cli.services.db.session() as db:
            rows = list(
                reversed(
                    db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(lines)).all()
                )
            )
        show(rows)
        last = rows[-1].id if rows else 0
        while follow:
            time.sleep(1)
            with cli.services.db.session() as db:
                rows = list(
                    db.scalars(
                        select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id)
                    ).all()
                )
            show(rows)
            last = rows[-1].id if rows else last
    except KeyboardInterrupt:
        pass
