"""``passport admin|user|group|grant|audit``: the directory from the command line.

The same operations as the admin API (:mod:`passport.services.administration`),
acted by the machine's operator: whoever can read the database credentials holds
every right, so the escalation policy lets them through, but every change is
audited with the actor ``cli:<os user>`` and ends what it must end (sessions,
tokens, back-channel logout) exactly as through the API.  Output is a table by
default and JSON with ``--json``; untrusted text is printed escaped.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import sqlalchemy.exc
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.api.shapes import group_json
from passport.api.shapes import user_json
from passport.cli.common import database_unreachable
from passport.cli.common import fail
from passport.cli.common import json_text
from passport.cli.common import printable
from passport.cli.common import say
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.composition import Services
from passport.errors import ClientError
from passport.services import directory
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.audit import write as write_audit
from passport.services.importer import ImportAborted
from passport.services.importer import Importer
from passport.services.importer import count_rows
from passport.services.policy import Actor
from passport.storage.models import AuditEvent
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import User


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


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


class Cli:
    """What a command needs: the composed services, a transaction, the operations."""

    def __init__(self, config_file: str | None, database_url: str | None) -> None:
        self.services = Services(settings_from(config_file, database_url=database_url))
        self.now = datetime.now(UTC)
        self.caller = Caller(ip="cli", user_agent="passport-cli", now=self.now)
        self.actor = Actor.operator(operator_name())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            with self.services.db.session(write=True) as db, db.begin():
                yield db
        except ClientError as exc:
            fail(exc.message, 1)
        except sqlalchemy.exc.OperationalError as exc:
            database_unreachable(exc, self.services.db)
        finally:
            self.services.db.dispose()

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
        return ctx.invoke(func, Cli(config_file, database_url), **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def prompt_password(label: str = "Password") -> str:
    return str(click.prompt(label, hide_input=True, confirmation_prompt=True))


# -- admin ---------------------------------------------------------------------------------------


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


# -- users ---------------------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Manage users."""


@user_group.command("add")
@click.argument("username")
@click.option("--email", help="Email address.")
@click.option("--display-name", help="Name shown to people.")
@pass_cli
def user_add(cli: Cli, username: str, email: str | None, display_name: str | None) -> None:
    """Create USERNAME (password prompted twice)."""
    password = prompt_password()
    with cli.transaction() as db:
        user = cli.administration(db).create_user(username, password, email, display_name)
    say(f"user '{user.username}' created with id {user.id}")


@user_group.command("list")
@click.option("--query", "-q", help="Part of a username, email or display name.")
@json_option
@pass_cli
def user_list(cli: Cli, query: str | None, as_json: bool) -> None:
    """List users."""
    with cli.transaction() as db:
        stmt = select(User).order_by(User.username_key)
        if query:
            stmt = stmt.where(User.username_key.contains(query.casefold(), autoescape=True))
        rows = [user_json(u) for u in db.scalars(stmt).all()]
    emit(rows, as_json, ["ID", "Username", "Email", "DisplayName", "Disabled", "Created"])


@user_group.command("show")
@click.argument("username")
@json_option
@pass_cli
def user_show(cli: Cli, username: str, as_json: bool) -> None:
    """Show one user and their groups."""
    with cli.transaction() as db:
        user = directory.get_user(db, username)
        row = user_json(user)
        row["Groups"] = list(
            db.scalars(
                select(Group.name)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .where(GroupMember.user_id == user.id)
            ).all()
        )
        row["Sessions"] = len(cli.services.sessions.list_for_user(user.id, cli.now))
    emit([row], as_json)


@user_group.command("update")
@click.argument("username")
@click.option("--email", help="New email address ('' removes it).")
@click.option("--display-name", help="New name shown to people.")
@pass_cli
def user_update(cli: Cli, username: str, email: str | None, display_name: str | None) -> None:
    """Change USERNAME's email or display name."""
    with cli.transaction() as db:
        user = cli.administration(db).update_user(username, email=email, display_name=display_name)
    say(f"user '{user.username}' updated")


def _set_disabled(cli: Cli, username: str, disabled: bool) -> None:
    with cli.transaction() as db:
        user = cli.administration(db).set_user_disabled(username, disabled)
    say(f"user '{user.username}' {'disabled' if disabled else 'enabled'}")


@user_group.command("disable")
@click.argument("username")
@pass_cli
def user_disable(cli: Cli, username: str) -> None:
    """Disable USERNAME: their sessions and tokens end, applications are told."""
    _set_disabled(cli, username, True)


@user_group.command("enable")
@click.argument("username")
@pass_cli
def user_enable(cli: Cli, username: str) -> None:
    """Enable USERNAME again."""
    _set_disabled(cli, username, False)


