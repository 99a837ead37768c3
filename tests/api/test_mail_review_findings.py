"""Regression tests for the outside security review of the email lifecycle: each test
names the finding it holds shut, and fails on the code before its fix."""

from __future__ import annotations

import json
from datetime import UTC
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy.event
from sqlalchemy import select

from oidc_support import KEK
from passport.config import ConfigError
from passport.config import describe
from passport.config import load_settings
from passport.services import directory
from passport.services.mail import MAX_ATTEMPTS
from passport.services.mail import deliver_due_mail
from passport.storage.models import Application
from passport.storage.models import MailMessage
from passport.storage.models import User

from support import STRONG
from support import Harness
from support import PassportClient

NEW = "a completely different passphrase"
MAIL = {
    "smtp_url": "smtp://127.0.0.1:1",
    "public_url": "http://localhost",
    "key_encryption_key": KEK,
}
# Addresses the review registered and had delivered elsewhere than they read (finding 2),
# or that stopped the sender (finding 1).
HOSTILE_ADDRESSES = [
    "p0:;x@evil.example",
    "ceo,attacker@evil.example",
    "<ceo>x@evil.example",
    "a(b@evil.example",
    "alice@corp.example(.x",
    "alice@corp.example,mallory",
    "attacker@evil.example;.corp.example",
    '"quoted"@evil.example',
    "x@[127.0.0.1]",
]


@pytest.fixture
def h(factory: Any) -> Harness:
    harness: Harness = factory("sqlite", **MAIL)
    return harness


def data(response: Any) -> Any:
    return json.loads(response.get_data(as_text=True))


def sent(h: Harness) -> list[Any]:
    out: list[Any] = []
    deliver_due_mail(h.app.services.db, h.settings, h.clock(), send=out.append)
    return out


def token_of(message: Any) -> str:
    text = message.get_body(("plain",)).get_content()
    return str(text.split("token=")[1].split()[0])


def post(client: PassportClient, path: str, **fields: str) -> Any:
    return client.post(path, data=fields)


# -- finding 1 and 2: addresses that are not one mailbox ---


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_an_address_that_is_not_one_plain_mailbox_is_refused_everywhere(
    h: Harness, address: str
) -> None:
    refused = h.register("mallory", email=address)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert data(refused)["ClientExceptions"][0]["Source"] == "email"
    assert h.register("mallory").status_code == 200
    h.login("mallory")
    change = post(h.client, "/Account/changeEmail", password=STRONG, email=address)
    assert change.status_code == 400
    reset = post(h.new_client(), "/Account/requestPasswordReset", email=address)
    assert reset.status_code == 400
    with h.app.services.db.session() as db:
        assert db.scalars(select(MailMessage)).all() == []


def test_a_stored_unsendable_address_is_given_up_and_stops_nothing(h: Harness) -> None:
    """Rows stored before addresses were checked (or written by anything else) must not
    stop the sender: each is given up once, the next messages go."""
    outbox = h.app.services.outbox
    from passport.services.mail import Letter

    with h.app.services.db.session(write=True) as db, db.begin():
        for address in (*HOSTILE_ADDRESSES, "bob@example.com"):
            outbox.queue(db, Letter("test", address), h.clock())
    delivered = sent(h)
    assert [str(m["To"]) for m in delivered] == ["bob@example.com"]
    with h.app.services.db.session() as db:
        rows = db.scalars(select(MailMessage).order_by(MailMessage.id)).all()
        given_up = [r for r in rows if r.sent_at is None]
        assert len(given_up) == len(HOSTILE_ADDRESSES)
        assert all(r.attempts == MAX_ATTEMPTS and r.body == "" for r in given_up)
        assert {r.last_error for r in given_up} == {"unsendable address"}


# -- finding 3: mail bombing through address changes, words chosen by the attacker ---


def test_changing_the_address_is_throttled_like_any_request_for_mail(h: Harness) -> None:
    assert h.register("mallory", email="mallory@evil.example").status_code == 200
    h.login("mallory")
    answers = []
    for n in range(4):
        target = "victim@target.example" if n % 2 == 0 else f"mallory{n}@evil.example"
        answers.append(post(h.client, "/Account/changeEmail", password=STRONG, email=target))
    victim = [a.status_code for a in answers[0::2]]
    assert victim == [200, 200]
    more = [
        post(h.client, "/Account/changeEmail", password=STRONG, email="victim@target.example")
        for _ in range(3)
    ]
    assert [a.status_code for a in more][-1] == 429


