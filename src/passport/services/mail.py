"""Passport's mail: a durable outbox and the worker that sends it over SMTP.

An operation that must tell someone something (a password reset link, a verification
link, an invitation, "your address changed") calls :meth:`Outbox.queue` in its own
transaction: the message is a row of ``mail_outbox``, committed with the change that
caused it or not at all.  A background thread in every served process
(:class:`MailSender`, started with the back-channel deliverer) sends due rows:

* **claimed** first, by one conditional ``UPDATE`` that moves ``next_attempt_at`` a
  lease ahead (:data:`LEASE`): two processes never send the same row at once;
* **sent** over SMTP (``smtp_url``: implicit TLS, STARTTLS, AUTH only over TLS, the
  server's certificate verified), then marked ``sent_at`` and its body emptied;
* on a **temporary** failure (the server down or answering 4xx, RFC 5321 §4.2.1) tried
  again after a growing delay (:func:`backoff`: 5 s doubling to 10 min, for
  :data:`MAX_ATTEMPTS` attempts — about six hours); a **permanent** refusal (5xx: the
  address does not exist, the relay refuses us) is given up at once.  ``last_error``
  records the kind and the SMTP code, never the server's text or a credential.

Delivery is *at least once*.  The one case that sends a message twice: the process
dies after the SMTP server accepted the message and before ``sent_at`` is committed;
the lease then runs out and another attempt sends it again, with the same
``Message-ID`` (made from the row), so the recipient's mail client can recognise it.
A message is never lost: until ``sent_at`` is written, the row is due again.

The body (text and HTML parts, which may carry a live link) is sealed at rest with a
key derived from the key-encryption key (:mod:`passport.services.kek`), like the
other secrets Passport keeps; the subject and recipient are not secrets.

The templates are rendered by a :data:`Composer` that the composition root passes in
(:mod:`passport.pages.mail`: Jinja2 lives above the services).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import email_validator
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.config import SmtpTarget
from passport.errors import FeatureDisabled
from passport.services.kek import derived_key
from passport.storage.db import Database
from passport.storage.models import MailMessage

log = logging.getLogger("passport.mail")

MAX_ATTEMPTS = 40
LEASE = timedelta(minutes=5)  # longer than an SMTP exchange can take (its timeouts)
POLL_SECONDS = 1.0
BATCH = 20
NO_MAIL = (
    "Passport cannot send mail: no SMTP server is configured (PASSPORT_SMTP_URL); "
    "ask an administrator."
)


@dataclass(frozen=True)
class Letter:
    """What to tell whom: a template name (``password_reset``…) and its values."""

    template: str
    recipient: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    html: str


Composer = Callable[[Letter], Composed]


def email_key_of(address: str) -> str:
    from passport.services.accounts import email_key

    return email_key(address)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failure: 5 s, 10 s, 20 s … 10 min."""
    return timedelta(seconds=min(600, 5 * 2 ** min(attempts - 1, 10)))


class Outbox:
    """Queues mail in a transaction (the durable outbox)."""

    def __init__(self, settings: Settings, compose: Composer) -> None:
        self.settings = settings
        self.compose = compose

    @property
    def enabled(self) -> bool:
        return self.settings.mail_enabled

    def ensure_enabled(self, source: str) -> None:
        if not self.enabled:
            raise FeatureDisabled(NO_MAIL, source=source)

    def queue(
        self,
        db: Session,
        letter: Letter,
        now: datetime,
        *,
        user_id: int | None = None,
        composed: Composed | None = None,
        notice: bool = False,
    ) -> MailMessage | None:
        """Add the message to ``db``'s transaction (sent once it commits) — unless the
        address was sent :attr:`Settings.mail_address_limit` messages in the last
        throttle window, whatever caused them: then nothing (None), so that no sequence
        of operations (registering an address, changing to it and away, resending an
        invitation) can bomb one mailbox.  Counted in this transaction, with the rows
        themselves: the same statements whether the message is then kept or not.
        A security ``notice`` (the address or the password changed) is counted but
        always queued: filling an address's share must not silence the one alarm its
        owner needs."""
        self.ensure_enabled("email")
        done = composed or self.compose(letter)
        key = email_key_of(letter.recipient)
        since = now - timedelta(seconds=self.settings.throttle_window)
        recent = db.scalar(
            select(func.count())
            .select_from(MailMessage)
            .where(MailMessage.recipient_key == key, MailMessage.created_at > since)
        )
        if (recent or 0) >= self.settings.mail_address_limit and not notice:
            log.info("mail (%s) not queued: its address had its share", letter.template)
            return None
        row = MailMessage(
            purpose=letter.template[:32],
            user_id=user_id,
            recipient=letter.recipient,
            recipient_key=key,
            subject=done.subject[:255],
            body=seal(self.settings, json.dumps({"text": done.text, "html": done.html})),
            created_at=now,
            next_attempt_at=now,
            attempts=0,
            last_error="",
        )
        db.add(row)
        return row


