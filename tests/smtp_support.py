"""A real SMTP server process for the mail tests: start it, read what it received, kill it.

:class:`SmtpSink` runs ``tests/smtp_sink.py`` (aiosmtpd) as a child process on a port of
127.0.0.1 and reads the messages it wrote to its maildir, so a test sees what Passport
really put on the wire, and can SIGKILL the server mid-run and start it again on the same
port (the product's retries and its queue are tested against a server that truly went
away).  Its :attr:`~SmtpSink.url` is the setting the product is configured with::

    from smtp_support import smtp_sink as smtp_sink

    @pytest.mark.live
    def test_mail(smtp_sink: SinkFactory) -> None:
        sink = smtp_sink(starttls=True, auth=("mailer", "secret"))
        ...  # configure Passport with sink.url, and sink.cert as the CA to trust
        (message,) = sink.wait_for(1)
        assert links(message) == [...]

The fixture is imported under its own name, ``as smtp_sink``: that form is an explicit
re-export to ruff, which would otherwise see an unused import (F401) and, at each test
that takes the fixture, a redefinition of it (F811, which a ``noqa`` on the import does not
silence).  A test that starts a sink starts a process: mark it ``live`` so that the fast loop
(``make test-fast``) leaves it out.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

from ports import free_port  # noqa: F401 - the SMTP tests import it from here

SCRIPT = Path(__file__).resolve().with_name("smtp_sink.py")
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
POLL = 0.02
READY = re.compile(rb"^READY (\d+)$", re.MULTILINE)
# A URL in a text body ends at white space or at what usually encloses it in prose.
URL = re.compile(r"https?://[^\s<>\"'()\[\]]+")


def make_self_signed(tmp_path: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host``, 127.0.0.1 and localhost and its key, as
    PEM files in ``tmp_path``: ``(cert, key)``.  The certificate is its own CA, with the
    extensions a strict verifier asks of one (X509_STRICT, Python 3.13's default), so a
    client trusts it with ``ssl.create_default_context(cafile=cert)`` and checks the
    host name as it would in production, rather than turning verification off."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    alternatives: list[x509.GeneralName] = []
    for entry in dict.fromkeys((host, "127.0.0.1", "localhost")):
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            alternatives.append(x509.DNSName(entry))
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / f"smtp-{host}-cert.pem"
    key_path = tmp_path / f"smtp-{host}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def links(message: EmailMessage) -> list[str]:
    """The http(s) URLs in the message's text/plain part, in order: what a user would
    follow from the mail.  A full stop or comma ending a sentence is not part of a URL."""
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        raise AssertionError(f"no text/plain part in {summary(message)}")
    assert isinstance(body, EmailMessage)
    return [url.rstrip(".,;:!?") for url in URL.findall(body.get_content())]


def summary(message: EmailMessage) -> str:
    """One message in an assertion's text: who it went to and its subject."""
    return f"<To: {message['To']!s} Subject: {message['Subject']!r}>"


