"""``passport group ...``: manage groups and their members."""

from __future__ import annotations

import click
from sqlalchemy import select

from passport.api.shapes import group_json
from passport.cli.common import json_option
from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import emit
from passport.cli.context import pass_cli
from passport.services import directory
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import User


@click.group("group")
def group_group() -> None:
    """Manage groups and their members."""


@group_group.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
@click.option(
    "--require-mfa/--no-require-mfa",
    default=False,
    show_default=True,
    help="Its members sign in with a second factor.",
)
@pass_cli
def group_add(cli: Cli, name: str, description: str, require_mfa: bool) -> None:
    """Create group NAME."""
    with cli.transaction() as db:
        group = cli.administration(db).create_group(name, description, require_mfa=require_mfa)
    say(f"group '{group.name}' created")


@group_group.command("list")
@json_option
@pass_cli
def group_list(cli: Cli, as_json: bool) -> None:
    """List groups."""
    with cli.transaction() as db:
        rows = [group_json(g) for g in db.scalars(select(Group).order_by(Group.name_key))]
    emit(rows, as_json, ["ID", "Name", "Description", "RequireMfa"])


@group_group.command("show")
@click.argument("name")
@json_option
@pass_cli
def group_show(cli: Cli, name: str, as_json: bool) -> None:
    """Show group NAME and its members."""
    with cli.transaction() as db:
        group = directory.get_group(db, name)
        members = list(
            db.scalars(
                select(User.username)
                .join(GroupMember, GroupMember.user_id == User.id)
                .where(GroupMember.group_id == group.id)
                .order_by(User.username_key)
            ).all()
        )
        row = {**group_json(group, len(members)), "MemberNames": members}
    emit([row], as_json)


@group_group.command("update")
@click.argument("name")
@click.option("--rename", help="New name.")
@click.option("--description", help="New description.")
@click.option(
    "--require-mfa/--no-require-mfa",
    default=None,
    help="Whether its members must sign in with a second factor.",
)
@pass_cli
def group_update(
    cli: Cli, name: str, rename: str | None, description: str | None, require_mfa: bool | None
) -> None:
    """Rename group NAME, change its description, or whether its members need a second
    factor."""
    with cli.transaction() as db:
        group = cli.administration(db).update_group(
            name, name=rename, description=description, require_mfa=require_mfa
        )
    say(f"group '{group.name}' updated")


def _membership(cli: Cli, add: bool, name: str, usernames: tuple[str, ...]) -> None:
    with cli.transaction() as db:
        admin = cli.administration(db)
        for ref in usernames:
            group, _user, _changed = admin.change_membership(add, name, ref)
    verb = "added to" if add else "removed from"
    say(f"{len(usernames)} member(s) {verb} '{group.name}'")


@group_group.command("add-member")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_cli
def group_add_member(cli: Cli, name: str, usernames: tuple[str, ...]) -> None:
    """Put USERNAMES in group NAME."""
    _membership(cli, True, name, usernames)


@group_group.command("remove-member")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_cli
def group_remove_member(cli: Cli, name: str, usernames: tuple[str, ...]) -> None:
    """Take USERNAMES out of group NAME."""
    _membership(cli, False, name, usernames)


@group_group.command("delete")
@click.argument("name")
@pass_cli
def group_delete(cli: Cli, name: str) -> None:
    """Delete group NAME with its memberships and grants."""
    with cli.transaction() as db:
        deleted = cli.administration(db).delete_group(name)
    say(f"group '{deleted}' deleted")