# -- sealing -------------------------------------------------------------------------------------
def _sealer(settings: Settings) -> AESGCM:
    key = derived_key(settings, b"passport mail body")
    if key is None:
        raise FeatureDisabled(
            "Passport cannot keep mail without a key-encryption key.", source="email"
        )
    return AESGCM(key)


def seal(settings: Settings, text: str) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(
        nonce + _sealer(settings).encrypt(nonce, text.encode(), b"mail_outbox")
    ).decode()


def unseal(settings: Settings, sealed: str) -> str:
    blob = base64.b64decode(sealed)
    return _sealer(settings).decrypt(blob[:12], blob[12:], b"mail_outbox").decode()


# -- sending ---------------------------------------------------------------------------------------
class PermanentFailure(Exception):
    """The server refused the message for good (a 5xx answer): no point trying again."""


def message_key(settings: Settings, row_id: int) -> str:
    """An opaque, stable name for outbox row ``row_id`` (HMAC-SHA256 under a key derived
    from the key-encryption key)."""
    key = derived_key(settings, b"passport mail message id") or b""
    return hmac.new(key, str(row_id).encode(), hashlib.sha256).hexdigest()[:32]


class UnsendableAddress(Exception):
    """The stored recipient is not one plain address (stored before addresses were
    checked as they are now): the message is given up, never sent elsewhere."""


def mailbox_of(recipient: str) -> Address:
    """The one mailbox ``recipient`` names, exactly: checked as registration checks an
    address (email-validator), and kept only if it needs no quoting — never a group, a
    list or a comment read out of the stored text."""
    try:
        email_validator.validate_email(recipient, check_deliverability=False, allow_smtputf8=True)
    except email_validator.EmailNotValidError:
        raise UnsendableAddress("not an address") from None
    local, _, domain = recipient.rpartition("@")
    mailbox = Address(username=local, domain=domain)
    if mailbox.addr_spec != recipient:
        raise UnsendableAddress("not one plain address")
    return mailbox


def message_of(settings: Settings, row: MailMessage, now: datetime) -> EmailMessage:
    """The RFC 5322 message of an outbox row: plain text with an HTML alternative."""
    parts = json.loads(unseal(settings, row.body))
    message = EmailMessage()
    message["From"] = settings.sender
    # One mailbox, exactly the stored address: an address that does not parse as one
    # plain addr-spec raises here (and the row is given up), never becomes a group or
    # a list of recipients.
    message["To"] = mailbox_of(row.recipient)
    message["Subject"] = row.subject
    message["Date"] = format_datetime(row.created_at)
    domain = settings.sender.rpartition("@")[2] or "localhost"
    # The same for every attempt at this row: a duplicate after a crash is recognisable.
    # Keyed, not the row's number: numbers of rows rolled back would tell a reader how
    # many messages others caused meanwhile (an account oracle, :meth:`Lifecycle._mail_link`).
    message["Message-ID"] = f"<passport.{message_key(settings, row.id)}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to us
    message.set_content(parts["text"])
    if parts.get("html"):
        message.add_alternative(parts["html"], subtype="html")
    return message


def smtp_sender(settings: Settings) -> Callable[[EmailMessage], None]:
    """Hand a message to the configured SMTP server, or raise (temporary) /
    :class:`PermanentFailure`."""
    target = settings.smtp
    if target is None:
        raise FeatureDisabled(NO_MAIL, source="email")

    def send(message: EmailMessage) -> None:
        _send(target, settings, message)

    return send


def _tls(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.smtp_ca_file or None)


def _send(target: SmtpTarget, settings: Settings, message: EmailMessage) -> None:
    timeout = settings.smtp_timeout
    client: smtplib.SMTP
    if target.implicit_tls:
        client = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=_tls(settings))
    else:
        client = smtplib.SMTP(target.host, target.port, timeout=timeout)
    try:
        client.ehlo()
        if target.starttls:
            client.starttls(context=_tls(settings))
            client.ehlo()
        if target.username:
            client.login(target.username, target.password)
        try:
            # RCPT TO is the one address of the To header, never a list read from it.
            recipient = message["To"].addresses[0].addr_spec
            client.send_message(message, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"SMTPRecipientsRefused {codes[0]}") from None
            raise
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"{type(exc).__name__} {exc.smtp_code}") from None
            raise
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def describe_failure(exc: BaseException) -> str:
    """What went wrong, for ``last_error`` and the log: the kind and the SMTP code, never
    the server's text (it may quote an address or a credential)."""
    if isinstance(exc, PermanentFailure):
        return str(exc)[:200]
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = next(iter(exc.recipients.values()))[0]
    return f"{type(exc).__name__}{f' {code}' if isinstance(code, int) else ''}"[:200]