@dataclass(frozen=True)
class Delivery:
    """One accepted message with what the server saw of its SMTP transaction."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]
    tls: bool  # came over TLS (STARTTLS or implicit)
    login: str | None  # the AUTH user, None when not authenticated
    path: Path  # the raw bytes as received


class SmtpSink:
    """The SMTP server process (``tests/smtp_sink.py``) and the messages it accepted.

    ``starttls``: STARTTLS offered and required; ``implicit_tls``: SMTPS; both on a
    self-signed certificate made in ``directory`` unless ``cert``/``key`` are given.
    ``auth``: (user, password) required.  ``fail_first``: the first N messages of each
    server process get 451.  ``port``: fixed, or 0 for one the server picks (kept by
    :meth:`restart`).  The maildir, the certificate and the log (``sink.log``, every
    start appended) live in ``directory``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        fail_first: int = 0,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        if starttls and implicit_tls:
            raise ValueError("starttls and implicit_tls are two different modes: choose one")
        self.directory = directory
        self.maildir = directory / "maildir"
        self.log = directory / "sink.log"
        self.port = port
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.fail_first = fail_first
        self.cert = cert
        self.key = key
        if (starttls or implicit_tls) and (cert is None or key is None):
            directory.mkdir(parents=True, exist_ok=True)
            self.cert, self.key = make_self_signed(directory)
        self.process: subprocess.Popen[bytes] | None = None
        self._parser = BytesParser(_class=EmailMessage, policy=policy.default)

    # -- the process ---------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line that runs this server (on :attr:`port`, 0 until first start)."""
        argv = [sys.executable, str(SCRIPT), "--port", str(self.port)]
        argv += ["--maildir", str(self.maildir)]
        if self.cert is not None and self.key is not None:
            argv += ["--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        if self.starttls:
            argv.append("--starttls")
        if self.implicit_tls:
            argv.append("--implicit-tls")
        if self.auth is not None:
            argv += ["--auth", ":".join(self.auth)]
        if self.fail_first:
            argv += ["--fail-first", str(self.fail_first)]
        return argv

    def start(self) -> SmtpSink:
        """Spawn the server and return once it listens (its ``READY`` line).  Raises
        RuntimeError with the server's log if it exits or is not ready in 20 s."""
        if self.running:
            raise RuntimeError(f"the SMTP sink on port {self.port} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(), stdout=output, stderr=subprocess.STDOUT, cwd=self.directory
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            ready = READY.search(self._log_bytes(offset))
            if ready is not None:
                self.port = int(ready.group(1))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the SMTP sink exited with {self.process.returncode}:\n{self.output()}"
                )
            time.sleep(POLL)
        self.kill()
        raise RuntimeError(f"the SMTP sink did not start in {START_TIMEOUT} s:\n{self.output()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the server goes away as a crashed relay does, mid-conversation."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self) -> SmtpSink:
        """Kill the server if it still runs and start it again: same port, maildir and
        options, so messages accepted before stay readable."""
        self.kill()
        return self.start()

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def output(self) -> str:
        """The server's log, every start of it."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _log_bytes(self, offset: int) -> bytes:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read()

    # -- what the product is configured with -------------------------------------------

    @property
    def url(self) -> str:
        """The product's SMTP setting for this server: ``smtp://127.0.0.1:PORT``, with
        ``user:pass@`` when AUTH is required, ``?starttls=true`` for STARTTLS and the
        ``smtps`` scheme for implicit TLS."""
        if not self.port:
            raise RuntimeError("the SMTP sink has no port until it is started")
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = ""
        if self.auth is not None:
            name, password = self.auth
            user = f"{quote(name, safe='')}:{quote(password, safe='')}@"
        query = "?starttls=true" if self.starttls else ""
        return f"{scheme}://{user}{HOST}:{self.port}{query}"

    # -- what it received ----------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        """Every accepted message with its envelope, in delivery order (across restarts)."""
        found: list[Delivery] = []
        for path in sorted((self.maildir / "new").glob("*.eml")):
            envelope = json.loads(path.with_suffix(".json").read_text())
            # On the wire and on disk lines end in CRLF; parsed, they end in "\n" as
            # Python's own text does (the mailbox module's way), so that get_content()
            # compares with a template's text.  The raw bytes stay at ``path``.
            message = self._parser.parsebytes(path.read_bytes().replace(b"\r\n", b"\n"))
            assert isinstance(message, EmailMessage)
            found.append(
                Delivery(
                    message=message,
                    mail_from=envelope["mail_from"],
                    rcpt_tos=envelope["rcpt_tos"],
                    tls=envelope["tls"],
                    login=envelope["login"],
                    path=path,
                )
            )
        return found

    def messages(self) -> list[EmailMessage]:
        """Every accepted message, parsed with ``email.policy.default`` (lines ending in
        "\\n"), in delivery order."""
        return [delivery.message for delivery in self.deliveries()]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[EmailMessage]:
        """All messages once at least ``count`` have arrived; AssertionError naming what
        did arrive if they have not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} message(s) at {self.url} within {timeout} s, "
                    f"{len(messages)} arrived: {', '.join(map(summary, messages)) or 'none'}"
                )
            time.sleep(POLL)

    def wait_for_message(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 20.0
    ) -> EmailMessage:
        """The first message ``predicate`` accepts, once it has arrived; AssertionError
        naming what did arrive if none has within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages()
            for message in messages:
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no matching message at {self.url} within {timeout} s; "
                    f"{len(messages)} arrived: {', '.join(map(summary, messages)) or 'none'}"
                )
            time.sleep(POLL)


class SinkFactory:
    """What the ``smtp_sink`` fixture yields: ``smtp_sink(**options)`` starts an
    :class:`SmtpSink` (options as its constructor's) in a directory of its own under
    the test's ``tmp_path``; every one started is stopped when the test ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[SmtpSink] = []

    def __call__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        fail_first: int = 0,
        port: int = 0,
    ) -> SmtpSink:
        sink = SmtpSink(
            self.tmp_path / f"smtp-sink-{len(self.started) + 1}",
            port=port,
            starttls=starttls,
            implicit_tls=implicit_tls,
            auth=auth,
            fail_first=fail_first,
        )
        self.started.append(sink)
        return sink.start()

    def stop_all(self) -> None:
        for sink in self.started:
            sink.stop()


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SinkFactory]:
    """Start SMTP sink processes: ``sink = smtp_sink(starttls=True, auth=("u", "p"))``."""
    factory = SinkFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
