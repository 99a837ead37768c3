"""Passport's mail against real processes: ``passport serve`` and a real SMTP server
(``tests/smtp_sink.py``), with links followed as a person follows them (``requests``).

* End to end, on SQLite and PostgreSQL: an address confirmed through its link, a
  forgotten password replaced through the link of /password/forgot (old password and
  sessions dead, a notice sent, the link used up).
* Outages: the SMTP server SIGKILLed while messages wait and started again; ``passport
  serve`` SIGKILLed between queueing a message and sending it, a new process sending it;
  a server answering 451.  Every message arrives, exactly once.
* Transport security: STARTTLS with AUTH and implicit TLS deliver with the server's
  certificate verified against ``PASSPORT_SMTP_CA_FILE``; a wrong CA delivers nothing,
  and ``passport mail status`` and the log say so (without the SMTP password);
  ``passport mail test``.
* Invitations: ``passport user invite --group`` and the /invite page.

Forms are posted as a browser posts them: the page's CSRF field (equal to its cookie)
and Passport's own ``Origin``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import create_engine
from sqlalchemy import text

from oidc_support import KEK
from provision import Backend
from smtp_support import SinkFactory
from smtp_support import SmtpSink
from smtp_support import free_port
from smtp_support import links
from smtp_support import make_self_signed
from smtp_support import smtp_sink as smtp_sink

from conftest import _empty_tables
from support import STRONG

pytestmark = pytest.mark.live

NEW_PASSWORD = "a brand new passphrase for alice"
MAILER = ("mailer", "Smtp-Relay-Secret-7f3a")  # the SMTP AUTH credentials Passport uses
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
RESET_SUBJECT = "Reset your password"
VERIFY_SUBJECT = "Confirm your email address"
CHANGED_SUBJECT = "Your password was changed"
BAD_LINK = "This link does not work"


# -- following links -----------------------------------------------------------------------
class Visitor:
    """A person with a browser's cookie jar: opens pages and posts their forms back the
    way a browser does (the page's CSRF field, Passport's ``Origin``)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def open(self, url: str) -> requests.Response:
        return self.http.get(url, timeout=15)

    def csrf(self, page: requests.Response) -> str:
        """The form's CSRF token: the one this browser's cookie holds."""
        found = CSRF_FIELD.search(page.text)
        assert found is not None, page.text
        assert self.http.cookies.get("passport_csrf") == found.group(1)
        return found.group(1)

    def submit(self, page: requests.Response, action: str, **fields: str) -> requests.Response:
        return self.http.post(
            self.base + action,
            data={"csrf": self.csrf(page), **fields},
            headers={"Origin": self.base},
            timeout=30,
        )


def api(base: str, path: str, jar: Any = None, **data: str) -> requests.Response:
    return requests.post(base + path, data=data, cookies=jar, headers={"Origin": base}, timeout=30)


def status(base: str, jar: Any) -> dict[str, Any]:
    answer = requests.get(base + "/Account/status", cookies=jar, timeout=15)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["Data"]
    return data


def register(base: str, username: str, email: str) -> None:
    answer = api(base, "/Account/register", username=username, password=STRONG, email=email)
    assert answer.status_code == 200, answer.text


def mail_to(sink: SmtpSink, address: str, subject: str, timeout: float = 30) -> EmailMessage:
    def wanted(message: EmailMessage) -> bool:
        return message["To"] == address and message["Subject"] == subject

    return sink.wait_for_message(wanted, timeout=timeout)


def link_of(message: EmailMessage, page: str) -> str:
    """The one link of ``message`` to Passport's ``page``."""
    found = [url for url in links(message) if urlsplit(url).path == page]
    assert len(found) == 1, links(message)
    return found[0]


def on(base: str, link: str) -> str:
    """``link`` at the server ``base`` (a link names the server that made it)."""
    parts = urlsplit(link)
    return f"{base}{parts.path}?{parts.query}"


