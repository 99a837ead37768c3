"""The ``passport`` command line: serve, db, config, app."""

from __future__ import annotations

import secrets
import sys

import click

from passport.cli.apps import app_group
from passport.cli.common import fail
from passport.cli.configcmd import config_group
from passport.cli.db import db_group
from passport.cli.directory import admin_group
from passport.cli.directory import audit_group
from passport.cli.directory import grant_group
from passport.cli.directory import group_group
from passport.cli.directory import user_group
from passport.cli.directory import users_group
from passport.cli.keys import keys_group
from passport.cli.serve import serve
from passport.config import ConfigError
from passport.logsetup import code_location


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="passport")
def cli() -> None:
    """Passport, the single sign-on identity service.

    Settings come from flags, PASSPORT_* environment variables and an optional
    TOML file (--config or PASSPORT_CONFIG), in that order of precedence.
    """


cli.add_command(serve)
cli.add_command(db_group)
cli.add_command(config_group)
cli.add_command(app_group)
for group in (
    admin_group,
    user_group,
    users_group,
    group_group,
    grant_group,
    audit_group,
    keys_group,
):
    cli.add_command(group)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
    except click.exceptions.Abort:
        fail("aborted")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last resort: no traceback, SQL or secret on the terminal
        error_id = secrets.token_hex(4)
        fail(
            f"unexpected {type(exc).__name__} (error id {error_id}) at {code_location(exc)}",
            code=1,
        )
