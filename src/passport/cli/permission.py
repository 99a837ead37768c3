"""``passport grant add|remove``: grant and revoke an application's permissions."""

from __future__ import annotations

import click

from passport.cli.common import Misuse
from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import pass_cli


@click.group("grant")
def grant_group() -> None:
    """Grant and revoke permissions."""


def _change_grant(
    cli: Cli, add: bool, application: str, permission: str, user: str | None, group: str | None
) -> None:
    if bool(user) == bool(group):
        raise Misuse("give exactly one of --user or --group")
    with cli.transaction() as db:
        app, target, _changed = cli.administration(db).change_grant(
            add, application, permission, username=user, group=group, define_missing=add
        )
    say(f"{'granted' if add else 'revoked'} {app.name}:{target.name}")


@grant_group.command("add")
@click.argument("application")
@click.argument("permission")
@click.option("--user", help="Username to grant to.")
@click.option("--group", help="Group to grant to.")
@pass_cli
def grant_add(
    cli: Cli, application: str, permission: str, user: str | None, group: str | None
) -> None:
    """Grant PERMISSION of APPLICATION (defined if new) to a user or group."""
    _change_grant(cli, True, application, permission, user, group)


@grant_group.command("remove")
@click.argument("application")
@click.argument("permission")
@click.option("--user", help="Username to revoke from.")
@click.option("--group", help="Group to revoke from.")
@pass_cli
def grant_remove(
    cli: Cli, application: str, permission: str, user: str | None, group: str | None
) -> None:
    """Revoke PERMISSION of APPLICATION from a user or group."""
    _change_grant(cli, False, application, permission, user, group)
