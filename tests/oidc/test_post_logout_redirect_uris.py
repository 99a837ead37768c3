"""Post-logout redirect URIs (OpenID Connect RP-Initiated Logout 1.0 §3 client metadata
``post_logout_redirect_uris``), registered apart from the redirect URIs: §2 "The OP MUST
NOT perform post-logout redirection to a URI not registered for that purpose".

Registered through ``Applications/create|update`` (``postLogoutRedirectUris``) and
``passport app add|update`` (``--post-logout-redirect-uri``, repeatable;
``--no-post-logout-redirect-uris``), under the rules of redirect URIs; ``/logout`` returns
to them only.  The seed's Wiki and Spa have ``SIGNED_OUT``; the conformance modules are in
``test_oidcc_rp_initiated_logout.py``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import body
from passport.cli import cli
from passport.storage.models import Application
from passport.storage.models import AuditEvent

from support import Harness
from support import PassportClient

BYE = "https://notes.example.com/bye"
LOCAL = "http://127.0.0.1:8080/signed-out?from=passport"


def admin(h: Harness) -> PassportClient:
    """An administrator's API client (the ``admin`` right of the Passport application)."""
    return h.administrator("root", "admin")


def stored(h: Harness, name: str) -> list[str]:
    with h.app.services.db.session() as db:
        app = db.scalars(select(Application).where(Application.name == name)).one()
        return list(app.post_logout_redirect_uris)


def client_id(h: Harness, name: str) -> str:
    with h.app.services.db.session() as db:
        app = db.scalars(select(Application).where(Application.name == name)).one()
        return app.client_id or ""


def sign_out_to(h: Harness, name: str, uri: str) -> Any:
    """A visitor who is not signed in follows an end-session link naming the client."""
    params = {"client_id": client_id(h, name), "post_logout_redirect_uri": uri, "state": "s"}
    return h.new_client().get("/logout?" + urlencode(params))


def returned(answer: Any, uri: str) -> bool:
    """Sent back to ``uri`` with the link's ``state`` (§3), its own query kept."""
    back = uri + ("&" if "?" in uri else "?") + "state=s"
    return answer.status_code == 302 and answer.headers["Location"] == back


def refused(answer: Any) -> bool:
    return (
        answer.status_code == 200
        and "Location" not in answer.headers
        and "has not registered" in answer.get_data(as_text=True)
    )


# -- API -----------------------------------------------------------------------------------------


def test_a_new_application_has_none_and_its_redirect_uri_is_not_one(h: Harness) -> None:
    client = admin(h)
    made = client.post("/Applications/create", data={"name": "Notes", "redirectUris": REDIRECT})
    assert made.status_code == 200, made.get_data(as_text=True)
    assert body(made)["Data"]["Application"]["PostLogoutRedirectUris"] == []
    assert refused(sign_out_to(h, "Notes", REDIRECT))


def test_registered_through_the_api_and_returned_to(h: Harness) -> None:
    client = admin(h)
    made = client.post(
        "/Applications/create",
        data={"name": "Notes", "redirectUris": REDIRECT, "postLogoutRedirectUris": BYE},
    )
    assert body(made)["Data"]["Application"]["PostLogoutRedirectUris"] == [BYE]
    assert body(made)["Data"]["Application"]["RedirectUris"] == [REDIRECT]
    assert returned(sign_out_to(h, "Notes", BYE), BYE)
    # A list replaces the whole list (spaces or commas, duplicates once).
    changed = client.post(
        "/Applications/update",
        data={"application": "Notes", "postLogoutRedirectUris": f"{LOCAL}, {BYE} {LOCAL}"},
    )
    assert body(changed)["Data"]["Application"]["PostLogoutRedirectUris"] == [LOCAL, BYE]
    assert returned(sign_out_to(h, "Notes", LOCAL), LOCAL)
    shown = body(client.get("/Applications/get?application=Notes"))["Data"]["Application"]
    assert shown["PostLogoutRedirectUris"] == [LOCAL, BYE]
    # Absent: unchanged; "": none.
    client.post("/Applications/update", data={"application": "Notes", "description": "x"})
    assert stored(h, "Notes") == [LOCAL, BYE]
    emptied = client.post(
        "/Applications/update", data={"application": "Notes", "postLogoutRedirectUris": ""}
    )
    assert body(emptied)["Data"]["Application"]["PostLogoutRedirectUris"] == []
    assert refused(sign_out_to(h, "Notes", BYE))
    assert stored(h, "Notes") == []


