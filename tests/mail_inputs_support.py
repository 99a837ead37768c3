"""A Passport that sends mail, with a world to attack: the shared part of the hostile-input
tests of the email lifecycle (``tests/api/test_mail_inputs.py``,
``tests/oidc/test_recovery_pages_inputs.py``).

:func:`mail_world` builds, over the ``factory`` fixture, a Passport with an SMTP server
configured (never reached: mail is taken out of the outbox in-process with
:func:`deliver`), an administrator ``root`` signed in, the application ``Wiki`` with a
registered origin, the active ``alice`` and the disabled ``dora`` with addresses, a group
``Staff``, and one live link of each purpose (taken from the sealed outbox the way the
recipient would read it): a reset and a verification link for alice, an invitation for
carol.  The helpers compare every table before and after a refused request
(:func:`refused_writes`) and read what a message would put on the wire
(:func:`wire_of`: the envelope and the header lines the product's sender hands the relay).
"""

from __future__ import annotations

import json
import re
import secrets
import smtplib
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from email.message import EmailMessage
from typing import Any
from typing import ClassVar
from unittest import mock

from sqlalchemy import text

from oidc_support import KEK
from passport.services.mail import deliver_due_mail
from passport.services.mail import smtp_sender
from passport.services.mail import unseal
from site_support import SITE_ORIGIN
from site_support import Site
from site_support import audit_outcomes_since
from site_support import build_site
from site_support import table_fingerprints

from support import STRONG
from support import Harness
from support import PassportClient

# The relay's password is in the settings (a secret): no answer, row or log may show it.
SMTP_PASSWORD = "Sm7p-relay-Pa55word"
SMTP_URL = f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:9?starttls=true"
ALICE = "alice@example.com"
DORA = "dora@example.com"  # disabled
CAROL = "carol@example.com"  # invited
UNKNOWN = "nobody@example.com"
TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_-]{43})\b")
# Throttles raised so that a test's many requests from one client address are judged on
# their input (the throttle tests lower them again).
GENEROUS = {
    "throttle_ip_limit": 1_000_000,
    "throttle_registration_limit": 1_000_000,
    "throttle_mail_ip_limit": 1_000_000,
}
# What no answer may contain: the stack, the SQL, the secrets of the deployment.
LEAKS = (
    "Traceback",
    "sqlalchemy",
    "SELECT ",
    "INSERT INTO",
    "psycopg",
    "sqlite3.",
    'File "',
    SMTP_PASSWORD,
    KEK,
    STRONG,
)


@dataclass
class MailWorld:
    h: Harness
    site: Site
    reset: str  # alice's live reset token
    verify: str  # alice's live verification token
    invite: str  # carol's live invitation token
    invitation_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> PassportClient:
        return self.site.admin

    def anonymous(self) -> PassportClient:
        return self.h.new_client()


def mail_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "public_url": SITE_ORIGIN,
        "smtp_url": SMTP_URL,
        "key_encryption_key": KEK,
        **GENEROUS,
        **overrides,
    }


def mail_world(
    factory: Callable[..., Harness], backend: str = "sqlite", **overrides: Any
) -> MailWorld:
    """The world described in the module's docstring, on ``backend``."""
    h = factory(backend, "db", **mail_settings(**overrides))
    site = build_site(h)
    for name, address in (("alice", ALICE), ("dora", DORA)):
        made = h.register(name, email=address, headers={"Origin": SITE_ORIGIN})
        assert made.status_code == 200, made.get_data(as_text=True)
    admin = site.admin
    for path, data in (
        ("/Users/setDisabled", {"username": "dora", "disabled": "true"}),
        ("/Groups/create", {"name": "Staff"}),
        ("/Users/invite", {"email": CAROL, "groups": "Staff"}),
    ):
        answer = admin.post(path, data=data, headers={"Origin": SITE_ORIGIN})
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
        if path == "/Users/invite":
            invitation_id = int(envelope(answer)["Data"]["Invitation"]["ID"])
    asked = h.new_client().post("/Account/requestPasswordReset", data={"email": ALICE})
    assert asked.status_code == 200, asked.get_data(as_text=True)
    return MailWorld(
        h,
        site,
        reset=latest_token(h, ALICE, "password_reset"),
        verify=latest_token(h, ALICE, "verify_email"),
        invite=latest_token(h, CAROL, "invitation"),
        invitation_id=invitation_id,
    )


# -- reading answers -------------------------------------------------------------------------


def envelope(answer: Any) -> dict[str, Any]:
    return json.loads(answer.get_data(as_text=True))  # type: ignore[no-any-return]


def leaks(body: str, echoed: Sequence[str] = ()) -> list[str]:
    """What ``body`` shows of :data:`LEAKS` — but what the caller itself sent in a
    parameter that is no secret (``echoed``: an address, a username), which an answer
    may quote back."""
    return [leak for leak in LEAKS if leak in body and not any(leak in e for e in echoed)]


