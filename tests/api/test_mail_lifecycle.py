"""The email lifecycle through the Passport API and the hosted pages, in process: what
each link does, once, for its purpose only, until it expires or a newer one replaces it
(services/lifecycle.py).  Mail is taken out of the outbox with the product's sender and a
capturing transport; tests/test_mail_live.py does the same against a real SMTP server."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import form_of
from oidc_support import rows
from passport.services.mail import deliver_due_mail
from passport.storage.models import Group
from passport.storage.models import GroupMember
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


@pytest.fixture(params=["sqlite", "postgresql"])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    harness: Harness = factory(request.param, **MAIL)
    return harness


def data(response: Any) -> Any:
    return json.loads(response.get_data(as_text=True))


def delivered(h: Harness) -> list[EmailMessage]:
    """Every message due now, sent by the product's sender to a list."""
    sent: list[EmailMessage] = []
    deliver_due_mail(h.app.services.db, h.settings, h.clock(), send=sent.append)
    return sent


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage) -> str:
    found = re.search(r"http://localhost(/\S+)", text_of(message))
    assert found, text_of(message)
    return found.group(1)


def token_in(message: EmailMessage) -> str:
    return parse_qs(urlsplit(link_in(message)).query)["token"][0]


def only(messages: list[EmailMessage], to: str, subject: str) -> EmailMessage:
    matching = [m for m in messages if m["To"] == to and m["Subject"] == subject]
    assert len(matching) == 1, [(m["To"], m["Subject"]) for m in messages]
    return matching[0]


def register(h: Harness, name: str = "alice", email: str = "alice@example.com") -> None:
    assert h.register(name, email=email).status_code == 200


def post(client: PassportClient, path: str, **fields: str) -> Any:
    return client.post(path, data=fields)


def status(client: PassportClient) -> Any:
    return data(client.get("/Account/status"))


# -- confirming an address ---------------------------------------------------------------------


def test_registering_with_an_address_sends_a_link_that_confirms_it_once(h: Harness) -> None:
    register(h)
    message = only(delivered(h), "alice@example.com", "Confirm your email address")
    assert message["From"] == "noreply@localhost"
    assert message["Auto-Submitted"] == "auto-generated"
    assert link_in(message).startswith("/email/verify?token=")
    assert delivered(h) == []  # sent once
    assert data(h.login())["Data"]["User"]["EmailVerified"] is False

    answer = post(h.client, "/Account/verifyEmail", token=token_in(message))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert data(answer)["Data"]["User"]["EmailVerified"] is True
    assert status(h.client)["Data"]["User"]["EmailVerified"] is True
    again = post(h.client, "/Account/verifyEmail", token=token_in(message))
    assert again.status_code == 400
    assert data(again)["ClientExceptions"][0]["Source"] == "token"


def test_a_confirmation_counts_only_for_the_address_it_was_sent_to(h: Harness) -> None:
    register(h)
    first = only(delivered(h), "alice@example.com", "Confirm your email address")
    h.login()
    changed = post(h.client, "/Account/changeEmail", password=STRONG, email="alice@new.example")
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert post(h.client, "/Account/verifyEmail", token=token_in(first)).status_code == 400
    sent = delivered(h)
    notice = only(sent, "alice@example.com", "Your email address was changed")
    assert "alice@new.example" in text_of(notice)
    second = only(sent, "alice@new.example", "Confirm your email address")
    assert post(h.client, "/Account/verifyEmail", token=token_in(second)).status_code == 200
    assert status(h.client)["Data"]["User"]["Email"] == "alice@new.example"
    assert status(h.client)["Data"]["User"]["EmailVerified"] is True


def test_changing_the_address_needs_the_password(h: Harness) -> None:
    register(h)
    h.login()
    delivered(h)
    wrong = post(
        h.client, "/Account/changeEmail", password="not it at all!!", email="x@evil.example"
    )
    assert wrong.status_code == 401
    assert status(h.client)["Data"]["User"]["Email"] == "alice@example.com"
    assert delivered(h) == []
    assert post(h.client, "/Account/changeEmail", email="x@evil.example").status_code == 400
    anonymous = h.new_client()
    assert (
        post(anonymous, "/Account/changeEmail", password=STRONG, email="x@e.example").status_code
        == 401
    )