@user_group.command("reset-password")
@click.argument("username")
@pass_cli
def user_reset_password(cli: Cli, username: str) -> None:
    """Set a new password for USERNAME (prompted twice); their sessions and tokens end."""
    password = prompt_password("New password")
    with cli.transaction() as db:
        user = cli.administration(db).reset_password(username, password)
    say(f"password of '{user.username}' changed; their sessions and tokens ended")


@user_group.command("logout-all")
@click.argument("username")
@pass_cli
def user_logout_all(cli: Cli, username: str) -> None:
    """End every session and token of USERNAME; applications are told."""
    with cli.transaction() as db:
        user, ended = cli.administration(db).logout_everywhere(username)
    say(f"{ended} session(s) of '{user.username}' ended")


@user_group.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this user with their memberships and grants?")
@pass_cli
def user_delete(cli: Cli, username: str) -> None:
    """Delete USERNAME with their sessions, tokens, memberships and grants."""
    with cli.transaction() as db:
        name = cli.administration(db).delete_user(username)
    say(f"user '{name}' deleted")


# -- groups --------------------------------------------------------------------------------------


@click.group("group")
def group_group() -> None:
    """Manage groups and their members."""


@group_group.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
@pass_cli
def group_add(cli: Cli, name: str, description: str) -> None:
    """Create group NAME."""
    with cli.transaction() as db:
        group = cli.administration(db).create_group(name, description)
    say(f"group '{group.name}' created")


@group_group.command("list")
@json_option
@pass_cli
def group_list(cli: Cli, as_json: bool) -> None:
    """List groups."""
    with cli.transaction() as db:
        rows = [group_json(g) for g in db.scalars(select(Group).order_by(Group.name_key))]
    emit(rows, as_json, ["ID", "Name", "Description"])


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
@pass_cli
def group_update(cli: Cli, name: str, rename: str | None, description: str | None) -> None:
    """Rename group NAME or change its description."""
    with cli.transaction() as db:
        group = cli.administration(db).update_group(name, name=rename, description=description)
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


# -- grants --------------------------------------------------------------------------------------


@click.group("grant")
def grant_group() -> None:
    """Grant and revoke permissions."""


def _change_grant(
    cli: Cli, add: bool, application: str, permission: str, user: str | None, group: str | None
) -> None:
    if bool(user) == bool(group):
        fail("give exactly one of --user or --group", 1)
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


# -- audit ---------------------------------------------------------------------------------------


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
@click.option("-n", "--lines", default=20, show_default=True, help="How many recent events.")
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
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc, cli.services.db)
    except KeyboardInterrupt:
        pass


# -- bulk import ---------------------------------------------------------------------------------


@click.group("users")
def users_group() -> None:
    """Bulk operations on users."""


@users_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--on-error",
    type=click.Choice(["skip", "abort"]),
    default="skip",
    show_default=True,
    help="What a bad row does: skipped and reported, or stops.",
)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="Rows per all-or-nothing transaction.",
)
@click.option(
    "--resume/--restart",
    default=True,
    show_default=True,
    help="Continue an interrupted import of the same file from its checkpoint.",
)
@json_option
@pass_cli
def users_import(
    cli: Cli, file: Path, on_error: str, batch_size: int, resume: bool, as_json: bool
) -> None:
    """Import users from FILE (CSV with header, or JSON Lines) with their existing
    password hashes (bcrypt, argon2, Django pbkdf2_sha256); they are rehashed to
    argon2id at each user's next login."""
    total = count_rows(file)
    importer_kwargs: dict[str, Any] = {"batch_size": batch_size, "on_error": on_error}
    try:
        with Progress(disable=as_json, transient=True) as progress:
            task = progress.add_task(f"importing {file.name}", total=total)
            importer = Importer(
                cli.services.db,
                cli.now,
                progress=lambda n: progress.advance(task, n),
                **importer_kwargs,
            )
            report = importer.run(file, resume=resume)
    except ImportAborted as exc:
        fail(f"import stopped: {exc}; fix the row and run the same command to resume", 1)
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc, cli.services.db)
    finally:
        cli.services.db.dispose()
    summary = {
        "Imported": report.imported,
        "AlreadyPresent": report.already_present,
        "Skipped": report.skipped,
        "ResumedFromLine": report.resumed_from,
        "Errors": [{"Line": line, "Message": msg} for line, msg in report.errors],
    }
    if as_json:
        click.echo(json_text(summary, indent=2))
        return
    for line, message in report.errors:
        say(f"line {line}: {message}", err=True)
    click.echo(
        f"imported {report.imported}, already present {report.already_present}, "
        f"skipped {report.skipped}"
    )
