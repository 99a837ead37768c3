"""``passport admin|user|group|grant|audit``: the directory from the command line.

The same domain services as the admin API; every change is audited with actor
"cli".  Output is a table by default and JSON with ``--json``.
"""

from __future__ import annotations

import json
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
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.app import PassportApp
from passport.cli.common import database_unreachable
from passport.cli.common import fail
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.errors import ClientError
from passport.services import directory
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.audit import AuditRecord
from passport.services.audit import write as write_audit
from passport.services.importer import ImportAborted
from passport.services.importer import Importer
from passport.services.importer import count_rows
from passport.services.passwords import check_policy
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import User


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    columns = columns or (list(rows[0]) if rows else [])
    table = Table(*columns)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


class Cli:
    """What a command needs: the composed services, a transaction, a way to audit."""

    def __init__(self, config_file: str | None, database_url: str | None) -> None:
        self.app = PassportApp(settings_from(config_file, database_url=database_url))
        self.now = datetime.now(UTC)
        self.caller = Caller(ip="cli", user_agent="passport-cli", now=self.now)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        try:
            with self.app.db.session(write=True) as db, db.begin():
                yield db
        except ClientError as exc:
            fail(exc.message, 1)
        except sqlalchemy.exc.OperationalError as exc:
            database_unreachable(exc)
        finally:
            self.app.db.dispose()

    def audit(self, db: Session, event: str, user: User | None = None, **detail: Any) -> None:
        write_audit(
            db,
            AuditRecord(
                event,
                "success",
                self.now,
                user.id if user else None,
                user.username if user else "",
                application=str(detail.pop("application", "")),
                ip="cli",
                user_agent="passport-cli",
                detail=json.dumps(detail, ensure_ascii=False, default=str),
            ),
        )

    def accounts(self, db: Session) -> Accounts:
        app = self.app
        return Accounts(
            app.settings,
            app.passwords,
            app.sessions,
            app.throttle,
            db,
            lambda record, durable=False: write_audit(db, record),
            app.db.session(),
            lambda action: action(),
        )


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


def _user(db: Session, ref: str) -> User:
    user = directory.find_user(db, ref)
    if user is None:
        fail(f"no user '{ref}'", 1)
    return user


def _group(db: Session, ref: str) -> Group:
    group = directory.find_group(db, ref)
    if group is None:
        fail(f"no group '{ref}'", 1)
    return group


def _app(db: Session, ref: str) -> Application:
    app = directory.find_application(db, ref)
    if app is None:
        fail(f"no application '{ref}'", 1)
    return app


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
        user = directory.find_user(db, username)
        if user is None:
            password = prompt_password()
            user = cli.accounts(db).register(
                cli.caller, username, password, email, None, by_admin=True
            )
        passport = _app(db, "1")
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, user=user)
        cli.audit(db, "admin_create", user)
    click.echo(f"{user.username} is an administrator")


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
        user = cli.accounts(db).register(
            cli.caller, username, password, email, display_name, by_admin=True
        )
    click.echo(f"user '{user.username}' created with id {user.id}")


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
        rows = [directory.user_json(u) for u in db.scalars(stmt).all()]
    emit(rows, as_json, ["ID", "Username", "Email", "DisplayName", "Disabled", "Created"])


@user_group.command("show")
@click.argument("username")
@json_option
@pass_cli
def user_show(cli: Cli, username: str, as_json: bool) -> None:
    """Show one user and their groups."""
    with cli.transaction() as db:
        user = _user(db, username)
        row = directory.user_json(user)
        row["Groups"] = list(
            db.scalars(
                select(Group.name)
                .join(GroupMember, GroupMember.group_id == Group.id)
                .where(GroupMember.user_id == user.id)
            ).all()
        )
        row["Sessions"] = len(cli.app.sessions.list_for_user(user.id, cli.now))
    emit([row], as_json)


def _set_disabled(cli: Cli, username: str, disabled: bool) -> None:
    with cli.transaction() as db:
        user = _user(db, username)
        directory.set_disabled(db, cli.app.sessions, user, disabled)
        cli.audit(db, "user_disable" if disabled else "user_enable", user)
    click.echo(f"user '{user.username}' {'disabled' if disabled else 'enabled'}")


@user_group.command("disable")
@click.argument("username")
@pass_cli
def user_disable(cli: Cli, username: str) -> None:
    """Disable USERNAME and end all their sessions."""
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
    """Set a new password for USERNAME (prompted twice); their sessions end."""
    password = prompt_password("New password")
    with cli.transaction() as db:
        user = _user(db, username)
        text = check_policy(
            password,
            username=user.username,
            min_length=cli.app.settings.password_min_length,
            source="password",
        )
        user.password_hash = cli.app.passwords.hash(text)
        user.password_changed_at = cli.now
        cli.app.sessions.remove_for_user(user.id, db)
        cli.audit(db, "user_reset_password", user)
    click.echo(f"password of '{user.username}' changed; their sessions ended")