def test_an_address_taken_by_another_account_is_refused(h: Harness) -> None:
    register(h)
    register(h, "bob", "bob@example.com")
    h.login()
    taken = post(h.client, "/Account/changeEmail", password=STRONG, email="BOB@example.com")
    assert taken.status_code == 409


def test_require_verified_email_refuses_sign_in_until_the_link_is_used(factory: Any) -> None:
    h = factory("sqlite", require_verified_email=True, **MAIL)
    register(h)
    refused = h.login()
    assert refused.status_code == 403
    assert data(refused)["ClientExceptions"][0]["Number"] == "9"
    assert status(h.client)["LoggedIn"] is False
    browser = h.new_client()
    form = form_of(browser.get("/login"))
    page = browser.post("/login", data={**form, "username": "alice", "password": STRONG})
    assert page.status_code == 403
    assert "Confirm your email address" in page.get_data(as_text=True)
    assert 'href="/email/verify"' in page.get_data(as_text=True)
    # A new link for the address (the same answer as for any address), then it works.
    assert (
        post(h.new_client(), "/Account/requestVerification", email="alice@example.com").status_code
        == 200
    )
    links = [token_in(m) for m in delivered(h)]
    assert len(links) == 2  # at registration, and the one asked for
    assert post(h.client, "/Account/verifyEmail", token=links[0]).status_code == 400  # replaced
    assert post(h.client, "/Account/verifyEmail", token=links[1]).status_code == 200
    assert h.login().status_code == 200


def test_userinfo_says_email_verified_once_confirmed(factory: Any) -> None:
    from oidc_support import body
    from oidc_support import exchange
    from oidc_support import get_code
    from oidc_support import seed

    h = factory("sqlite", **MAIL)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]

    def claims() -> dict[str, Any]:
        issued = body(exchange(h, get_code(h, scope="openid email")))
        answer = h.client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
        )
        return body(answer)

    assert claims()["email_verified"] is False
    assert (
        post(h.new_client(), "/Account/requestVerification", email="alice@example.com").status_code
        == 200
    )
    assert (
        post(h.client, "/Account/verifyEmail", token=token_in(delivered(h)[0])).status_code == 200
    )
    assert claims()["email_verified"] is True


# -- a forgotten password ----------------------------------------------------------------------


def test_a_reset_link_sets_a_new_password_and_ends_every_session(h: Harness) -> None:
    register(h)
    delivered(h)
    signed_in = h.new_client()
    assert post(signed_in, "/Account/login", username="alice", password=STRONG).status_code == 200

    asked = post(h.new_client(), "/Account/requestPasswordReset", email="ALICE@example.com")
    assert asked.status_code == 200 and data(asked)["Data"] == {"Requested": True}
    message = only(delivered(h), "alice@example.com", "Reset your password")
    assert "30 minutes" in text_of(message)
    assert link_in(message).startswith("/password/reset?token=")

    done = post(h.new_client(), "/Account/resetPassword", token=token_in(message), newPassword=NEW)
    assert done.status_code == 200, done.get_data(as_text=True)
    assert data(done)["Data"]["User"]["EmailVerified"] is True  # the link reached the address
    assert status(signed_in)["LoggedIn"] is False
    assert h.login("alice", STRONG).status_code == 401
    assert h.login("alice", NEW).status_code == 200
    notice = only(delivered(h), "alice@example.com", "Your password was changed")
    assert "every session" in text_of(notice)
    again = post(
        h.new_client(), "/Account/resetPassword", token=token_in(message), newPassword=STRONG
    )
    assert again.status_code == 400
    events = audit(h)
    assert ("password_reset_request", "sent") in events and ("password_reset", "success") in events


def test_unknown_disabled_and_known_addresses_get_the_same_answer(h: Harness) -> None:
    register(h)
    register(h, "carol", "carol@example.com")
    with h.app.services.db.session(write=True) as db, db.begin():
        carol = db.scalars(select(User).where(User.username == "carol")).one()
        carol.disabled = True
    delivered(h)
    answers = [
        post(h.new_client(), "/Account/requestPasswordReset", email=address)
        for address in ("alice@example.com", "nobody@example.com", "carol@example.com")
    ]
    assert {(a.status_code, a.get_data(as_text=True)) for a in answers} == {
        (answers[0].status_code, answers[0].get_data(as_text=True))
    }
    assert [m["To"] for m in delivered(h)] == ["alice@example.com"]


