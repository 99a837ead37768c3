"""The SMTP sink the mail tests rely on, driven by the standard library's SMTP client.

Before a test of Passport's mail trusts what the sink says it received, these check that
the sink itself behaves as a mail server: it delivers what it accepts with its envelope,
speaks STARTTLS and SMTPS with a certificate a verifying client accepts, refuses wrong
credentials with 535, fails temporarily when told to, and survives a SIGKILL and a
restart on the same port with its messages intact.
"""

from __future__ import annotations

import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtp_support import SinkFactory
from smtp_support import SmtpSink
from smtp_support import free_port
from smtp_support import links
from smtp_support import make_self_signed
from smtp_support import smtp_sink as smtp_sink

pytestmark = pytest.mark.live

SENDER = "passport@example.org"
USER = "mailer"
PASSWORD = "s3cret: with @ and /"


def mail(subject: str, to: str = "ada@example.org", body: str = "Hello.\n") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Passport <{SENDER}>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def send(sink: SmtpSink, message: EmailMessage, *, bcc: tuple[str, ...] = ()) -> None:
    """Send as the product will: over a verifying TLS client when the sink speaks TLS,
    logged in when it wants AUTH."""
    context = ssl.create_default_context(cafile=sink.cert) if sink.cert else None
    recipients = [str(message["To"]), *bcc]
    client: smtplib.SMTP
    if sink.implicit_tls:
        client = smtplib.SMTP_SSL("127.0.0.1", sink.port, timeout=10, context=context)
    else:
        client = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
    with client:
        if sink.starttls:
            client.starttls(context=context)
        if sink.auth is not None:
            client.login(*sink.auth)
        client.send_message(message, from_addr=SENDER, to_addrs=recipients)


def test_a_plain_message_arrives_with_its_body_and_envelope(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    assert sink.url == f"smtp://127.0.0.1:{sink.port}"
    send(
        sink,
        mail("Verify your address", body="Open https://passport.test/verify?code=abc.\n"),
        bcc=("audit@example.org",),
    )

    (delivery,) = sink.deliveries()
    assert delivery.mail_from == SENDER
    assert delivery.rcpt_tos == ["ada@example.org", "audit@example.org"]
    assert (delivery.tls, delivery.login) == (False, None)
    message = delivery.message
    assert message["Subject"] == "Verify your address"
    assert "Bcc" not in message  # send_message leaves it out; the envelope carries it
    assert message.get_content() == "Open https://passport.test/verify?code=abc.\n"
    assert links(message) == ["https://passport.test/verify?code=abc"]
    assert delivery.path.read_bytes().startswith(b"From: Passport <passport@example.org>\r\n")
    assert [m["Subject"] for m in sink.wait_for(1)] == ["Verify your address"]


def test_starttls_with_auth_and_wrong_credentials_get_535(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink(starttls=True, auth=(USER, PASSWORD))
    assert sink.url == (
        f"smtp://mailer:s3cret%3A%20with%20%40%20and%20%2F@127.0.0.1:{sink.port}?starttls=true"
    )
    assert sink.cert is not None
    context = ssl.create_default_context(cafile=sink.cert)

    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")  # never offered in clear text
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(SENDER, ["ada@example.org"], b"Subject: clear\r\n\r\nno\r\n")
        assert refused.value.smtp_code == 530
        client.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login(USER, "not the password")
        assert wrong.value.smtp_code == 535

    send(sink, mail("Over STARTTLS"))
    (delivery,) = sink.deliveries()
    assert (delivery.message["Subject"], delivery.tls, delivery.login) == (
        "Over STARTTLS",
        True,
        USER,
    )


def test_the_certificate_is_verified_not_just_used(smtp_sink: SinkFactory, tmp_path: Path) -> None:
    """A client that trusts another certificate fails the handshake: the sink's TLS is
    verified for real in these tests, never with verification turned off."""
    sink = smtp_sink(starttls=True)
    other, _ = make_self_signed(tmp_path)
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=ssl.create_default_context(cafile=other))


def test_implicit_tls_with_auth(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink(implicit_tls=True, auth=(USER, PASSWORD))
    assert sink.url == f"smtps://mailer:s3cret%3A%20with%20%40%20and%20%2F@127.0.0.1:{sink.port}"

    send(sink, mail("Over SMTPS"))

    (delivery,) = sink.deliveries()
    assert (delivery.message["Subject"], delivery.tls, delivery.login) == ("Over SMTPS", True, USER)


def test_fail_first_refuses_two_messages_then_accepts(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink(fail_first=2)
    for attempt in (1, 2):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(sink, mail(f"Attempt {attempt}"))
        assert refused.value.smtp_code == 451
    assert sink.messages() == []

    send(sink, mail("Attempt 3"))

    assert [m["Subject"] for m in sink.messages()] == ["Attempt 3"]


def test_kill_then_restart_on_the_same_port(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    port = sink.port
    send(sink, mail("Before"))

    sink.kill()
    assert not sink.running
    with pytest.raises(ConnectionRefusedError):
        send(sink, mail("While down"))

    sink.restart()
    assert sink.port == port
    send(sink, mail("After"))

    assert [m["Subject"] for m in sink.wait_for(2)] == ["Before", "After"]
    assert [d.path.name for d in sink.deliveries()] == ["000001.eml", "000002.eml"]


def test_twenty_concurrent_messages_all_arrive(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    subjects = {f"Message {n}" for n in range(20)}
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda subject: send(sink, mail(subject)), sorted(subjects)))

    assert {m["Subject"] for m in sink.wait_for(20)} == subjects
    assert len(sink.messages()) == 20


def test_waiting_in_vain_names_what_arrived(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    send(sink, mail("Only this one"))

    with pytest.raises(AssertionError, match=r"1 arrived: <To: ada@example.org .*Only this one"):
        sink.wait_for(2, timeout=0.1)
    with pytest.raises(AssertionError, match="no matching message"):
        sink.wait_for_message(lambda m: m["Subject"] == "Another", timeout=0.1)
    found = sink.wait_for_message(lambda m: "Only" in str(m["Subject"]), timeout=1)
    assert found["To"] == "ada@example.org"


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    """A port already taken: start() fails with the server's own log, not a bare timeout."""
    taken = free_port()
    with SmtpSink(tmp_path / "first", port=taken), pytest.raises(RuntimeError) as failed:
        SmtpSink(tmp_path / "second", port=taken).start()
    assert "address already in use" in str(failed.value).lower()