@user_group.command("logout-all")
@click.argument("username")
@pass_cli
def user_logout_all(cli: Cli, username: str) -> None:
    """End every session of USERNAME."""
    with cli.transaction() as db:
        user = _user(db, username)
        ended = cli.app.sessions.remove_for_user(user.id, db)
        cli.audit(db, "user_logout_all", user, ended=ended)
    click.echo(f"{ended} session(s) of '{user.username}' ended")


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
        group = directory.create_group(db, name, description)
        cli.audit(db, "group_create", group=group.name)
    click.echo(f"group '{group.name}' created")


@group_group.command("list")
@json_option
@pass_cli
def group_list(cli: Cli, as_json: bool) -> None:
    """List groups."""
    with cli.transaction() as db:
        rows = [directory.group_json(g) for g in db.scalars(select(Group).order_by(Group.name_key))]
    emit(rows, as_json, ["ID", "Name", "Description"])


@group_group.command("show")
@click.argument("name")
@json_option
@pass_cli
def group_show(cli: Cli, name: str, as_json: bool) -> None:
    """Show group NAME and its members."""
    with cli.transaction() as db:
        group = _group(db, name)
        members = list(
            db.scalars(
                select(User.username)
                .join(GroupMember, GroupMember.user_id == User.id)
                .where(GroupMember.group_id == group.id)
                .order_by(User.username_key)
            ).all()
        )
        row = {**directory.group_json(group, len(members)), "MemberNames": members}
    emit([row], as_json)


@group_group.command("add-member")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_cli
def group_add_member(cli: Cli, name: str, usernames: tuple[str, ...]) -> None:
    """Put USERNAMES in group NAME."""
    with cli.transaction() as db:
        group = _group(db, name)
        for ref in usernames:
            user = _user(db, ref)
            directory.add_member(db, group, user)
            cli.audit(db, "group_add_member", user, group=group.name)
    click.echo(f"{len(usernames)} member(s) in '{group.name}'")


@group_group.command("remove-member")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_cli
def group_remove_member(cli: Cli, name: str, usernames: tuple[str, ...]) -> None:
    """Take USERNAMES out of group NAME."""
    with cli.transaction() as db:
        group = _group(db, name)
        for ref in usernames:
            user = _user(db, ref)
            directory.remove_member(db, group, user)
            cli.audit(db, "group_remove_member", user, group=group.name)
    click.echo(f"removed from '{group.name}'")


@group_group.command("delete")
@click.argument("name")
@pass_cli
def group_delete(cli: Cli, name: str) -> None:
    """Delete group NAME with its memberships and grants."""
    with cli.transaction() as db:
        group = _group(db, name)
        db.delete(group)
        cli.audit(db, "group_delete", group=group.name)
    click.echo(f"group '{group.name}' deleted")


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
        app = _app(db, application)
        target = directory.find_permission(db, app, permission)
        if target is None:
            if not add:
                fail(f"'{app.name}' has no permission '{permission}'", 1)
            target = directory.create_permission(db, app, permission)
        who_user = _user(db, user) if user else None
        who_group = _group(db, group) if group else None
        change = directory.grant if add else directory.revoke
        change(db, target, user=who_user, group=who_group)
        cli.audit(
            db,
            "grant" if add else "revoke",
            who_user,
            application=app.name,
            permission=target.name,
            group=who_group.name if who_group else None,
        )
    click.echo(f"{'granted' if add else 'revoked'} {app.name}:{target.name}")


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
                click.echo(json.dumps(row, ensure_ascii=False))
            else:
                click.echo(
                    f"{row['At']}  {row['Event']:<20} {row['Outcome']:<10} "
                    f"{row['Username']:<20} {row['IP']:<16} {row['Detail']}"
                )

    try:
        with cli.app.db.session() as db:
            rows = list(
                reversed(
                    db.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(lines)).all()
                )
            )
        show(rows)
        last = rows[-1].id if rows else 0
        while follow:
            time.sleep(1)
            with cli.app.db.session() as db:
                rows = list(
                    db.scalars(
                        select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id)
                    ).all()
                )
            show(rows)
            last = rows[-1].id if rows else last
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
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
                cli.app.db, cli.now, progress=lambda n: progress.advance(task, n), **importer_kwargs
            )
            report = importer.run(file, resume=resume)
    except ImportAborted as exc:
        fail(f"import stopped: {exc}; fix the row and run the same command to resume", 1)
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        cli.app.db.dispose()
    summary = {
        "Imported": report.imported,
        "AlreadyPresent": report.already_present,
        "Skipped": report.skipped,
        "ResumedFromLine": report.resumed_from,
        "Errors": [{"Line": line, "Message": msg} for line, msg in report.errors],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    click.echo(
        f"imported {report.imported}, already present {report.already_present}, "
        f"skipped {report.skipped}"
    )
