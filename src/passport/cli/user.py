"""``passport user ...``: manage users, and import them in bulk.

``passport users import`` is the old spelling of ``passport user import``: a hidden
group kept so that scripts written for it keep working.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import Progress
from sqlalchemy import select

from passport.api.shapes import admin_session_json
from passport.api.shapes import factors_json
from passport.api.shapes import invitation_json
from passport.api.shapes import user_json
from passport.cli.common import Failure
from passport.cli.common import json_option
from passport.cli.common import json_text
from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import emit
from passport.cli.context import pass_cli
from passport.cli.context import prompt_password
from passport.services import directory
from passport.services.importer import ImportAborted
from passport.services.importer import Importer
from passport.services.importer import count_rows
from passport.services.lifecycle import invited_groups
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import User


@click.group("user")
def user_group() -> None:
    """Manage users."""


@user_group.command("add")
@click.argument("username")
@click.option("--email", help="Email address.")
@click.option("--display-name", help="Name shown to people.")
@click.option(
    "--address-confirmed",
    is_flag=True,
    help="Take the email address as confirmed (no link is sent to it).",
)
@pass_cli
def user_add(
    cli: Cli,
    username: str,
    email: str | None,
    display_name: str | None,
    address_confirmed: bool,
) -> None:
    """Create USERNAME (password prompted twice)."""
    password = prompt_password()
    with cli.transaction() as db:
        user = cli.administration(db).create_user(
            username, password, email, display_name, confirm_address=not address_confirmed
        )
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


@user_group.command("sessions")
@click.argument("username")
@json_option
@pass_cli
def user_sessions(cli: Cli, username: str, as_json: bool) -> None:
    """List USERNAME's live sessions, each with the reference `end-session` takes."""
    with cli.transaction() as db:
        _user, found = cli.administration(db).user_sessions(username)
        rows = [admin_session_json(s) for s in found]
    emit(rows, as_json, ["Session", "Created", "LastSeen", "IP", "UserAgent"])


@user_group.command("end-session")
@click.argument("username")
@click.argument("session")
@pass_cli
def user_end_session(cli: Cli, username: str, session: str) -> None:
    """End one session of USERNAME (SESSION: its reference from `user sessions`); the
    applications signed in through it are told."""
    with cli.transaction() as db:
        user, _ended = cli.administration(db).end_session(username, session)
    say(f"that session of '{user.username}' ended")


@user_group.command("revoke-app")
@click.argument("username")
@click.argument("application")
@pass_cli
def user_revoke_app(cli: Cli, username: str, application: str) -> None:
    """End USERNAME's access to APPLICATION: their tokens, codes and consent there (the
    application is told); their other access stays."""
    with cli.transaction() as db:
        user, name, revoked = cli.administration(db).revoke_application(username, application)
    say(f"access of '{user.username}' to '{name}' ended ({revoked} token(s) revoked)")


@user_group.command("factors")
@click.argument("username")
@json_option
@pass_cli
def user_factors(cli: Cli, username: str, as_json: bool) -> None:
    """Show USERNAME's second factors: passkeys, authenticator app, recovery codes left."""
    with cli.transaction() as db:
        user, summary = cli.administration(db).user_factors(username)
        shown = {"User": user_json(user), "Factors": factors_json(summary)}
    if as_json:
        click.echo(json_text(shown, indent=2))
        return
    factors = shown["Factors"]
    rows = [
        {
            "Factor": "passkey (synced)" if p["Synced"] else "passkey",
            "ID": p["ID"],
            "Name": p["Name"],
            "Created": p["Created"],
            "LastUsed": p["LastUsed"],
        }
        for p in factors["Passkeys"]
    ]
    if factors["Totp"]:
        rows.append({"Factor": "authenticator app", "Created": factors["TotpCreated"]})
    if factors["RecoveryCodes"]:
        rows.append({"Factor": "recovery codes", "Name": f"{factors['RecoveryCodes']} left"})
    if not rows:
        say(f"'{user.username}' has no second factor")
        return
    emit(rows, False, ["Factor", "ID", "Name", "Created", "LastUsed"])


