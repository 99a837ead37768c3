"""``passport mail status|test``: the mail outbox's backlog, and a test of the SMTP
settings (:mod:`passport.services.mail`)."""

from __future__ import annotations

import click

from passport.cli.common import Failure
from passport.cli.common import json_option
from passport.cli.common import json_text
from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import pass_cli
from passport.services.accounts import validate_email
from passport.services.mail import outbox_state
from passport.services.mail import send_test


@click.group("mail")
def mail_group() -> None:
    """Send mail: the outbox, and a test of the SMTP settings."""


@mail_group.command("status")
@json_option
@pass_cli
def mail_status(cli: Cli, as_json: bool) -> None:
    """Messages waiting, failing (tried and waiting again), given up and sent."""
    with cli.transaction() as db:
        state = outbox_state(db)
    shown = {
        "Waiting": state.waiting,
        "Failing": state.failing,
        "GivenUp": state.given_up,
        "Sent": state.sent,
        "OldestWaiting": state.oldest_waiting.isoformat() if state.oldest_waiting else None,
    }
    if as_json:
        click.echo(json_text(shown, indent=2))
        return
    for name, value in shown.items():
        click.echo(f"{name:<14}{'-' if value is None else value}")


@mail_group.command("test")
@click.argument("address")
@pass_cli
def mail_test(cli: Cli, address: str) -> None:
    """Send a test message to ADDRESS now, with the configured SMTP settings."""
    mail = validate_email(address)
    if mail is None:
        raise Failure("an address is needed")
    problem = send_test(cli.services.settings, cli.services.outbox.compose, mail, cli.now)
    if problem:
        raise Failure(f"the test message was not sent: {problem}")
    say(f"test message sent to {mail}")
