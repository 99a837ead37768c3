"""Who may sign in to an application (``services/access.py`` ``admission``), enforced at
every door that admits a user to one: the authorization endpoint (a page for the user,
``access_denied`` for the client, RFC 6749 §4.1.2.1; ``prompt=none`` answered directly,
OIDC Core §3.1.2.6), the token endpoint (code, refresh — ``invalid_grant``, RFC 6749
§5.2, the family revoked —, device code), ``Client/validateSession`` and ``/device``.
In process on SQLite and PostgreSQL (the ``h`` fixture of tests/oidc/conftest.py)."""

from __future__ import annotations

import base64
import json
import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlalchemy import select

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import ids
from oidc_support import query
from oidc_support import token
from passport.services import access
from passport.services import directory
from passport.services.applications import find_by_name
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import AuditEvent
from passport.storage.models import AuthorizationCode
from passport.storage.models import OAuthToken
from passport.storage.models import User

from support import Harness
from support import PassportClient

GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BACK = re.compile(r'<a href="([^"]+)">Back to Wiki</a>')


def policy(
    h: Harness, rule: str, groups: tuple[str, ...] = (), permission: str | None = None
) -> None:
    """Wiki's sign-in policy, as an administrator's operation leaves it."""
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.sign_in_policy = rule
        app.sign_in_permission = permission
        app.sign_in_group_rows = []
        db.flush()
        for name in groups:
            group = directory.find_group(db, name) or directory.create_group(db, name)
            db.add(ApplicationSignInGroup(application_id=app.id, group_id=group.id))


def join(h: Harness, group: str, username: str = "alice", member: bool = True) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        team = directory.find_group(db, group) or directory.create_group(db, group)
        who = directory.find_user(db, username)
        assert who is not None
        if member:
            directory.add_member(db, team, who)
        else:
            directory.remove_member(db, team, who)


def count(h: Harness, model: Any, *where: Any) -> int:
    with h.app.services.db.session() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def refusals(h: Harness, door: str | None = None) -> list[dict[str, Any]]:
    with h.app.services.db.session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.event == access.REFUSED_EVENT)).all()
        found = [
            {"outcome": r.outcome, "application": r.application, **json.loads(r.detail)}
            for r in rows
        ]
    return [f for f in found if door is None or f["door"] == door]


def request(**extra: str) -> dict[str, str]:
    return {
        "client_id": "",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        **extra,
    }


def ask(h: Harness, client: Any = None, **extra: str) -> Any:
    return authorize(h, client, **(request(**extra) | {"client_id": ids(h)["client_id"]}))


