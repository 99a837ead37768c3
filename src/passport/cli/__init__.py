"""The ``passport`` command line: one module per noun, imported when its command runs.

``passport --help`` imports click and this package only: the commands and their short
help are listed from :data:`COMMANDS`, and a command's module (with SQLAlchemy, the
services and the rest of the application) is imported when that command is run.
"""

from __future__ import annotations

import secrets
import sys

import click

from passport.cli.common import Lazy
from passport.cli.common import LazyGroup
from passport.cli.common import printable

# name -> where the command is, and its short help (a test checks it is the command's own).
COMMANDS = {
    "admin": Lazy("passport.cli.admin:admin_group", "Bootstrap administration."),
    "app": Lazy(
        "passport.cli.app:app_group",
        "Manage the applications that sign users in through Passport.",
    ),
    "audit": Lazy("passport.cli.audit:audit_group", "Read the audit log."),
    "config": Lazy("passport.cli.config:config_group", "Inspect the effective configuration."),
    "db": Lazy("passport.cli.db:db_group", "Create and migrate the database schema."),
    "grant": Lazy("passport.cli.permission:grant_group", "Grant and revoke permissions."),
    "group": Lazy("passport.cli.group:group_group", "Manage groups and their members."),
    "keys": Lazy("passport.cli.key:keys_group", "Manage the keys that sign ID and access tokens."),
    "mail": Lazy(
        "passport.cli.mail:mail_group", "Send mail: the outbox, and a test of the SMTP settings."
    ),
    "serve": Lazy(
        "passport.cli.serve:serve",
        "Serve Passport over HTTP with Granian (production-grade WSGI server).",
    ),
    "user": Lazy("passport.cli.user:user_group", "Manage users."),
    # The old spelling of `passport user import`, kept for scripts.
    "users": Lazy(
        "passport.cli.user:users_group",
        "Old spelling of `passport user import` (kept for scripts).",
        hidden=True,
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="passport")
def cli() -> None:
    """Passport, the single sign-on identity service.

    Settings come from flags, PASSPORT_* environment variables and an optional
    TOML file (--config or PASSPORT_CONFIG), in that order of precedence.
    """


def main() -> None:
    """The ``passport`` program: click's standalone mode (failures are one line, exit
    status 1, usage errors 2), and one last resort for what nobody expected."""
    try:
        cli.main(prog_name="passport")
    except Exception as exc:  # the last resort: no traceback, SQL or secret on the terminal
        from passport.logsetup import code_location

        error_id = secrets.token_hex(4)
        click.echo(
            printable(
                f"passport: unexpected {type(exc).__name__} (error id {error_id}) "
                f"at {code_location(exc)}"
            ),
            err=True,
        )
        sys.exit(1)
