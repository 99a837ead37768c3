"""A real SMTP server for Passport's tests, run as its own process (aiosmtpd).

    python tests/smtp_sink.py --port N --maildir DIR [--tls-cert C --tls-key K]
        [--starttls | --implicit-tls] [--auth USER:PASS] [--fail-first N]

The product's mail code must be tested against a server it talks to over a socket, one a
test can SIGKILL mid-run and start again on the same port (what a mail relay's restart
looks like to Passport), so this is a process and not a thread of the test run.

Each accepted message is written in the Maildir way: its raw RFC 5322 bytes go to
``DIR/tmp`` and are renamed into ``DIR/new`` only once complete, so a reader never sees
half a message, even when this process is killed while writing.  The envelope (MAIL FROM,
RCPT TO), whether the message came over TLS and who authenticated travel in a JSON file
beside it (``000001.json`` for ``000001.eml``), renamed into place *before* the message,
so that a message in ``new`` always has its envelope.  The message bytes are left as
received: a test sees exactly what Passport sent.  Names are a sequence number, continued
from what ``DIR/new`` holds when the server starts again, so their order is the delivery
order across restarts.

Modes: ``--starttls`` offers STARTTLS and refuses everything but EHLO/NOOP/QUIT before it
(so AUTH and the message only ever cross an encrypted connection); ``--implicit-tls`` is
SMTPS, TLS from the first byte.  ``--auth`` requires AUTH PLAIN or LOGIN with these
credentials (wrong ones get 535); with neither TLS mode AUTH is not even offered, as a
real submission server would do, so every message is refused with 530.  ``--fail-first N``
answers the end of the first N DATA transactions with 451 (a temporary failure, as a
relay that is busy or greylisting says it), to test that the product sends again; the
count is this process's, so a restarted server fails its first N again.

``--port 0`` takes a free port.  Once listening the server prints ``READY <port>`` on
stdout; it then runs until killed, or until the process that started it is gone (so a
test run that dies leaves no server behind).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import ssl
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import AuthResult
from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import LoginPassword
from aiosmtpd.smtp import Session

HOST = "127.0.0.1"
# The name in the greeting and EHLO reply: aiosmtpd's default asks DNS (socket.getfqdn),
# which can stall a start for seconds on a host without a resolver.
HOSTNAME = "smtp-sink.localhost"
PARENT_POLL = 0.5

log = logging.getLogger("smtp_sink")


class Maildir:
    """Where accepted messages go: ``tmp`` for writing, ``new`` once complete."""

    def __init__(self, root: Path) -> None:
        self.tmp = root / "tmp"
        self.new = root / "new"
        for directory in (self.tmp, self.new, root / "cur"):
            directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(path.stem) for path in self.new.glob("*.eml") if path.stem.isdigit()]
        self.last = max(numbers, default=0)

    def deliver(self, content: bytes, envelope: dict[str, Any]) -> str:
        """Write one message and its envelope; return its name.  The JSON is renamed
        into ``new`` first, so a reader that sees the message also sees its envelope.
        No fsync: the data is in the kernel once written, which a killed process cannot
        take back, and a crash of the machine is not what these tests are about."""
        self.last += 1
        name = f"{self.last:06d}"
        for suffix, data in (
            (".json", json.dumps(envelope, indent=2).encode()),
            (".eml", content),
        ):
            partial = self.tmp / f"{name}{suffix}"
            partial.write_bytes(data)
            partial.rename(self.new / f"{name}{suffix}")
        return name


class Handler:
    """aiosmtpd's handler: refuse the first ``fail_first`` messages, deliver the rest."""

    def __init__(self, maildir: Maildir, fail_first: int) -> None:
        self.maildir = maildir
        self.fail_first = fail_first
        self.transactions = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.transactions += 1
        if self.transactions <= self.fail_first:
            log.info("refused message %d of %d (--fail-first)", self.transactions, self.fail_first)
            return "451 4.3.0 Temporary failure (--fail-first), try again later"
        content = envelope.original_content or b""
        transport = server.transport
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        name = self.maildir.deliver(
            content,
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options),
                "peer": list(session.peer) if isinstance(session.peer, tuple) else session.peer,
                # STARTTLS and implicit TLS alike: the transport carrying the message.
                "tls": transport is not None and transport.get_extra_info("ssl_object") is not None,
                "login": login.decode("utf-8", "replace") if login is not None else None,
                "received_at": time.time(),
            },
        )
        log.info("delivered %s from %s to %s", name, envelope.mail_from, envelope.rcpt_tos)
        return "250 2.0.0 OK: queued as " + name


class Credentials:
    """aiosmtpd's ``authenticator``: one user, one password, compared in constant time."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode()
        self.password = password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and hmac.compare_digest(data.login, self.user)
            and hmac.compare_digest(data.password, self.password)
        ):
            return AuthResult(success=True, auth_data=data)
        log.info("refused AUTH %s", mechanism)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="0 takes a free port")
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--starttls", action="store_true", help="offer and require STARTTLS")
    mode.add_argument("--implicit-tls", action="store_true", help="SMTPS: TLS from the start")
    parser.add_argument("--auth", metavar="USER:PASS", help="require AUTH PLAIN/LOGIN")
    parser.add_argument("--fail-first", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if (args.starttls or args.implicit_tls) and not (args.tls_cert and args.tls_key):
        parser.error("--starttls and --implicit-tls need --tls-cert and --tls-key")
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth takes USER:PASS")
    return args


async def watch_parent() -> None:
    """Return once the process that started us is gone (we were handed to init)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL)
    log.info("parent %d is gone: stopping", parent)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    maildir = Maildir(args.maildir)
    handler = Handler(maildir, args.fail_first)
    context: ssl.SSLContext | None = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    options: dict[str, Any] = {}
    if args.auth is not None:
        user, _, password = args.auth.partition(":")
        options["authenticator"] = Credentials(user, password)
        options["auth_required"] = True
        # aiosmtpd only knows TLS that began with STARTTLS: over SMTPS it would refuse
        # AUTH as "encryption required" on a connection that is encrypted from the start.
        options["auth_require_tls"] = not args.implicit_tls

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=HOSTNAME,
            enable_SMTPUTF8=True,
            tls_context=context if args.starttls else None,
            require_starttls=args.starttls,
            loop=loop,
            **options,
        )

    # A killed predecessor's listener is closed by the time its parent has reaped it, and
    # SO_REUSEADDR (asyncio's default on POSIX) lets us bind over its connections that
    # are still in TIME_WAIT: a restart gets the same port at once.
    tls = context if args.implicit_tls else None
    server = await loop.create_server(factory, HOST, args.port, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    log.info("listening on %s:%d (pid %d, %s)", HOST, port, os.getpid(), " ".join(sys.argv[1:]))
    print(f"READY {port}", flush=True)
    async with server:
        await watch_parent()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # The combination aiosmtpd warns about (AUTH required, TLS not required) is only
    # chosen for SMTPS, where the connection is encrypted before the first command.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