# -- the outbox, read from the database ----------------------------------------------------
def outbox(url: str) -> list[dict[str, Any]]:
    """The rows of ``mail_outbox``, oldest first (what a message's state is)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, recipient, subject, attempts, last_error, sent_at "
                    "FROM mail_outbox ORDER BY id"
                )
            )
            return [dict(row) for row in rows.mappings()]
    finally:
        engine.dispose()


def wait_until(
    what: str, check: Callable[[], bool], timeout: float = 30, poll: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(poll)


def all_sent(url: str) -> bool:
    rows = outbox(url)
    return bool(rows) and all(row["sent_at"] is not None for row in rows)


def assert_exactly_once(sink: SmtpSink, url: str) -> list[EmailMessage]:
    """Every row of the outbox was sent, and the SMTP server holds each exactly once:
    as many messages as rows, each Message-ID once, each (recipient, subject) once."""
    wait_until("every message marked sent", lambda: all_sent(url))
    rows = outbox(url)
    assert all(row["sent_at"] is not None for row in rows), rows
    messages = sink.messages()
    ids = Counter(str(m["Message-ID"]) for m in messages)
    assert [i for i, n in ids.items() if n > 1] == [], ids
    assert len(messages) == len(rows), (len(messages), rows)
    sent = Counter((str(m["To"]), str(m["Subject"])) for m in messages)
    expected = Counter((row["recipient"], row["subject"]) for row in rows)
    assert sent == expected
    return messages


# -- processes -----------------------------------------------------------------------------
def passport(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    """A ``passport`` command, as an operator runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "passport", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment | (env or {}),
        timeout=60,
    )


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def crash(server: Any) -> None:
    """SIGKILL ``passport serve`` as a crash does: the process and its Granian workers
    (a worker outlives a SIGKILLed main process: nothing tells it its parent died)."""
    workers = _descendants(server.process.pid)
    server.process.kill()  # first, so that it respawns nothing
    server.process.wait()
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until("the workers are gone", lambda: not any(map(_alive, workers)), timeout=10)


# -- the database under test ---------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, backends: dict[str, Backend], tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """A database URL and the settings that go with it (outside SQLite, the key that
    seals queued mail)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mail.sqlite3'}", {}
    url = backends[request.param].url
    _empty_tables(url)
    return url, {"PASSPORT_KEY_ENCRYPTION_KEY": KEK}


@pytest.fixture
def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mail.sqlite3'}"


def smtp_env(sink: SmtpSink, **more: str) -> dict[str, str]:
    env = {"PASSPORT_SMTP_URL": sink.url}
    if sink.cert is not None:
        env["PASSPORT_SMTP_CA_FILE"] = str(sink.cert)
    return env | more


# -- 1. end to end -------------------------------------------------------------------------
def test_confirm_the_address_then_replace_a_forgotten_password(
    database: tuple[str, dict[str, str]], live_server: Any, smtp_sink: SinkFactory
) -> None:
    url, env = database
    sink = smtp_sink()
    server = live_server(url, env=env | smtp_env(sink))
    base = server.url
    register(base, "alice", "alice@example.com")
    signed_in = api(base, "/Account/login", username="alice", password=STRONG).cookies
    assert status(base, signed_in)["User"]["EmailVerified"] is False

    # The confirmation link: its page is a form (opening it changes nothing)...
    confirm = link_of(mail_to(sink, "alice@example.com", VERIFY_SUBJECT), "/email/verify")
    assert confirm.startswith(f"{base}/email/verify?token=")
    person = Visitor(base)
    page = person.open(confirm)
    assert page.status_code == 200 and "alice@example.com" in page.text
    token = urlsplit(confirm).query.removeprefix("token=")
    assert status(base, signed_in)["User"]["EmailVerified"] is False
    # ... whose post needs this browser's CSRF token ...
    forged = requests.post(
        base + "/email/verify", data={"token": token}, headers={"Origin": base}, timeout=15
    )
    assert forged.status_code == 403
    assert status(base, signed_in)["User"]["EmailVerified"] is False
    # ... and with it confirms the address.
    done = person.submit(page, "/email/verify", token=token)
    assert done.status_code == 200 and "Your address is confirmed" in done.text
    assert status(base, signed_in)["User"]["EmailVerified"] is True

    # A forgotten password: /password/forgot, the mail, the link, a new password.
    forgot = person.open(base + "/password/forgot")
    asked = person.submit(forgot, "/password/forgot", email="alice@example.com")
    assert asked.status_code == 200 and "is on its way" in asked.text
    reset = link_of(mail_to(sink, "alice@example.com", RESET_SUBJECT), "/password/reset")
    form = person.open(reset)
    assert form.status_code == 200 and "alice" in form.text
    token = urlsplit(reset).query.removeprefix("token=")
    saved = person.submit(
        form, "/password/reset", token=token, newpassword=NEW_PASSWORD, confirm=NEW_PASSWORD
    )
    assert saved.status_code == 200 and "Your password was changed" in saved.text

    old = api(base, "/Account/login", username="alice", password=STRONG)
    assert old.status_code == 401
    new = api(base, "/Account/login", username="alice", password=NEW_PASSWORD)
    assert new.status_code == 200 and new.json()["LoggedIn"] is True
    assert status(base, signed_in)["User"] is None  # the session from before: ended
    assert status(base, new.cookies)["User"]["Username"] == "alice"
    notice = mail_to(sink, "alice@example.com", CHANGED_SUBJECT)
    body = notice.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage) and '"alice" was changed' in body.get_content()

    # The link is used up: its page and its post both refuse it.
    again = person.open(reset)
    assert again.status_code == 400 and BAD_LINK in again.text
    replay = person.submit(
        form,
        "/password/reset",
        token=token,
        newpassword="yet another passphrase here",
        confirm="yet another passphrase here",
    )
    assert replay.status_code == 400 and BAD_LINK in replay.text
    assert api(base, "/Account/login", username="alice", password=NEW_PASSWORD).ok
    assert_exactly_once(sink, url)