@user_group.command("reset-factors")
@click.argument("username")
@click.confirmation_option(prompt="Remove every second factor of this user?")
@pass_cli
def user_reset_factors(cli: Cli, username: str) -> None:
    """Remove every second factor of USERNAME (passkeys, authenticator app, recovery
    codes); their sessions and tokens end, applications are told."""
    with cli.transaction() as db:
        user, removed, ended = cli.administration(db).reset_factors(username)
    what = ", ".join(removed.methods()) or "none"
    say(f"second factors of '{user.username}' removed ({what}); {ended} session(s) ended")


@user_group.command("invite")
@click.argument("email")
@click.option("--group", "groups", multiple=True, help="A group they join (repeatable).")
@json_option
@pass_cli
def user_invite(cli: Cli, email: str, groups: tuple[str, ...], as_json: bool) -> None:
    """Invite EMAIL to make an account (by mail: needs PASSPORT_SMTP_URL)."""
    with cli.transaction() as db:
        invitation = cli.administration(db).invite(email, list(groups))
        names = [g.name for g in invited_groups(db, invitation.id)]
        shown = invitation_json(invitation, names, cli.now)
    if as_json:
        click.echo(json_text(shown, indent=2))
        return
    say(f"invitation {shown['ID']} sent to {shown['Email']}, valid until {shown['Expires']}")


@user_group.command("invitations")
@json_option
@pass_cli
def user_invitations(cli: Cli, as_json: bool) -> None:
    """List invitations, newest first: pending, accepted, revoked or expired."""
    with cli.transaction() as db:
        rows = [
            invitation_json(i, groups, cli.now)
            for i, groups in cli.administration(db).invitations()
        ]
    emit(rows, as_json, ["ID", "Email", "Groups", "State", "Sent", "Expires"])


@user_group.command("resend-invitation")
@click.argument("invitation")
@pass_cli
def user_resend_invitation(cli: Cli, invitation: str) -> None:
    """Send INVITATION (its id) again, with a new link and expiry; the old link dies."""
    with cli.transaction() as db:
        found = cli.administration(db).resend_invitation(invitation)
        email = found.email
    say(f"invitation {invitation} sent again to {email}")


@user_group.command("revoke-invitation")
@click.argument("invitation")
@pass_cli
def user_revoke_invitation(cli: Cli, invitation: str) -> None:
    """Withdraw INVITATION (its id): its link stops working."""
    with cli.transaction() as db:
        found = cli.administration(db).revoke_invitation(invitation)
        email = found.email
    say(f"invitation {invitation} to {email} revoked")


@user_group.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this user with their memberships and grants?")
@pass_cli
def user_delete(cli: Cli, username: str) -> None:
    """Delete USERNAME with their sessions, tokens, memberships and grants."""
    with cli.transaction() as db:
        name = cli.administration(db).delete_user(username)
    say(f"user '{name}' deleted")


@user_group.command("import")
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
def user_import(
    cli: Cli, file: Path, on_error: str, batch_size: int, resume: bool, as_json: bool
) -> None:
    """Import users from FILE (CSV with header, or JSON Lines) with their existing
    password hashes (bcrypt, argon2, Django pbkdf2_sha256); they are rehashed to
    argon2id at each user's next login."""
    total = count_rows(file)
    try:
        with Progress(disable=as_json, transient=True) as progress:
            task = progress.add_task(f"importing {file.name}", total=total)
            importer = Importer(
                cli.services.db,
                cli.now,
                progress=lambda n: progress.advance(task, n),
                batch_size=batch_size,
                on_error=on_error,
            )
            report = importer.run(file, resume=resume)
    except ImportAborted as exc:
        raise Failure(
            f"import stopped: {exc}; fix the row and run the same command to resume"
        ) from None
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


@click.group("users", hidden=True)
def users_group() -> None:
    """Old spelling of `passport user import` (kept for scripts)."""


users_group.add_command(user_import)
