"""``passport mail status|test`` and ``passport user invite|invitations|…`` in process:
what an operator sees, one line and exit 1 when mail cannot go (never a traceback).
Delivery to a real SMTP server process: tests/test_mail_live.py."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from oidc_support import KEK
from passport.cli import cli

from support import Harness

SMTP = {"PASSPORT_SMTP_URL": "smtp://127.0.0.1:1", "PASSPORT_KEY_ENCRYPTION_KEY": KEK}


def passport(h: Harness, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)


def test_without_smtp_the_mail_commands_say_so_in_one_line(factory: Any) -> None:
    h = factory("sqlite")
    for args in (("mail", "test", "a@example.com"), ("user", "invite", "bob@example.com")):
        result = passport(h, *args)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "SMTP" in lines[0], result.stderr
        assert "Traceback" not in result.output


def test_an_unreachable_relay_is_one_line_naming_the_failure(factory: Any) -> None:
    h = factory("sqlite")
    result = passport(h, "mail", "test", "a@example.com", env=SMTP)
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "passport: the test message was not sent: ConnectionRefusedError"
    )


def test_invitations_from_the_command_line(factory: Any) -> None:
    h = factory("sqlite")
    invited = passport(h, "user", "invite", "bob@example.com", "--json", env=SMTP)
    assert invited.exit_code == 0, invited.output
    shown = json.loads(invited.stdout)
    assert shown["Email"] == "bob@example.com" and shown["State"] == "pending"
    listed = json.loads(passport(h, "user", "invitations", "--json", env=SMTP).stdout)
    assert [(i["ID"], i["State"]) for i in listed] == [(shown["ID"], "pending")]
    resent = passport(h, "user", "resend-invitation", str(shown["ID"]), env=SMTP)
    assert resent.exit_code == 0 and "sent again" in resent.stdout
    revoked = passport(h, "user", "revoke-invitation", str(shown["ID"]), env=SMTP)
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    again = passport(h, "user", "resend-invitation", str(shown["ID"]), env=SMTP)
    assert again.exit_code == 1 and "accepted or revoked" in again.stderr
    unknown = passport(h, "user", "revoke-invitation", "nope", env=SMTP)
    assert unknown.exit_code == 1 and "No such invitation" in unknown.stderr


def test_the_outbox_status(factory: Any) -> None:
    h = factory("sqlite")
    passport(h, "user", "invite", "bob@example.com", env=SMTP)
    passport(h, "user", "invite", "carol@example.com", env=SMTP)
    status = passport(h, "mail", "status", "--json", env=SMTP)
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert (shown["Waiting"], shown["Failing"], shown["GivenUp"], shown["Sent"]) == (2, 0, 0, 0)
    assert shown["OldestWaiting"]
    plain = passport(h, "mail", "status", env=SMTP)
    assert "Waiting" in plain.stdout and "2" in plain.stdout