# -- 2. the SMTP server killed and started again -------------------------------------------
def test_every_message_arrives_exactly_once_across_an_smtp_server_crash(
    sqlite: str, live_server: Any, smtp_sink: SinkFactory
) -> None:
    """Nine accounts, each with its confirmation mail; then six reset links, of which
    the server refuses the first three (451) so that they wait (5 s) while the others
    arrive; then the server is SIGKILLed, three more resets are asked for while it is
    gone, and it is started again on its port.  Each of the 18 arrives once.  (It is
    killed when no message is being handed over: a message accepted by a server that
    dies before it says so is sent again, as SMTP must, and with the same Message-ID.)"""
    sink = smtp_sink()
    server = live_server(sqlite, env=smtp_env(sink, PASSPORT_THROTTLE_MAIL_IP_LIMIT="100"))
    base = server.url
    users = [f"user{n}" for n in range(9)]
    for name in users:
        register(base, name, f"{name}@example.com")
    wait_until("9 confirmation mails sent", lambda: len(outbox(sqlite)) == 9 and all_sent(sqlite))
    sink.fail_first = 3
    sink.restart()  # idle: every message is marked sent

    for name in users[:6]:
        assert api(base, "/Account/requestPasswordReset", email=f"{name}@example.com").ok

    def settled() -> bool:  # 15 queued: 3 refused and waiting, 12 arrived
        rows = outbox(sqlite)
        waiting = [r for r in rows if r["sent_at"] is None]
        return (
            len(rows) == 15
            and len(waiting) == 3
            and all(r["attempts"] == 1 and r["last_error"] == "SMTPDataError 451" for r in waiting)
            and len(sink.messages()) == 12
        )

    wait_until("3 resets refused and waiting, 3 delivered", settled)
    sink.kill()
    for name in users[6:]:
        assert api(base, "/Account/requestPasswordReset", email=f"{name}@example.com").ok

    def tried_in_vain() -> bool:  # the new ones too, against the dead port
        rows = [r for r in outbox(sqlite) if r["sent_at"] is None]
        return len(rows) == 6 and all(r["attempts"] >= 1 for r in rows)

    wait_until("the new resets tried while the server is down", tried_in_vain)
    sink.fail_first = 0
    sink.restart()

    wait_until("every message sent", lambda: all_sent(sqlite), timeout=90)
    messages = assert_exactly_once(sink, sqlite)
    assert len(messages) == 18
    for name in users:
        address = f"{name}@example.com"
        resets = [m for m in messages if m["To"] == address and m["Subject"] == RESET_SUBJECT]
        assert len(resets) == 1, name
    errors = {r["last_error"] for r in outbox(sqlite)}
    assert errors == {""}
    retried = [r for r in outbox(sqlite) if r["attempts"] > 1]
    assert len(retried) == 6  # the three refused and the three asked for during the outage
    time.sleep(1.5)  # a round of the sender more: nothing is sent again
    assert len(sink.messages()) == 18