def test_no_display_name_reaches_a_message(h: Harness) -> None:
    lure = "IT Security: re-login at https://evil.example/sso"
    assert h.register("mallory", email="ceo@target.example", displayName=lure).status_code == 200
    post(h.new_client(), "/Account/requestPasswordReset", email="ceo@target.example")
    for message in sent(h):
        assert "evil.example" not in message.as_string()


# -- finding 4: the work does not depend on the address ---


def _statements(h: Harness, address: str) -> list[str]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:3]).upper())

    engine = h.app.services.db.engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    try:
        answer = post(h.new_client(), "/Account/requestPasswordReset", email=address)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", record)
    assert answer.status_code == 200
    return [s for s in seen if "THROTTLE" not in s]  # the counters: the same for any address


def test_a_reset_request_runs_the_same_statements_for_any_address(h: Harness) -> None:
    assert h.register("alice", email="alice@example.com").status_code == 200
    known = _statements(h, "alice@example.com")
    unknown = _statements(h, "nobody@example.com")
    assert [s.split(" (")[0] for s in known if "ROLLBACK TO" not in s and "RELEASE" not in s] == [
        s.split(" (")[0] for s in unknown if "ROLLBACK TO" not in s and "RELEASE" not in s
    ]
    assert any(s.startswith("INSERT INTO MAIL_OUTBOX") for s in unknown)


# -- finding 5: registration as an address oracle ---


def test_each_registered_address_answer_counts_against_the_address(factory: Any) -> None:
    h = factory("sqlite", throttle_registration_limit=3, **MAIL)
    assert h.register("alice", email="alice@example.com").status_code == 200
    answers = [h.register(f"probe{n}", email="alice@example.com").status_code for n in range(4)]
    assert answers[:2] == [409, 409] and answers[-1] == 429


# -- finding 6 and 9: invitations and the escalation rule over time ---


def _grant_admin_to(h: Harness, group_name: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, group=directory.get_group(db, group_name))


def _invite_into_ops(h: Harness) -> tuple[PassportClient, str]:
    delegate = h.administrator("dele", "users:write", "users:read", "groups:write")
    assert post(delegate, "/Groups/create", name="Ops").status_code == 200
    sent(h)
    assert post(delegate, "/Users/invite", email="eve@example.com", groups="Ops").status_code == 200
    return delegate, token_of(sent(h)[0])


def test_an_invitation_dies_when_its_groups_gain_rights_the_inviter_lacks(h: Harness) -> None:
    _, token = _invite_into_ops(h)
    _grant_admin_to(h, "Ops")
    page = h.new_client().get(f"/invite?token={token}")
    assert page.status_code == 400 and "no longer valid" in page.get_data(as_text=True)
    accepted = post(
        h.new_client(), "/Account/acceptInvitation", token=token, username="eve", password=NEW
    )
    assert accepted.status_code == 400
    with h.app.services.db.session() as db:
        assert directory.find_user(db, "eve") is None


