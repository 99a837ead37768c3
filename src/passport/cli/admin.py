"""``passport admin create``: the first administrator."""

from __future__ import annotations

import click

from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import pass_cli
from passport.cli.context import prompt_password
from passport.services import directory


@click.group("admin")
def admin_group() -> None:
    """Bootstrap administration."""


@admin_group.command("create")
@click.argument("username")
@click.option("--email", help="Email address.")
@pass_cli
def admin_create(cli: Cli, username: str, email: str | None) -> None:
    """Create USERNAME as an administrator (password prompted twice), or make an
    existing user one.  This is how the first administrator comes to be."""
    with cli.transaction() as db:
        exists = directory.find_user(db, username) is not None
    password = None if exists else prompt_password()
    with cli.transaction() as db:
        admin = cli.administration(db)
        if password is not None:
            admin.create_user(username, password, email, None)
        user = admin.make_administrator(username)
    say(f"{user.username} is an administrator")