# -- 3. passport serve killed between queueing and sending ---------------------------------
def test_a_message_queued_by_a_crashed_server_is_sent_by_the_next(
    sqlite: str, live_server: Any, smtp_sink: SinkFactory
) -> None:
    port = free_port()  # nothing listens there yet
    first = live_server(sqlite, env={"PASSPORT_SMTP_URL": f"smtp://127.0.0.1:{port}"})
    register(first.url, "alice", "alice@example.com")
    assert api(first.url, "/Account/requestPasswordReset", email="alice@example.com").ok

    def tried() -> bool:  # tried, failed, and waiting (not in the middle of an attempt)
        rows = outbox(sqlite)
        return len(rows) == 2 and all(r["attempts"] >= 1 and r["last_error"] for r in rows)

    wait_until("both messages tried once", tried)
    crash(first)
    assert [r["sent_at"] for r in outbox(sqlite)] == [None, None]

    sink = smtp_sink(port=port)
    second = live_server(sqlite, env={"PASSPORT_SMTP_URL": sink.url})
    reset = mail_to(sink, "alice@example.com", RESET_SUBJECT)
    mail_to(sink, "alice@example.com", VERIFY_SUBJECT)
    wait_until("both marked sent", lambda: all_sent(sqlite))
    assert_exactly_once(sink, sqlite)
    # The link made by the first process works on the second (it lives in the database).
    link = link_of(reset, "/password/reset")
    assert link.startswith(first.url)
    page = Visitor(second.url).open(on(second.url, link))
    assert page.status_code == 200 and "Choose a new password" in page.text


# -- 4. transport security -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_mail_goes_over_verified_tls_with_auth(
    mode: str, sqlite: str, live_server: Any, smtp_sink: SinkFactory
) -> None:
    sink = smtp_sink(starttls=mode == "starttls", implicit_tls=mode == "smtps", auth=MAILER)
    assert sink.url.startswith("smtps://" if mode == "smtps" else "smtp://")
    server = live_server(sqlite, env=smtp_env(sink))
    register(server.url, "alice", "alice@example.com")
    mail_to(sink, "alice@example.com", VERIFY_SUBJECT)
    (delivery,) = sink.deliveries()
    assert delivery.tls is True and delivery.login == MAILER[0]
    assert delivery.rcpt_tos == ["alice@example.com"]
    assert MAILER[1] not in server.output()


