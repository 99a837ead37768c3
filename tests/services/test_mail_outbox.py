"""The mail outbox and its sender (services/mail.py), in process with scripted SMTP
outcomes: what is retried and when, what is given up, that a message goes once however
many senders run, that a sender that died mid-send is covered by the lease, and that
nothing secret reaches ``last_error`` or the log.  The SMTP settings' parser and the
operator's templates too.  tests/test_mail_live.py runs a real SMTP server process."""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy import update

from oidc_support import KEK
from passport.config import ConfigError
from passport.config import load_settings
from passport.config import parse_smtp_url
from passport.pages.mail import MailComposer
from passport.services.mail import LEASE
from passport.services.mail import MAX_ATTEMPTS
from passport.services.mail import Letter
from passport.services.mail import backoff
from passport.services.mail import deliver_due_mail
from passport.services.mail import message_key
from passport.services.mail import outbox_state
from passport.storage.models import MailMessage

from support import Harness

MAIL = {
    "smtp_url": "smtp://127.0.0.1:1",
    "public_url": "http://localhost",
    "key_encryption_key": KEK,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    harness: Harness = factory(request.param, **MAIL)
    return harness


def queue(h: Harness, count: int = 1) -> None:
    outbox = h.app.services.outbox
    with h.app.services.db.session(write=True) as db, db.begin():
        for n in range(count):
            outbox.queue(db, Letter("test", f"user{n}@example.com"), h.clock())


def deliver(h: Harness, send: Any) -> int:
    return deliver_due_mail(h.app.services.db, h.settings, h.clock(), send=send)


def rows(h: Harness) -> list[MailMessage]:
    with h.app.services.db.session() as db:
        found = list(db.scalars(select(MailMessage).order_by(MailMessage.id)))
        for row in found:
            db.expunge(row)
        return found


class Script:
    """An SMTP transport whose answers are scripted: an exception to raise, or None."""

    def __init__(self, *outcomes: BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[EmailMessage] = []

    def __call__(self, message: EmailMessage) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.sent.append(message)


def test_a_message_waits_for_its_transaction(h: Harness) -> None:
    outbox = h.app.services.outbox
    with pytest.raises(RuntimeError), h.app.services.db.session(write=True) as db, db.begin():
        outbox.queue(db, Letter("test", "a@example.com"), h.clock())
        raise RuntimeError("the operation failed after queueing")
    assert rows(h) == []


def test_a_temporary_failure_is_retried_after_a_growing_delay(h: Harness) -> None:
    queue(h)
    down = Script(ConnectionRefusedError(), smtplib.SMTPDataError(451, b"try later"), None)
    assert deliver(h, down) == 0
    first = rows(h)[0]
    assert (first.attempts, first.last_error) == (1, "ConnectionRefusedError")
    assert first.next_attempt_at == h.clock() + backoff(1) == h.clock() + timedelta(seconds=5)
    assert deliver(h, down) == 0  # not due yet: nothing tried
    assert len(down.outcomes) == 2
    h.clock.advance(seconds=5)
    assert deliver(h, down) == 0
    second = rows(h)[0]
    assert (second.attempts, second.last_error) == (2, "SMTPDataError 451")
    assert second.next_attempt_at == h.clock() + timedelta(seconds=10)
    h.clock.advance(seconds=10)
    assert deliver(h, down) == 1
    sent = rows(h)[0]
    assert sent.sent_at == h.clock() and sent.body == "" and sent.attempts == 3
    assert len(down.sent) == 1
    h.clock.advance(hours=1)
    assert deliver(h, down) == 0 and len(down.sent) == 1  # never again


def test_a_tls_certificate_failure_is_retried_not_taken_for_an_unreadable_body(
    h: Harness,
) -> None:
    """ssl.SSLCertVerificationError is a ValueError too: a relay whose certificate is not
    trusted (a wrong PASSPORT_SMTP_CA_FILE, a renewed certificate) is a failure to try
    again once the operator fixes it, never a message given up as unreadable."""
    queue(h)
    untrusted = Script(ssl.SSLCertVerificationError(1, "certificate verify failed"), None)
    assert deliver(h, untrusted) == 0
    row = rows(h)[0]
    assert (row.attempts, row.last_error) == (1, "SSLCertVerificationError")
    assert row.body != "" and row.sent_at is None
    assert outbox_state_of(h).failing == 1 and outbox_state_of(h).given_up == 0
    h.clock.advance(seconds=5)
    assert deliver(h, untrusted) == 1 and len(untrusted.sent) == 1


def test_a_body_sealed_with_another_key_is_given_up_as_unreadable(h: Harness) -> None:
    queue(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(update(MailMessage).values(body="bm90IGEgc2VhbGVkIGJvZHkgYXQgYWxs"))
    never = Script()
    assert deliver(h, never) == 0
    row = rows(h)[0]
    assert row.last_error == "unreadable body (InvalidTag)"
    assert row.attempts == MAX_ATTEMPTS and row.body == "" and never.sent == []


def test_the_delays_grow_to_ten_minutes_and_stop_after_about_six_hours() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 10)] == [
        5,
        10,
        20,
        40,
        80,
        160,
        320,
        600,
        600,
    ]
    total = sum((backoff(n) for n in range(1, MAX_ATTEMPTS)), timedelta())
    assert timedelta(hours=5) < total < timedelta(hours=7)


class RefusingServer:
    """smtplib.SMTP as a relay answers it that knows no such recipient (550) or that
    is busy (451): the product's own sender (services.mail._send) classifies it."""

    code = 550

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host

    def ehlo(self) -> None: ...

    def send_message(self, message: EmailMessage, to_addrs: list[str]) -> None:
        assert to_addrs == [str(message["To"])]  # RCPT TO: the one stored address
        raise smtplib.SMTPRecipientsRefused({to_addrs[0]: (self.code, b"no such user")})

    def quit(self) -> None: ...


@pytest.mark.parametrize(("code", "given_up"), [(550, True), (451, False)])
def test_a_permanent_refusal_is_given_up_at_once_a_temporary_one_is_not(
    h: Harness, monkeypatch: pytest.MonkeyPatch, code: int, given_up: bool
) -> None:
    monkeypatch.setattr(RefusingServer, "code", code)
    monkeypatch.setattr("passport.services.mail.smtplib.SMTP", RefusingServer)
    queue(h)
    assert deliver_due_mail(h.app.services.db, h.settings, h.clock()) == 0
    row = rows(h)[0]
    assert row.last_error == f"SMTPRecipientsRefused {code}"
    assert row.sent_at is None
    if given_up:
        assert row.attempts == MAX_ATTEMPTS and row.body == ""
        assert outbox_state_of(h).given_up == 1
    else:
        assert row.attempts == 1 and row.body != ""
        assert outbox_state_of(h).failing == 1


def outbox_state_of(h: Harness) -> Any:
    with h.app.services.db.session() as db:
        return outbox_state(db)


def test_after_the_last_attempt_the_message_is_given_up(h: Harness) -> None:
    queue(h)
    down = Script(*[ConnectionRefusedError() for _ in range(MAX_ATTEMPTS)])
    for _ in range(MAX_ATTEMPTS):
        deliver(h, down)
        h.clock.advance(minutes=10)
    row = rows(h)[0]
    assert row.attempts == MAX_ATTEMPTS and row.body == "" and row.sent_at is None
    assert deliver(h, Script()) == 0


def test_the_servers_words_and_the_password_never_reach_last_error_or_the_log(
    factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h = factory(
        "sqlite", **{**MAIL, "smtp_url": "smtp://mailer:hunter2-secret@127.0.0.1:1?starttls=true"}
    )
    queue(h)
    leaky = Script(
        smtplib.SMTPAuthenticationError(535, b"bad credentials for mailer:hunter2-secret")
    )
    with caplog.at_level(logging.WARNING, logger="passport.mail"):
        deliver(h, leaky)
    row = rows(h)[0]
    assert row.last_error == "SMTPAuthenticationError 535"
    assert "hunter2" not in caplog.text and "user0@example.com" not in caplog.text
    assert "SMTPAuthenticationError 535" in caplog.text


def test_a_message_is_sent_once_however_many_senders_run(h: Harness) -> None:
    queue(h, 12)
    sent: list[str] = []
    lock = threading.Lock()

    def send(message: EmailMessage) -> None:
        with lock:
            sent.append(str(message["Message-ID"]))

    threads = [threading.Thread(target=deliver, args=(h, send)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 12
    assert all(row.sent_at is not None for row in rows(h))


def test_a_sender_that_died_mid_send_is_covered_by_the_lease(h: Harness) -> None:
    queue(h)

    class Died(BaseException):
        """The process ends between the claim and the mark (no except clause runs)."""

    with pytest.raises(Died):
        deliver(h, Script(Died()))
    claimed = rows(h)[0]
    assert claimed.sent_at is None and claimed.attempts == 0
    assert claimed.next_attempt_at == h.clock() + LEASE
    assert deliver(h, Script()) == 0  # another process waits for the lease
    h.clock.advance(seconds=LEASE.total_seconds())
    again = Script()
    assert deliver(h, again) == 1
    assert (
        again.sent[0]["Message-ID"] == f"<passport.{message_key(h.settings, claimed.id)}@localhost>"
    )


def test_the_message_is_plain_text_with_an_html_alternative(h: Harness) -> None:
    queue(h)
    sent = Script()
    deliver(h, sent)
    message = sent.sent[0]
    assert message["To"] == "user0@example.com" and message["From"] == "noreply@localhost"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "Passport can send mail"


# -- the words: the operator's templates -------------------------------------------------------


def test_an_operators_template_replaces_the_built_in_one_and_html_is_escaped(
    tmp_path: Path,
) -> None:
    (tmp_path / "password_reset.txt").write_text("Neues Passwort\nHallo {{ name }}: {{ link }}\n")
    settings = load_settings(
        environ={}, overrides={**MAIL, "mail_templates": str(tmp_path), "database_url": "sqlite://"}
    )
    composed = MailComposer(settings)(
        Letter(
            "password_reset",
            "a@example.com",
            {
                "name": "<b>Eve</b>",
                "username": "<i>eve</i>",
                "link": "http://x/?a=1&b=2",
                "valid_for": "1 hour",
            },
        )
    )
    assert composed.subject == "Neues Passwort"
    assert composed.text == "Hallo <b>Eve</b>: http://x/?a=1&b=2\n"  # text is not HTML
    assert "&lt;i&gt;eve&lt;/i&gt;" in composed.html and "<i>eve</i>" not in composed.html
    assert 'href="http://x/?a=1&amp;b=2"' in composed.html  # the built-in HTML still serves


def test_every_built_in_message_renders_with_its_values() -> None:
    from passport.pages.mail import BUILT_IN

    settings = load_settings(environ={}, overrides={**MAIL, "database_url": "sqlite://"})
    compose = MailComposer(settings)
    values = {
        "name": "n",
        "username": "u",
        "email": "e@example.com",
        "new_email": "f@example.com",
        "link": "http://localhost/x",
        "valid_for": "1 day",
        "inviter": "root",
    }
    names = sorted({p.stem for p in BUILT_IN.glob("*.txt")})
    assert names == [
        "email_changed",
        "invitation",
        "password_changed",
        "password_reset",
        "test",
        "verify_email",
    ]
    for name in names:
        composed = compose(Letter(name, "a@example.com", values))
        assert composed.subject and "\n" not in composed.subject
        assert composed.text.strip() and composed.html.startswith("<!doctype html>")


# -- the SMTP settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, False, False, "", "")),
        ("smtps://mail.example.com", ("mail.example.com", 465, True, False, "", "")),
        (
            "smtp://us%40er:p%3Ass@mail.example.com:587?starttls=true",
            ("mail.example.com", 587, False, True, "us@er", "p:ss"),
        ),
        ("smtps://u:p@[::1]:2465", ("::1", 2465, True, False, "u", "p")),
    ],
)
def test_smtp_urls_are_read_as_documented(url: str, expected: tuple[Any, ...]) -> None:
    target = parse_smtp_url(url)
    assert (
        target.host,
        target.port,
        target.implicit_tls,
        target.starttls,
        target.username,
        target.password,
    ) == expected
    assert "password=" not in repr(target)  # never printed with the settings


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "must start with smtp:// or smtps://"),
        ("smtp://", "must name a host"),
        ("smtp://mail.example.com:99999", "invalid port"),
        ("smtp://u:secret@mail.example.com", "a password needs TLS"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtp://mail.example.com?tls=1", "the only option is ?starttls=true"),
        ("smtp://mail.example.com?secretpart", "percent-encode a '?'"),
        ("smtps://u:pa#secret@mail.example.com", "percent-encode it (%23)"),
    ],
)
def test_a_wrong_smtp_url_stops_start_up_with_one_line(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"PASSPORT_SMTP_URL": url})
    assert problem in str(raised.value)
    assert "secret" not in str(raised.value)


def test_mail_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs smtp_url"):
        load_settings(environ={"PASSPORT_REQUIRE_VERIFIED_EMAIL": "true"})
    with pytest.raises(ConfigError, match="needs key_encryption_key"):
        load_settings(
            environ={
                "PASSPORT_SMTP_URL": "smtp://mail.example.com",
                "PASSPORT_DATABASE_URL": "postgresql+psycopg://p@127.0.0.1/p",
            }
        )
    with pytest.raises(ConfigError, match="mail_from"):
        load_settings(environ={"PASSPORT_MAIL_FROM": "Passport <sso@example.com>"})
    with pytest.raises(ConfigError, match="mail_from"):
        load_settings(environ={"PASSPORT_MAIL_FROM": "sso@example.com\r\nBcc: x@evil.example"})