@pytest.mark.parametrize("change", ["disable", "delete", "strip"])
def test_an_invitation_dies_with_its_inviters_power(h: Harness, change: str) -> None:
    _, token = _invite_into_ops(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        inviter = db.scalars(select(User).where(User.username == "dele")).one()
        if change == "disable":
            inviter.disabled = True
        elif change == "delete":
            db.delete(inviter)
        else:
            passport = db.get(Application, 1)
            assert passport is not None
            right = directory.find_permission(db, passport, "groups:write")
            assert right is not None
            directory.revoke(db, right, user=inviter)
    accepted = post(
        h.new_client(), "/Account/acceptInvitation", token=token, username="eve", password=NEW
    )
    assert accepted.status_code == 400, accepted.get_data(as_text=True)


def test_the_operators_invitation_holds(h: Harness) -> None:
    from click.testing import CliRunner

    from passport.cli import cli

    env = {
        "PASSPORT_SMTP_URL": MAIL["smtp_url"],
        "PASSPORT_PUBLIC_URL": MAIL["public_url"],
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
    }
    result = CliRunner().invoke(
        cli,
        ["user", "invite", "eve@example.com", "--database-url", h.settings.database_url],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out: list[Any] = []  # the command wrote at the real time, after the harness's clock
    deliver_due_mail(h.app.services.db, h.settings, datetime.now(UTC), send=out.append)
    token = token_of(out[0])
    accepted = post(
        h.new_client(), "/Account/acceptInvitation", token=token, username="eve", password=NEW
    )
    assert accepted.status_code == 200, accepted.get_data(as_text=True)


def test_a_delegate_does_not_revoke_an_invitation_into_a_group_above_them(h: Harness) -> None:
    root = h.administrator("root", "admin")
    assert post(root, "/Groups/create", name="Admins").status_code == 200
    _grant_admin_to(h, "Admins")
    assert (
        post(root, "/Users/invite", email="newadmin@example.com", groups="Admins").status_code
        == 200
    )
    delegate = h.administrator("dele", "users:write", "users:read", "groups:write")
    listed = data(delegate.get("/Users/invitations"))["Data"]["Invitations"]
    refused = post(delegate, "/Users/revokeInvitation", invitation=str(listed[0]["ID"]))
    assert refused.status_code == 403
    assert data(root.get("/Users/invitations"))["Data"]["Invitations"][0]["State"] == "pending"


# -- finding 7: require_verified_email and accounts without an address ---


def test_an_account_without_an_address_is_not_locked_out_by_require_verified_email(
    factory: Any,
) -> None:
    from click.testing import CliRunner

    from passport.cli import cli

    h = factory("sqlite", require_verified_email=True, **MAIL)
    env = {
        "PASSPORT_SMTP_URL": MAIL["smtp_url"],
        "PASSPORT_PUBLIC_URL": MAIL["public_url"],
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
        "PASSPORT_REQUIRE_VERIFIED_EMAIL": "true",
    }
    made = CliRunner().invoke(
        cli,
        ["admin", "create", "root", "--database-url", h.settings.database_url],
        input=f"{STRONG}\n{STRONG}\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert h.login("root").status_code == 200  # no address: nothing to confirm
    assert h.register("alice", email="alice@example.com").status_code == 200
    assert h.login("alice").status_code == 403


# -- finding 8: a reset link dies with every other password event ---


@pytest.mark.parametrize("event", ["change", "admin-reset", "disable", "logout-all"])
def test_a_reset_link_dies_when_access_ends_otherwise(h: Harness, event: str) -> None:
    assert h.register("judy", email="judy@example.com").status_code == 200
    sent(h)
    if event == "change":
        h.login("judy")  # before the link is asked for: a sign-in kills it by itself
    post(h.new_client(), "/Account/requestPasswordReset", email="judy@example.com")
    token = token_of(sent(h)[0])
    if event == "change":
        changed = post(h.client, "/Account/changePassword", oldPassword=STRONG, newPassword=NEW)
        assert changed.status_code == 200
    else:
        root = h.administrator("root", "admin")
        if event == "admin-reset":
            answer = post(root, "/Users/resetPassword", username="judy", password=NEW)
        elif event == "disable":
            assert (
                post(root, "/Users/setDisabled", username="judy", disabled="true").status_code
                == 200
            )
            answer = post(root, "/Users/setDisabled", username="judy", disabled="false")
        else:
            answer = post(root, "/Users/logoutAll", username="judy")
        assert answer.status_code == 200, answer.get_data(as_text=True)
    late = post(
        h.new_client(), "/Account/resetPassword", token=token, newPassword="yet another passphrase"
    )
    assert late.status_code == 400


# -- finding 10: an invited address is not taken by self-registration ---


def test_an_invited_address_cannot_be_registered_by_someone_else(h: Harness) -> None:
    root = h.administrator("root", "admin")
    assert post(root, "/Users/invite", email="x3@outside.example").status_code == 200
    squat = h.register("squatter", email="X3@outside.example")
    assert squat.status_code == 409
    token = token_of(sent(h)[0])
    accepted = post(
        h.new_client(), "/Account/acceptInvitation", token=token, username="xthree", password=NEW
    )
    assert accepted.status_code == 200, accepted.get_data(as_text=True)


# -- finding 11 and 12: settings ---


def test_mail_needs_the_public_url_outside_sqlite() -> None:
    with pytest.raises(ConfigError, match="needs public_url"):
        load_settings(
            environ={
                "PASSPORT_SMTP_URL": "smtp://mail.example.com",
                "PASSPORT_DATABASE_URL": "postgresql+psycopg://p@127.0.0.1/p",
                "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
            }
        )


def test_a_relay_user_name_is_masked_like_a_password() -> None:
    settings = load_settings(environ={"PASSPORT_SMTP_URL": "smtps://TOKEN123@mail.example.com"})
    shown = dict((name, value) for name, value, _ in describe(settings))
    assert shown["smtp_url"] == "smtps://***@mail.example.com"


# == the second review ==========================================================


def _confirm(h: Harness, name: str, address: str) -> PassportClient:
    assert h.register(name, email=address).status_code == 200, address
    client = h.new_client()
    assert post(client, "/Account/verifyEmail", token=token_of(sent(h)[-1])).status_code == 200
    assert post(client, "/Account/login", username=name, password=STRONG).status_code == 200
    return client


@pytest.mark.parametrize(
    ("confirmed", "other"),
    [
        ("boss@glaßhaus.example", "boss@glasshaus.example"),  # one key under casefold
        ("Boss@example.com", "boss@example.com"),  # the same key: still another text
    ],
)
def test_any_other_address_text_is_unconfirmed_until_its_own_link(
    h: Harness, confirmed: str, other: str
) -> None:
    client = _confirm(h, "boss", confirmed)
    changed = post(client, "/Account/changeEmail", password=STRONG, email=other)
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert data(changed)["Data"]["User"]["EmailVerified"] is False
    messages = sent(h)
    assert sorted(m["Subject"] for m in messages) == [
        "Confirm your email address",
        "Your email address was changed",
    ]
    assert (
        data(client.get("/Account/status"))["Data"]["User"]["Email"]
        == data(changed)["Data"]["User"]["Email"]
    )


def test_a_link_sent_to_one_spelling_does_not_confirm_another(h: Harness) -> None:
    assert h.register("boss", email="boss@glaßhaus.example").status_code == 200
    first = token_of(sent(h)[0])
    with h.app.services.db.session(write=True) as db, db.begin():
        user = db.scalars(select(User).where(User.username == "boss")).one()
        user.email = "boss@glasshaus.example"  # as an import or an old row might have it
    assert post(h.new_client(), "/Account/verifyEmail", token=first).status_code == 400


def test_an_invited_address_is_not_taken_by_changing_to_it(h: Harness) -> None:
    root = h.administrator("root", "admin")
    assert post(root, "/Users/invite", email="newbie@corp.example").status_code == 200
    assert h.register("squatter", email="sq@evil.example").status_code == 200
    h.login("squatter")
    taken = post(h.client, "/Account/changeEmail", password=STRONG, email="Newbie@corp.example")
    assert taken.status_code == 409
    by_admin = post(root, "/Users/update", username="squatter", email="newbie@corp.example")
    assert by_admin.status_code == 409


def test_with_require_verified_email_self_registration_needs_an_address(factory: Any) -> None:
    h = factory("sqlite", require_verified_email=True, **MAIL)
    refused = h.register("noaddress")
    assert refused.status_code == 400
    assert data(refused)["ClientExceptions"][0]["Source"] == "email"
    assert h.login("noaddress").status_code == 401


def test_no_sequence_of_operations_sends_one_address_more_than_its_share(h: Harness) -> None:
    victim = "victim@target.example"
    for n in range(8):
        name = f"bomber{n}"
        assert h.register(name, email=victim).status_code in (200, 409)
        client = h.new_client()
        if post(client, "/Account/login", username=name, password=STRONG).status_code == 200:
            post(client, "/Account/changeEmail", password=STRONG, email=f"junk{n}@evil.example")
    to_victim = [m for m in sent(h) if str(m["To"]) == victim]
    assert 0 < len(to_victim) <= h.settings.mail_address_limit


def test_resending_an_invitation_stops_at_the_addresss_share(h: Harness) -> None:
    root = h.administrator("root", "admin")
    invited = data(post(root, "/Users/invite", email="bob@example.com"))["Data"]["Invitation"]
    answers = [
        post(root, "/Users/resendInvitation", invitation=str(invited["ID"])).status_code
        for _ in range(h.settings.mail_address_limit + 1)
    ]
    assert answers[-1] == 429 and answers.count(200) == h.settings.mail_address_limit - 1


def test_a_message_id_tells_nothing_of_the_outbox(h: Harness) -> None:
    assert h.register("alice", email="alice@example.com").status_code == 200
    post(h.new_client(), "/Account/requestPasswordReset", email="nobody@example.com")
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    ids = [str(m["Message-ID"]) for m in sent(h)]
    with h.app.services.db.session() as db:
        rows = list(db.scalars(select(MailMessage.id).order_by(MailMessage.id)))
    assert len(ids) == len(rows) == 2
    for message_id, row_id in zip(ids, rows, strict=True):
        assert f".{row_id}." not in message_id and f"<passport.{row_id}." not in message_id


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("victim@corp.example", "victim@corp\u3002example"),  # an ideographic full stop
        ("v@b\u00fccher.example", "v@xn--bcher-kva.example"),  # U-label and A-label
        ("v@EXAMPLE.com", "v@example.com"),
    ],
)
def test_spellings_of_one_mailbox_are_one_address(h: Harness, first: str, second: str) -> None:
    assert h.register("one", email=first).status_code == 200
    assert h.register("two", email=second).status_code == 409


@pytest.mark.parametrize("address", ["x%attacker.example@corp.example", "attacker!x@corp.example"])
def test_source_routed_addresses_are_refused(h: Harness, address: str) -> None:
    assert h.register("mallory", email=address).status_code == 400


def test_the_inviters_display_name_is_not_in_the_invitation(h: Harness) -> None:
    delegate = h.administrator("dele", "users:write", "users:read")
    with h.app.services.db.session(write=True) as db, db.begin():
        user = db.scalars(select(User).where(User.username == "dele")).one()
        user.display_name = "IT Security: visit corp-unlock.example now"
    assert post(delegate, "/Users/invite", email="bob@example.com").status_code == 200
    invitation = sent(h)[0]
    assert "corp-unlock" not in invitation.as_string() and "dele" in invitation.as_string()


# == the third review ===========================================================================


def test_the_change_notice_goes_out_even_when_the_address_had_its_share(factory: Any) -> None:
    """F2: someone who knows the password fills the old address's share with reset
    requests, then changes the address: its owner still hears of it."""
    h = factory("sqlite", throttle_mail_limit=50, **MAIL)
    assert h.register("victim", email="victim@example.com").status_code == 200
    link = token_of(sent(h)[0])
    assert post(h.new_client(), "/Account/verifyEmail", token=link).status_code == 200
    for _ in range(h.settings.mail_address_limit):
        post(h.new_client(), "/Account/requestPasswordReset", email="victim@example.com")
    h.login("victim")
    sent(h)
    changed = post(h.client, "/Account/changeEmail", password=STRONG, email="attacker@evil.example")
    assert changed.status_code == 200
    notices = [m for m in sent(h) if str(m["To"]) == "victim@example.com"]
    assert [m["Subject"] for m in notices] == ["Your email address was changed"]


def test_an_ascii_local_part_is_kept_and_sent_in_ascii(h: Harness) -> None:
    """F3: a relay without SMTPUTF8 still takes it: the domain as its A-label."""
    answer = h.register("asc", email="asc@b\u00fccher.example")
    assert data(answer)["Data"]["User"]["Email"] == "asc@xn--bcher-kva.example"
    assert str(sent(h)[0]["To"]) == "asc@xn--bcher-kva.example"


def test_the_same_address_in_another_form_is_no_change(h: Harness) -> None:
    """F1: an address stored before addresses were normalised, given again by an
    administrator (a directory sync sends every field), stays confirmed."""
    assert h.register("bob", email="bob@example.com").status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        bob = db.scalars(select(User).where(User.username == "bob")).one()
        bob.email, bob.email_verified = "Bob@Example.COM", True
    sent(h)
    root = h.administrator("root", "admin")
    same = post(root, "/Users/update", username="bob", email="Bob@Example.COM")
    assert same.status_code == 200
    assert data(same)["Data"]["User"]["EmailVerified"] is True
    assert sent(h) == []


def test_an_import_does_not_take_an_invited_address(h: Harness, tmp_path: Any) -> None:
    """F4: the importer refuses an address with an open invitation, as registration does."""
    import csv

    import bcrypt

    from passport.services.importer import Importer

    root = h.administrator("root", "admin")
    assert post(root, "/Users/invite", email="inv@example.com").status_code == 200
    path = tmp_path / "users.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, ["username", "email", "display_name", "groups", "password_hash"]
        )
        writer.writeheader()
        good = bcrypt.hashpw(b"an imported passphrase", bcrypt.gensalt(4)).decode()
        writer.writerow({"username": "imp", "email": "INV@example.com", "password_hash": good})
        writer.writerow({"username": "other", "email": "other@example.com", "password_hash": good})
    report = Importer(h.app.services.db, h.clock()).run(path)
    assert report.imported == 1 and [line for line, _ in report.errors] == [2]


def test_a_malformed_smtp_url_is_one_clear_line() -> None:
    """F5: an unclosed IPv6 bracket is a setting error, never a crash."""
    with pytest.raises(ConfigError, match="not a URL") as raised:
        load_settings(environ={"PASSPORT_SMTP_URL": "smtp://mailer:S3cr3t@[::1"})
    assert "S3cr3t" not in str(raised.value)