def refusal(answer: Any, echoed: Sequence[str] = ()) -> tuple[int, list[tuple[str | None, str]]]:
    """An API answer's status and its ClientExceptions as (Source, Number), after the
    checks every answer must pass: no 5xx, the envelope, nothing leaked (``echoed``: as
    for :func:`leaks`)."""
    body = answer.get_data(as_text=True)
    assert answer.status_code < 500, (answer.status_code, body[:300])
    assert not leaks(body, echoed), (leaks(body, echoed), body[:300])
    assert answer.mimetype == "application/json", (answer.status_code, body[:300])
    found = json.loads(body)
    assert set(found) == {"Success", "LoggedIn", "Data", "ClientExceptions", "ServerExceptions"}
    assert found["ServerExceptions"] == []
    errors = found["ClientExceptions"]
    for error in errors:
        assert set(error) == {"Message", "Source", "Value", "Number"}, error
        assert isinstance(error["Message"], str) and error["Message"], error
    if answer.status_code >= 400:
        assert found["Success"] is False and errors, body[:300]
    else:
        assert found["Success"] is True and errors == [], body[:300]
    return answer.status_code, [(e["Source"], e["Number"]) for e in errors]


# -- what was stored -------------------------------------------------------------------------


Fingerprints = dict[str, tuple[int, str]]


def fingerprints(h: Harness) -> Fingerprints:
    return table_fingerprints(h)


def refused_writes(
    h: Harness,
    before: Fingerprints,
    after: Fingerprints | None = None,
    allowed_audit: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Tables a refused request changed: none may, but for the throttle's counters and
    the audit rows of ``allowed_audit`` (event, outcome) — the durable failure records
    the code writes on purpose (a wrong password)."""
    after = after if after is not None else fingerprints(h)
    changed: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name) or name == "throttle_counters":
            continue
        if name == "audit_events" and after[name][0] > before[name][0]:
            added = audit_outcomes_since(h, before[name][0])
            if all(row in allowed_audit for row in added):
                continue
            changed[name] = added
            continue
        changed[name] = (before.get(name), after.get(name))
    return changed


def rows(h: Harness, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with h.app.services.db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def outbox(h: Harness) -> list[tuple[Any, ...]]:
    """(id, purpose, recipient, subject, body, sent_at, attempts, last_error) by id."""
    return rows(
        h,
        "SELECT id, purpose, recipient, subject, body, sent_at, attempts, last_error "
        "FROM mail_outbox ORDER BY id",
    )


def opened(h: Harness, body: str) -> dict[str, str]:
    """A sealed body's text and HTML parts."""
    return json.loads(unseal(h.settings, body))  # type: ignore[no-any-return]


def latest_token(h: Harness, recipient: str, purpose: str) -> str:
    """The token of the newest queued ``purpose`` message to ``recipient``, read from
    its sealed body as the recipient would read it in the message."""
    for _id, kind, to, _subject, body, _sent, _attempts, _error in reversed(outbox(h)):
        if kind == purpose and to == recipient and body:
            found = TOKEN.search(opened(h, body)["text"])
            assert found is not None, opened(h, body)["text"]
            return found.group(1)
    raise AssertionError(f"no {purpose} message to {recipient}: {outbox(h)}")


def random_token() -> str:
    """The form of a real token (43 base64url characters), naming no link."""
    return secrets.token_urlsafe(32)


# -- what goes on the wire -------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """What ``smtplib`` would send for a message: the envelope and the header lines."""

    mail_from: str
    recipients: list[str]
    headers: list[str]  # the header names, in order
    raw: bytes


class _Recorder(smtplib.SMTP):
    """``smtplib.SMTP`` with the network taken out, standing in for it in the product's
    sender: ``send_message`` computes the envelope and the bytes exactly as it does for
    a server, and they are kept in :attr:`sent`."""

    sent: ClassVar[list[tuple[str, list[str], bytes]]] = []

    def __init__(self, host: str = "", port: int = 0, timeout: float = 0, **_: Any) -> None:
        super().__init__()  # no host: no connection

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        return 250, b"ok"

    def ehlo_or_helo_if_needed(self) -> None:
        return None

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        return 220, b"ok"

    def login(self, user: str, password: str, **kwargs: Any) -> tuple[int, bytes]:
        return 235, b"ok"

    def has_extn(self, opt: str) -> bool:
        return opt.lower() == "smtputf8"

    def sendmail(  # type: ignore[override]
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: bytes | str,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        raw = msg if isinstance(msg, bytes) else msg.encode()
        targets = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        self.sent.append((from_addr, targets, raw))
        return {}

    def quit(self) -> tuple[int, bytes]:
        return 221, b"bye"


def wire_of(h: Harness, message: EmailMessage) -> Wire:
    """What the product's own sender (:func:`passport.services.mail.smtp_sender`) hands
    the relay for ``message``: the envelope (MAIL FROM, RCPT TO) and the header lines."""
    _Recorder.sent = []
    with mock.patch.object(smtplib, "SMTP", _Recorder):
        smtp_sender(h.settings)(message)
    ((mail_from, recipients, raw),) = _Recorder.sent
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].decode("ascii", "replace")
        for line in head.split(b"\r\n")
        if line and line[:1] not in (b" ", b"\t")
    ]
    return Wire(mail_from, recipients, names, raw)


def deliver(h: Harness) -> list[EmailMessage]:
    """Send every due message through a capturing sender; returns them."""
    captured: list[EmailMessage] = []
    deliver_due_mail(h.app.services.db, h.settings, h.clock(), send=captured.append)
    return captured