def deliver_due_mail(
    database: Database,
    settings: Settings,
    now: datetime,
    send: Callable[[EmailMessage], None] | None = None,
) -> int:
    """Send every due message once; returns how many were sent."""
    if not settings.mail_enabled:
        return 0
    sender = send or smtp_sender(settings)
    sent = 0
    with database.session() as db:
        due = db.execute(
            select(MailMessage.id, MailMessage.next_attempt_at)
            .where(
                MailMessage.sent_at.is_(None),
                MailMessage.attempts < MAX_ATTEMPTS,
                MailMessage.next_attempt_at <= now,
            )
            .order_by(MailMessage.id)
            .limit(BATCH)
        ).all()
    for row_id, planned in due:
        with database.session(write=True) as db, db.begin():
            claimed = db.execute(
                update(MailMessage)
                .where(
                    MailMessage.id == row_id,
                    MailMessage.next_attempt_at == planned,
                    MailMessage.sent_at.is_(None),
                )
                .values(next_attempt_at=now + LEASE)
            )
            if not getattr(claimed, "rowcount", 0):
                continue  # another process has it
        with database.session() as db:
            row = db.get(MailMessage, row_id)
            if row is None:
                continue
            db.expunge(row)
        error = ""
        permanent = False
        try:
            message = message_of(settings, row, now)
        except UnsendableAddress:
            error, permanent = "unsendable address", True
        except (InvalidTag, ValueError, KeyError) as exc:  # unreadable: the key changed
            error, permanent = f"unreadable body ({type(exc).__name__})", True
        except Exception as exc:  # an address no message can carry: never send it
            error, permanent = f"unsendable message ({type(exc).__name__})", True
        else:
            # Apart from the reading: ssl.SSLCertVerificationError is a ValueError too,
            # and a relay's untrusted certificate is worth trying again, not giving up.
            try:
                sender(message)
            except PermanentFailure as exc:
                error, permanent = describe_failure(exc), True
            except (smtplib.SMTPException, OSError) as exc:  # TLS and timeouts too
                error = describe_failure(exc)
            except Exception as exc:  # nothing else may stop the round (one row, given up)
                error, permanent = f"unsendable message ({type(exc).__name__})", True
        attempts = row.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "last_error": error}
        if not error:
            values.update(sent_at=now, body="")
            sent += 1
        elif permanent or attempts >= MAX_ATTEMPTS:
            values.update(attempts=max(attempts, MAX_ATTEMPTS), body="")
        else:
            values["next_attempt_at"] = now + backoff(attempts)
        with database.session(write=True) as db, db.begin():
            db.execute(update(MailMessage).where(MailMessage.id == row_id).values(**values))
        if error:
            given_up = permanent or attempts >= MAX_ATTEMPTS
            log.warning(
                "mail %s (%s) %s: %s",
                row_id,
                row.purpose,
                "given up" if given_up else f"not sent, attempt {attempts}",
                error,
            )
    return sent


class MailSender:
    """A daemon thread per process that sends due mail every second."""

    def __init__(self, database: Database, settings: Settings, clock: Callable[[], datetime]):
        self.database = database
        self.settings = settings
        self.clock = clock
        self._started = False
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        if self._started or not self.settings.mail_enabled:
            return
        with self._lock:
            if not self._started:
                threading.Thread(target=self._run, name="passport-mail", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        while True:
            try:
                deliver_due_mail(self.database, self.settings, self.clock())
            except Exception as exc:  # keep sending; the database may be back soon
                log.warning("mail round failed: %s", type(exc).__name__)
            time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class OutboxState:
    """The backlog an operator watches (``passport mail status``, readiness)."""

    waiting: int
    failing: int
    given_up: int
    sent: int
    oldest_waiting: datetime | None


def outbox_state(db: Session) -> OutboxState:
    def count(*where: Any) -> int:
        return int(db.scalar(select(func.count()).select_from(MailMessage).where(*where)) or 0)

    waiting = MailMessage.sent_at.is_(None) & (MailMessage.attempts < MAX_ATTEMPTS)
    return OutboxState(
        waiting=count(waiting),
        failing=count(waiting, MailMessage.attempts > 0),
        given_up=count(MailMessage.sent_at.is_(None), MailMessage.attempts >= MAX_ATTEMPTS),
        sent=count(MailMessage.sent_at.is_not(None)),
        oldest_waiting=db.scalar(select(func.min(MailMessage.created_at)).where(waiting)),
    )


def send_test(settings: Settings, compose: Composer, address: str, now: datetime) -> str:
    """Send a test message to ``address`` at once (not through the outbox), for an
    operator checking the SMTP settings; returns "" or what went wrong (no secret)."""
    if not settings.mail_enabled:
        return "no SMTP server is configured (PASSPORT_SMTP_URL)"
    done = compose(Letter("test", address))
    row = MailMessage(
        id=0,
        purpose="test",
        recipient_key="",
        recipient=address,
        subject=done.subject,
        body=seal(settings, json.dumps({"text": done.text, "html": done.html})),
        created_at=now,
    )
    try:
        smtp_sender(settings)(message_of(settings, row, now))
    except UnsendableAddress:
        return "not an address Passport sends to"
    except (PermanentFailure, smtplib.SMTPException, OSError) as exc:
        return describe_failure(exc)
    return ""