def code_for(h: Harness, **extra: str) -> str:
    answer = ask(h, scope="openid offline_access", prompt="consent", **extra)
    if answer.status_code == 302 and answer.headers["Location"].startswith("/consent"):
        page = h.client.get(answer.headers["Location"])
        answer = h.client.post("/consent", data={**form_of(page), "decision": "allow"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    return query(answer)["code"]


def signed_in_first_party(h: Harness) -> None:
    assert h.login("alice", PASSWORD).status_code == 200
    first_party(h)


def basic(h: Harness) -> dict[str, str]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def error_of(response: Any) -> str:
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    return str(body(response)["error"])


def started(h: Harness) -> dict[str, Any]:
    """A device's request to Wiki (RFC 8628 §3.1), the grant switched on."""
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.device_grant = True
    answer = h.client.post(
        "/oauth2/device_authorization", data={"scope": "openid"}, headers=basic(h)
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return body(answer)


def poll(h: Harness, device_code: str) -> Any:
    data = {"grant_type": GRANT, "device_code": device_code}
    return h.client.post("/oauth2/token", data=data, headers=basic(h))


def device_user(h: Harness) -> PassportClient:
    browser = h.new_client()
    signed = browser.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert signed.status_code == 200, signed.get_data(as_text=True)
    return browser


def enter(browser: PassportClient, user_code: str, decision: str | None = None) -> Any:
    data = {**form_of(browser.get("/device")), "user_code": user_code}
    if decision is not None:
        data["decision"] = decision
    return browser.post("/device", data=data)


# -- /oauth2/authorize ----------------------------------------------------------------------


def test_an_outsider_gets_a_page_and_the_client_access_denied(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    signed_in_first_party(h)
    page = ask(h)
    html = page.get_data(as_text=True)
    assert page.status_code == 403, html[:300]
    assert "Your account may not sign in to Wiki" in html
    assert "Sign in as someone else" in html and "/login?authorization=" in html
    assert "Staff" not in html  # the page names nothing of how the application is set
    back = BACK.search(html)
    assert back is not None
    sent = urlsplit(unescape(back.group(1)))
    assert f"{sent.scheme}://{sent.netloc}{sent.path}" == REDIRECT
    answer = {k: v[0] for k, v in parse_qs(sent.query).items()}
    assert answer["error"] == "access_denied" and answer["state"] == "s1"
    assert answer["iss"] == h.settings.issuer
    assert count(h, AuthorizationCode) == 0
    assert refusals(h, "authorize") == [
        {
            "outcome": "failure",
            "application": "Wiki",
            "door": "authorize",
            "policy": "groups",
            "reason": access.NOT_ALLOWED.reason,
        }
    ]


def test_a_member_gets_a_code_and_tokens(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    join(h, "Staff")
    signed_in_first_party(h)
    answer = ask(h)
    assert answer.status_code == 302 and "code" in query(answer), answer.get_data(as_text=True)
    tokens = exchange(h, query(answer)["code"])
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    assert refusals(h) == []


def test_prompt_none_answers_access_denied_directly(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    signed_in_first_party(h)
    answer = ask(h, prompt="none")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(REDIRECT)
    assert query(answer)["error"] == "access_denied" and query(answer)["state"] == "s1"
    assert count(h, AuthorizationCode) == 0
    assert [r["door"] for r in refusals(h)] == ["authorize"]  # kept through the rollback


def test_the_permission_policy_admits_its_holders_and_fails_closed(h: Harness) -> None:
    signed_in_first_party(h)
    policy(h, access.PERMISSION, permission="edit")  # alice holds edit (seed)
    assert "code" in query(ask(h))
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        directory.create_permission(db, wiki, "enter")
    policy(h, access.PERMISSION, permission="enter")
    assert ask(h).status_code == 403
    policy(h, access.PERMISSION, permission="edit")
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        edit = directory.find_permission(db, wiki, "edit")
        assert edit is not None
        directory.delete_permission(db, edit)
    assert ask(h).status_code == 403  # the permission is gone: nobody, not everybody


def test_after_signing_in_the_refusal_comes_before_consent_and_someone_else_may_sign_in(
    h: Harness,
) -> None:
    policy(h, access.GROUPS, ("Staff",))
    assert h.register("bob").status_code == 200
    join(h, "Staff", "bob")
    browser = h.new_client()
    answer = ask(h, browser)
    login = answer.headers["Location"]
    assert login.startswith("/login?")
    page = browser.get(login)
    refused = browser.post(
        "/login", data={**form_of(page), "username": "alice", "password": PASSWORD}
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 403 and "Your account may not sign in to Wiki" in html
    assert count(h, AuthorizationCode) == 0
    # The consent page cannot continue it for alice: a fresh sign-in is needed.
    handle = query(answer)["authorization"]
    again = browser.get(f"/consent?authorization={handle}")
    assert again.status_code == 302 and again.headers["Location"].startswith("/login?")
    switch = re.search(r'<a href="(/login\?authorization=[^"]+)">', html)
    assert switch is not None
    page = browser.get(unescape(switch.group(1)))
    signed = browser.post("/login", data={**form_of(page), "username": "bob", "password": PASSWORD})
    if signed.headers.get("Location", "").startswith("/consent"):
        consent = browser.get(signed.headers["Location"])
        signed = browser.post("/consent", data={**form_of(consent), "decision": "allow"})
    assert signed.status_code == 302 and "code" in query(signed), signed.get_data(as_text=True)


def test_form_post_offers_a_form_back_to_the_client(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    signed_in_first_party(h)
    page = ask(h, response_mode="form_post")
    html = page.get_data(as_text=True)
    assert page.status_code == 403
    assert f'<form method="post" action="{REDIRECT}">' in html
    fields = form_of(page)
    assert fields["error"] == "access_denied" and fields["state"] == "s1"
    assert "code" not in fields


# -- the token endpoint ---------------------------------------------------------------------


def test_a_code_is_refused_when_membership_ended_after_it_was_issued(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    join(h, "Staff")
    signed_in_first_party(h)
    code = code_for(h)
    join(h, "Staff", member=False)
    refused = exchange(h, code)
    assert error_of(refused) == "invalid_grant"
    assert count(h, OAuthToken) == 0
    assert [r["door"] for r in refusals(h)] == ["token"]


def test_a_user_removed_from_the_group_gets_no_new_tokens_and_the_family_ends(
    h: Harness,
) -> None:
    policy(h, access.GROUPS, ("Staff",))
    join(h, "Staff")
    signed_in_first_party(h)
    issued = body(exchange(h, code_for(h)))
    assert "refresh_token" in issued
    renewed = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert renewed.status_code == 200
    join(h, "Staff", member=False)
    refused = token(h, grant_type="refresh_token", refresh_token=body(renewed)["refresh_token"])
    assert error_of(refused) == "invalid_grant"
    assert count(h, OAuthToken, OAuthToken.revoked_at.is_(None)) == 0  # the family went
    userinfo = h.client.get(
        "/oauth2/userinfo", headers={"Authorization": "Bearer " + body(renewed)["access_token"]}
    )
    assert userinfo.status_code == 401
    # Back in the group, the revoked family stays revoked.
    join(h, "Staff")
    again = token(h, grant_type="refresh_token", refresh_token=body(renewed)["refresh_token"])
    assert error_of(again) == "invalid_grant"
    assert [r["door"] for r in refusals(h)] == ["refresh"]


# -- Client/validateSession -----------------------------------------------------------------


def test_validate_session_is_not_valid_for_a_user_not_admitted(h: Harness) -> None:
    browser = h.new_client()
    assert browser.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    cookie = browser.get_cookie(h.settings.session_cookie_name)
    assert cookie is not None
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    auth = {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def valid() -> bool:
        answer = h.new_client().post(
            "/Client/validateSession", data={"token": cookie.value}, headers=auth
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return bool(answer.get_json()["Data"]["Valid"])

    assert valid()
    policy(h, access.GROUPS, ("Staff",))
    assert not valid()
    join(h, "Staff")
    assert valid()
    policy(h, access.PERMISSION, permission="edit")
    assert valid()
    policy(h, "someday")  # a policy this version does not know admits nobody
    assert not valid()
    assert [r["door"] for r in refusals(h)] == ["validateSession"] * 2


# -- the device grant -----------------------------------------------------------------------


def test_the_device_page_refuses_an_outsider_and_the_device_gets_nothing(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    answer = started(h)
    browser: PassportClient = device_user(h)
    shown = enter(browser, answer["user_code"])
    assert shown.status_code == 403
    assert "may not sign in to Wiki" in shown.get_data(as_text=True)
    assert "Allow" not in shown.get_data(as_text=True)
    forced = enter(browser, answer["user_code"], "allow")
    assert forced.status_code == 403
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "authorization_pending"
    assert [r["door"] for r in refusals(h)] == ["device", "device"]


def test_a_device_approval_is_refused_at_the_token_when_membership_ended(h: Harness) -> None:
    policy(h, access.GROUPS, ("Staff",))
    join(h, "Staff")
    answer = started(h)
    browser = device_user(h)
    assert enter(browser, answer["user_code"]).status_code == 200
    assert enter(browser, answer["user_code"], "allow").status_code == 200
    join(h, "Staff", member=False)
    h.clock.advance(seconds=5)
    assert error_of(poll(h, answer["device_code"])) == "invalid_grant"
    assert count(h, OAuthToken) == 0
    assert [r["door"] for r in refusals(h)] == ["device"]


def test_passport_itself_keeps_admitting_its_users(h: Harness) -> None:
    with h.app.services.db.session() as db:
        passport = db.get(type(find_by_name(db, "Wiki")), 1)
        alice = db.scalars(select(User).where(User.username == "alice")).one()
        assert passport is not None and passport.sign_in_policy == access.ANYONE
        assert access.admission(db, passport, alice).allowed