def test_a_newer_request_and_a_sign_in_each_kill_the_reset_link(h: Harness) -> None:
    register(h)
    delivered(h)
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    older, newer = (token_in(m) for m in delivered(h))
    assert post(h.client, "/Account/resetPassword", token=older, newPassword=NEW).status_code == 400
    assert h.login().status_code == 200  # a successful sign-in: the user remembered
    assert (
        post(h.new_client(), "/Account/resetPassword", token=newer, newPassword=NEW).status_code
        == 400
    )
    assert h.login("alice", STRONG).status_code == 200


def test_a_reset_link_expires_after_its_lifetime(h: Harness) -> None:
    register(h)
    delivered(h)
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    link = token_in(delivered(h)[0])
    h.clock.advance(minutes=30, seconds=1)
    assert (
        post(h.new_client(), "/Account/resetPassword", token=link, newPassword=NEW).status_code
        == 400
    )


def test_a_link_of_one_purpose_is_refused_for_another(h: Harness) -> None:
    register(h)
    confirm = token_in(delivered(h)[0])
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    reset = token_in(delivered(h)[0])
    assert (
        post(h.client, "/Account/resetPassword", token=confirm, newPassword=NEW).status_code == 400
    )
    assert post(h.client, "/Account/verifyEmail", token=reset).status_code == 400
    accept = {"username": "mallory", "password": NEW}
    assert post(h.client, "/Account/acceptInvitation", token=reset, **accept).status_code == 400
    # Both still work for their own purpose.
    assert post(h.client, "/Account/verifyEmail", token=confirm).status_code == 200
    assert post(h.client, "/Account/resetPassword", token=reset, newPassword=NEW).status_code == 200


def test_a_refused_new_password_keeps_the_link(h: Harness) -> None:
    register(h)
    delivered(h)
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    link = token_in(delivered(h)[0])
    weak = post(h.client, "/Account/resetPassword", token=link, newPassword="password")
    assert weak.status_code == 400
    assert data(weak)["ClientExceptions"][0]["Source"] == "newPassword"
    assert post(h.client, "/Account/resetPassword", token=link, newPassword=NEW).status_code == 200


def test_mail_requests_are_throttled_per_address_whoever_has_it(h: Harness) -> None:
    register(h)
    delivered(h)
    for address in ("alice@example.com", "nobody@example.com"):
        answers = [
            post(h.new_client(), "/Account/requestPasswordReset", email=address).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429], address
    assert len(delivered(h)) == 3


# -- the pages ---------------------------------------------------------------------------------


def test_the_forgotten_password_pages_end_to_end(h: Harness) -> None:
    register(h)
    delivered(h)
    browser = h.new_client()
    login = browser.get("/login")
    assert 'href="/password/forgot"' in login.get_data(as_text=True)
    form = browser.get("/password/forgot")
    assert form.status_code == 200
    assert "script-src" not in form.headers["Content-Security-Policy"]
    sent = browser.post("/password/forgot", data={**form_of(form), "email": "alice@example.com"})
    assert sent.status_code == 200 and "is on its way" in sent.get_data(as_text=True)
    link = link_in(delivered(h)[0])

    page = browser.get(link)  # opening the link (as a mail scanner would) uses nothing
    assert page.status_code == 200 and "alice" in page.get_data(as_text=True)
    assert browser.get(link).status_code == 200
    fields = form_of(page)
    differ = browser.post(
        "/password/reset", data={**fields, "newpassword": NEW, "confirm": "x" + NEW}
    )
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    done = browser.post("/password/reset", data={**fields, "newpassword": NEW, "confirm": NEW})
    assert done.status_code == 200 and "password was changed" in done.get_data(as_text=True)
    assert h.login("alice", NEW).status_code == 200
    used = browser.get(link)
    assert used.status_code == 400 and "does not work" in used.get_data(as_text=True)