def test_a_server_certificate_from_another_ca_is_refused_and_reported(
    sqlite: str, live_server: Any, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    sink = smtp_sink(starttls=True, auth=MAILER)
    (tmp_path / "other-ca").mkdir()
    stranger, _ = make_self_signed(tmp_path / "other-ca")  # a CA that did not sign it
    env = smtp_env(sink, PASSPORT_SMTP_CA_FILE=str(stranger))
    server = live_server(sqlite, env=env)
    register(server.url, "alice", "alice@example.com")
    wait_until("the message tried", lambda: outbox(sqlite)[0]["attempts"] >= 1)
    (row,) = outbox(sqlite)
    assert row["sent_at"] is None and row["last_error"] == "SSLCertVerificationError"

    shown = passport("mail", "status", "--json", "--database-url", sqlite, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert (state["Waiting"], state["Failing"], state["GivenUp"], state["Sent"]) == (1, 1, 0, 0)
    assert state["OldestWaiting"]

    log = server.output()
    assert "not sent, attempt 1: SSLCertVerificationError" in log
    assert MAILER[1] not in log and "Traceback" not in log
    assert sink.messages() == []  # nothing crossed the untrusted connection


def test_passport_mail_test_sends_or_says_in_one_line_why_not(
    smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    sink = smtp_sink(starttls=True, auth=MAILER)
    database = ("--database-url", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    sent = passport("mail", "test", "ops@example.com", *database, cwd=tmp_path, env=smtp_env(sink))
    assert sent.returncode == 0, sent.stderr
    assert "test message sent to ops@example.com" in sent.stdout + sent.stderr
    (delivery,) = sink.deliveries()
    assert delivery.rcpt_tos == ["ops@example.com"]
    assert delivery.tls is True and delivery.login == MAILER[0]

    dead = f"smtp://{MAILER[0]}:{MAILER[1]}@127.0.0.1:{free_port()}?starttls=true"
    failed = passport(
        "mail", "test", "ops@example.com", *database, cwd=tmp_path, env={"PASSPORT_SMTP_URL": dead}
    )
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1, failed.stderr
    assert "the test message was not sent: ConnectionRefusedError" in lines[0]
    assert "Traceback" not in failed.stderr and MAILER[1] not in failed.stderr + failed.stdout
    assert len(sink.messages()) == 1


# -- 5. a temporary refusal ----------------------------------------------------------------
def test_a_temporary_refusal_is_retried_and_delivered_once(
    sqlite: str, live_server: Any, smtp_sink: SinkFactory
) -> None:
    sink = smtp_sink(fail_first=2)
    server = live_server(sqlite, env=smtp_env(sink))
    register(server.url, "alice", "alice@example.com")  # a confirmation link...
    assert api(server.url, "/Account/requestPasswordReset", email="alice@example.com").ok

    def refused() -> bool:  # ... and a reset link, each refused once and waiting
        rows = outbox(sqlite)
        return len(rows) == 2 and all(r["last_error"] == "SMTPDataError 451" for r in rows)

    wait_until("both refused once", refused)
    assert sink.messages() == []
    wait_until("both sent", lambda: all_sent(sqlite))
    assert [(r["attempts"], r["last_error"]) for r in outbox(sqlite)] == [(2, ""), (2, "")]
    assert_exactly_once(sink, sqlite)
    assert sink.output().count("refused message") == 2
    assert "not sent, attempt 1: SMTPDataError 451" in server.output()


# -- 6. invitations ------------------------------------------------------------------------
def test_an_invitation_from_the_command_line_accepted_on_its_page(
    sqlite: str, live_server: Any, smtp_sink: SinkFactory, tmp_path: Path
) -> None:
    sink = smtp_sink()
    server = live_server(sqlite, env=smtp_env(sink))
    base = server.url
    cli = {"PASSPORT_SMTP_URL": sink.url, "PASSPORT_PUBLIC_URL": base}
    made = passport("group", "add", "Staff", "--database-url", sqlite, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    invited = passport(
        *("user", "invite", "bob@example.com", "--group", "Staff", "--json"),
        *("--database-url", sqlite),
        cwd=tmp_path,
        env=cli,
    )
    assert invited.returncode == 0, invited.stderr
    assert json.loads(invited.stdout)["Groups"] == ["Staff"]

    invitation = mail_to(sink, "bob@example.com", "You are invited to Passport")
    link = link_of(invitation, "/invite")
    assert link.startswith(f"{base}/invite?token=")
    person = Visitor(base)
    page = person.open(link)
    assert page.status_code == 200
    assert "bob@example.com" in page.text and "to join Staff" in page.text
    token = urlsplit(link).query.removeprefix("token=")
    made_account = person.submit(
        page, "/invite", token=token, username="bob", password=STRONG, confirm=STRONG
    )
    assert made_account.status_code == 200 and "Your account is ready" in made_account.text

    signed_in = api(base, "/Account/login", username="bob", password=STRONG)
    assert signed_in.status_code == 200, signed_in.text
    user = status(base, signed_in.cookies)["User"]
    assert (user["Username"], user["Email"], user["EmailVerified"]) == (
        "bob",
        "bob@example.com",
        True,
    )
    shown = passport("user", "show", "bob", "--json", "--database-url", sqlite, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["Groups"] == ["Staff"]
    # Used once: the link now refuses.
    again = person.open(link)
    assert again.status_code == 400 and BAD_LINK in again.text
    assert_exactly_once(sink, sqlite)