def test_an_update_is_audited_with_what_changed(h: Harness) -> None:
    client = admin(h)
    answer = client.post(
        "/Applications/update", data={"application": "Wiki", "postLogoutRedirectUris": BYE}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    with h.app.services.db.session() as db:
        event = db.scalars(
            select(AuditEvent).where(AuditEvent.event == "app_update").order_by(AuditEvent.id)
        ).all()[-1]
    detail = json.loads(event.detail or "{}")
    assert detail["changed"] == ["postLogoutRedirectUris"] and event.application == "Wiki"


HOSTILE = {
    "fragment": BYE + "#x",
    "empty fragment": BYE + "#",
    "http to a public host": "http://notes.example.com/bye",
    "relative": "/bye",
    "no scheme": "notes.example.com/bye",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,<script>alert(1)</script>",
    "port 0": "https://notes.example.com:0/bye",
    "loopback port 0": "http://127.0.0.1:0/bye",
    "bad port": "https://notes.example.com:99999/bye",
    "unreadable host": "https://[zz/bye",
    "control character": "https://notes.example.com/\x01",
    "bidi override": "https://notes.example.com/\u202e",
    "nul": "https://notes.example.com/a\x00b",
    "longer than 500": "https://notes.example.com/" + "a" * 500,
    "no host": "https:///bye",
}


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_what_a_redirect_uri_may_not_be_is_refused(h: Harness, value: str) -> None:
    client = admin(h)
    for path, params in (
        ("/Applications/update", {"application": "Wiki"}),
        ("/Applications/create", {"name": "Notes"}),
    ):
        answer = client.post(path, data={**params, "postLogoutRedirectUris": value})
        assert answer.status_code == 400, (path, value, answer.get_data(as_text=True))
        problem = body(answer)["ClientExceptions"][0]
        assert problem["Source"] == "postLogoutRedirectUris", problem
        assert "Traceback" not in answer.get_data(as_text=True)
    assert stored(h, "Wiki") == [SIGNED_OUT]
    with h.app.services.db.session() as db:
        assert "Notes" not in db.scalars(select(Application.name)).all()


def test_too_long_a_list_is_refused(h: Harness) -> None:
    """The parameter's length limit of ``redirectUris`` (8000 characters)."""
    client = admin(h)
    many = " ".join(f"https://notes.example.com/{i:04}/" + "a" * 400 for i in range(20))
    answer = client.post(
        "/Applications/update", data={"application": "Wiki", "postLogoutRedirectUris": many}
    )
    assert answer.status_code == 400
    assert body(answer)["ClientExceptions"][0]["Source"] == "postLogoutRedirectUris"
    assert stored(h, "Wiki") == [SIGNED_OUT]


# -- CLI -----------------------------------------------------------------------------------------


def test_registered_through_the_cli(h: Harness) -> None:
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    made = run(
        "app", "add", "Notes", "--redirect-uri", REDIRECT,
        "--post-logout-redirect-uri", BYE, "--post-logout-redirect-uri", LOCAL, "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)[0]["PostLogoutRedirectUris"] == [BYE, LOCAL]
    assert json.loads(made.output)[0]["RedirectUris"] == [REDIRECT]
    assert returned(sign_out_to(h, "Notes", LOCAL), LOCAL)
    plain = run("app", "add", "Blog", "--redirect-uri", REDIRECT, "--json")
    assert json.loads(plain.output)[0]["PostLogoutRedirectUris"] == []
    assert run("app", "update", "Notes", "--post-logout-redirect-uri", BYE).exit_code == 0
    shown = json.loads(run("app", "show", "Notes", "--json").output)[0]
    assert shown["PostLogoutRedirectUris"] == [BYE]
    assert run("app", "update", "Notes", "--description", "x").exit_code == 0
    assert stored(h, "Notes") == [BYE]  # not given: unchanged
    bad = run("app", "update", "Notes", "--post-logout-redirect-uri", BYE + "#frag")
    assert bad.exit_code == 1 and "post-logout redirect URI" in bad.output
    assert stored(h, "Notes") == [BYE]
    assert run("app", "update", "Notes", "--no-post-logout-redirect-uris").exit_code == 0
    assert stored(h, "Notes") == []
    both = run(
        "app", "update", "Notes", "--no-post-logout-redirect-uris",
        "--post-logout-redirect-uri", BYE,
    )  # fmt: skip
    assert both.exit_code == 2 and stored(h, "Notes") == []


# -- URIs stored before the fragment rule (review: legacy ``#``) ---------------------------------

LEGACY = "http://127.0.0.1:9/legacy#"
LEGACY_BYE = "http://127.0.0.1:9/lbye#"


@pytest.mark.parametrize("fragment", ["", "frag"])
def test_a_stored_uri_with_a_fragment_is_not_registered(h: Harness, fragment: str) -> None:
    """RFC 6749 §3.1.2: a redirection endpoint URI "MUST NOT include a fragment
    component".  A bare ``#`` was accepted before the rule, and migration 0016 copied the
    login redirect URIs into the post-logout ones: an upgraded database may hold one (the
    rows are edited directly, as such a database would hold them).  At run time it is no
    registered URI: ``/oauth2/authorize`` shows its error page, never a redirect to
    ``…#?error=``; ``/logout`` shows Passport's page, never ``…#?state=``."""
    legacy, bye = LEGACY + fragment, LEGACY_BYE + fragment
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        wiki.redirect_uris = [*wiki.redirect_uris, legacy]
        wiki.post_logout_redirect_uris = [*wiki.post_logout_redirect_uris, bye]
    params = {
        "client_id": client_id(h, "Wiki"),
        "redirect_uri": legacy,
        "response_type": "code",
        "scope": "openid",
        "state": "s",
    }
    for asked in (params, {**params, "response_type": "token"}):  # an error for the client
        answer = h.new_client().get("/oauth2/authorize?" + urlencode(asked))
        assert answer.status_code == 400 and "Location" not in answer.headers, asked
        assert "has not registered" in answer.get_data(as_text=True)
    assert refused(sign_out_to(h, "Wiki", bye))
    # The same application's other URIs still work.
    assert returned(sign_out_to(h, "Wiki", SIGNED_OUT), SIGNED_OUT)
    good = h.new_client().get(
        "/oauth2/authorize?" + urlencode({**params, "redirect_uri": REDIRECT})
    )
    assert good.status_code in (302, 303) and good.headers["Location"].startswith(("/", "http"))