def test_the_confirmation_page_confirms_only_on_its_button(h: Harness) -> None:
    register(h)
    link = link_in(delivered(h)[0])
    browser = h.new_client()
    page = browser.get(link)
    assert page.status_code == 200 and "alice@example.com" in page.get_data(as_text=True)
    assert h.login().status_code == 200
    assert status(h.client)["Data"]["User"]["EmailVerified"] is False
    confirmed = browser.post("/email/verify", data=form_of(page))
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    assert status(h.client)["Data"]["User"]["EmailVerified"] is True


def test_a_page_post_without_the_csrf_token_changes_nothing(h: Harness) -> None:
    register(h)
    delivered(h)
    post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    token = token_in(delivered(h)[0])
    forged = h.new_client().post(
        "/password/reset", data={"token": token, "newpassword": NEW, "confirm": NEW}
    )
    assert forged.status_code == 403
    assert h.login("alice", STRONG).status_code == 200


def test_the_account_page_changes_the_address_and_asks_for_a_new_link(h: Harness) -> None:
    register(h)
    delivered(h)
    h.login()
    page = h.client.get("/account")
    assert "not confirmed" in page.get_data(as_text=True)
    again = h.client.post("/account", data={**form_of(page), "action": "verify"})
    assert again.status_code == 200
    assert [m["Subject"] for m in delivered(h)] == ["Confirm your email address"]
    changed = h.client.post(
        "/account",
        data={**form_of(page), "action": "email", "email": "alice@new.example", "password": STRONG},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert "alice@new.example" in changed.get_data(as_text=True)
    assert sorted(m["To"] for m in delivered(h)) == ["alice@example.com", "alice@new.example"]


# -- invitations -------------------------------------------------------------------------------


def _staff(h: Harness, *, admin_group: bool = False) -> None:
    from passport.services import directory
    from passport.storage.models import Application

    with h.app.services.db.session(write=True) as db, db.begin():
        group = directory.create_group(db, "Staff")
        if admin_group:
            passport = db.get(Application, 1)
            assert passport is not None
            admin = directory.find_permission(db, passport, "admin")
            assert admin is not None
            directory.grant(db, admin, group=group)


def test_an_invited_person_makes_an_account_in_the_invited_groups(h: Harness) -> None:
    _staff(h)
    admin = h.administrator("root", "admin")
    delivered(h)
    invited = post(admin, "/Users/invite", email="Bob@Example.com", groups="Staff")
    assert invited.status_code == 200, invited.get_data(as_text=True)
    shown = data(invited)["Data"]["Invitation"]
    assert shown["Groups"] == ["Staff"] and shown["State"] == "pending"
    message = only(delivered(h), "Bob@example.com", "You are invited to Passport")
    assert "root" in text_of(message) and "7 days" in text_of(message)

    browser = h.new_client()
    page = browser.get(link_in(message))
    assert page.status_code == 200 and "Staff" in page.get_data(as_text=True)
    made = browser.post(
        "/invite",
        data={**form_of(page), "username": "bob", "password": NEW, "confirm": NEW},
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    answer = h.login("bob", NEW)
    assert answer.status_code == 200
    assert data(answer)["Data"]["User"]["EmailVerified"] is True
    with h.app.services.db.session() as db:
        groups = db.scalars(
            select(Group.name)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .join(User, User.id == GroupMember.user_id)
            .where(User.username == "bob")
        ).all()
    assert groups == ["Staff"]
    listed = data(admin.get("/Users/invitations"))["Data"]["Invitations"]
    assert [(i["Email"], i["State"]) for i in listed] == [("Bob@example.com", "accepted")]
    reused = post(
        h.new_client(),
        "/Account/acceptInvitation",
        token=token_in(message),
        username="bob2",
        password=NEW,
    )
    assert reused.status_code == 400


def test_revoking_and_resending_kill_the_old_link(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    delivered(h)
    invitation = data(post(admin, "/Users/invite", email="bob@example.com"))["Data"]["Invitation"]
    first = token_in(delivered(h)[0])
    assert (
        post(admin, "/Users/resendInvitation", invitation=str(invitation["ID"])).status_code == 200
    )
    second = token_in(delivered(h)[0])
    accept = {"username": "bob", "password": NEW}
    assert (
        post(h.new_client(), "/Account/acceptInvitation", token=first, **accept).status_code == 400
    )
    assert (
        post(admin, "/Users/revokeInvitation", invitation=str(invitation["ID"])).status_code == 200
    )
    assert (
        post(h.new_client(), "/Account/acceptInvitation", token=second, **accept).status_code == 400
    )
    resend = post(admin, "/Users/resendInvitation", invitation=str(invitation["ID"]))
    assert resend.status_code == 400  # revoked: invite again
    assert rows(h, "users") == 1


def test_an_invitation_expires(h: Harness) -> None:
    admin = h.administrator("root", "admin")
    delivered(h)
    post(admin, "/Users/invite", email="bob@example.com")
    link = token_in(delivered(h)[0])
    h.clock.advance(days=7, seconds=1)
    accept = {"username": "bob", "password": NEW}
    assert (
        post(h.new_client(), "/Account/acceptInvitation", token=link, **accept).status_code == 400
    )
    later = h.administrator("root2", "admin")  # the first one's session ended meanwhile
    listed = data(later.get("/Users/invitations"))["Data"]["Invitations"]
    assert listed[0]["State"] == "expired"


def test_nobody_invites_into_a_group_holding_rights_they_lack(h: Harness) -> None:
    _staff(h, admin_group=True)
    delegate = h.administrator("helpdesk", "users:write", "groups:write")
    refused = post(delegate, "/Users/invite", email="eve@example.com", groups="Staff")
    assert refused.status_code == 403
    assert rows(h, "invitations") == 0 and rows(h, "mail_outbox") == 0
    assert post(delegate, "/Users/invite", email="eve@example.com").status_code == 200


def test_an_address_already_registered_or_invited_is_not_invited_again(h: Harness) -> None:
    register(h)
    admin = h.administrator("root", "admin")
    assert post(admin, "/Users/invite", email="ALICE@example.com").status_code == 409
    assert post(admin, "/Users/invite", email="bob@example.com").status_code == 200
    assert post(admin, "/Users/invite", email="bob@example.com").status_code == 409


def test_an_administrator_changing_an_address_makes_it_unconfirmed_and_tells_both(
    h: Harness,
) -> None:
    register(h)
    link = token_in(delivered(h)[0])
    assert post(h.client, "/Account/verifyEmail", token=link).status_code == 200
    admin = h.administrator("root", "admin")
    changed = post(admin, "/Users/update", username="alice", email="alice@other.example")
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert data(changed)["Data"]["User"]["EmailVerified"] is False
    assert sorted((m["To"], m["Subject"]) for m in delivered(h)) == [
        ("alice@example.com", "Your email address was changed"),
        ("alice@other.example", "Confirm your email address"),
    ]


# -- without SMTP ------------------------------------------------------------------------------


def test_without_smtp_nothing_that_needs_mail_is_offered(factory: Any) -> None:
    h = factory("sqlite")
    assert h.register("alice", email="alice@example.com").status_code == 200
    assert rows(h, "mail_outbox") == 0
    refused = post(h.new_client(), "/Account/requestPasswordReset", email="alice@example.com")
    assert refused.status_code == 403
    assert data(refused)["ClientExceptions"][0]["Number"] == "7"
    admin = h.administrator("root", "admin")
    assert post(admin, "/Users/invite", email="bob@example.com").status_code == 403
    assert h.new_client().get("/password/forgot").status_code == 403
    assert "/password/forgot" not in h.new_client().get("/login").get_data(as_text=True)


# -- the outbox holds no link in clear -----------------------------------------------------------


def test_a_queued_message_keeps_its_link_sealed_and_forgets_it_once_sent(h: Harness) -> None:
    register(h)
    with h.app.services.db.session() as db:
        queued = db.scalars(select(MailMessage)).one()
        assert queued.body and "token=" not in queued.body and "alice" not in queued.body
    message = delivered(h)[0]
    assert "token=" in text_of(message)
    with h.app.services.db.session() as db:
        sent = db.scalars(select(MailMessage)).one()
        assert sent.body == "" and sent.sent_at is not None and sent.attempts == 1


def audit(h: Harness) -> list[tuple[str, str]]:
    from passport.storage.models import AuditEvent

    with h.app.services.db.session() as db:
        return [
            (e.event, e.outcome) for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
