"""Whatever ends a user's sessions ends their OAuth tokens and tells the applications.

Password change (API and the hosted /account page), an administrator's password
reset or second-factor reset, "log out everywhere", disabling and deleting, through
the API and through the CLI: afterwards the user's access token introspects inactive,
their refresh token gets ``invalid_grant``, and a back-channel logout token is queued
for the application that held them (security checklist item 41).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from enrolled_support import give_factors
from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import ids
from oidc_support import seed
from oidc_support import token
from passport.cli import cli
from passport.services import directory
from passport.services.applications import find_by_name
from passport.storage.models import Application
from passport.storage.models import LogoutNotification
from passport.storage.models import OAuthToken

from conftest import REDIS_URL
from support import ORIGIN
from support import STRONG
from support import Harness
from support import PassportClient

NEW = "a brand new passphrase for alice"
COMBOS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    backend, store = request.param
    harness: Harness = factory(backend, store, key_encryption_key=KEK)
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    with harness.app.services.db.session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        wiki.backchannel_logout_uri = "http://127.0.0.1:9/backchannel"
    return harness


def introspect(h: Harness, value: str) -> dict[str, Any]:
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    response = h.client.post(
        "/oauth2/introspect",
        data={"token": value},
        headers={"Authorization": "Basic " + base64.b64encode(raw).decode()},
    )
    return body(response)


def administrator(h: Harness) -> PassportClient:
    h.register("root")
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, user=directory.get_user(db, "root"))
    root = h.new_client()
    assert root.post("/Account/login", data={"username": "root", "password": STRONG}).status_code
    return root


def run_cli(h: Harness, *args: str, stdin: str = "") -> Any:
    """``passport ...`` as the operator runs it on the server: the deployment's settings
    (public URL, key encryption key, Redis) come from its environment."""
    env = {
        "PASSPORT_PUBLIC_URL": h.settings.public_url,
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
        "PASSPORT_REDIS_URL": REDIS_URL if h.store == "redis" else "",
    }
    result = CliRunner().invoke(
        cli, [*args, "--database-url", h.settings.database_url], input=stdin, env=env
    )
    assert result.exit_code == 0, (args, result.output)
    return result


def notifications(h: Harness) -> int:
    with h.app.services.db.session() as db:
        return db.scalar(select(func.count()).select_from(LogoutNotification)) or 0


def live_tokens(h: Harness) -> int:
    with h.app.services.db.session() as db:
        alice = directory.find_user(db, "alice")
        if alice is None:
            return 0
        return (
            db.scalar(
                select(func.count())
                .select_from(OAuthToken)
                .where(OAuthToken.user_id == alice.id, OAuthToken.revoked_at.is_(None))
            )
            or 0
        )


def change_own_password(h: Harness) -> None:
    changed = h.client.post(
        "/Account/changePassword", data={"oldPassword": PASSWORD, "newPassword": NEW}
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert body(h.client.get("/Account/status"))["LoggedIn"] is True  # this session stays


def change_password_on_the_account_page(h: Harness) -> None:
    page = h.client.get("/account")
    found = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    changed = h.client.post(
        "/account",
        data={
            "csrf": found.group(1),
            "action": "password",
            "oldPassword": PASSWORD,
            "newPassword": NEW,
        },
        headers={"Origin": ORIGIN},
    )
    assert changed.status_code == 200 and "password was changed" in changed.get_data(as_text=True)


def admin_call(path: str, **params: str) -> Callable[[Harness], None]:
    def call(h: Harness) -> None:
        response = administrator(h).post(path, data={"username": "alice", **params})
        assert response.status_code == 200, response.get_data(as_text=True)

    return call


def cli_call(*args: str, stdin: str = "") -> Callable[[Harness], None]:
    def call(h: Harness) -> None:
        run_cli(h, *args, stdin=stdin)

    return call


def with_factors(call: Callable[[Harness], None]) -> Callable[[Harness], None]:
    """alice, signed in with her tokens, has enrolled second factors: then they are reset."""

    def run(h: Harness) -> None:
        give_factors(h, "alice")
        call(h)

    return run


OPERATIONS = {
    "Account/changePassword": change_own_password,
    "/account page": change_password_on_the_account_page,
    "Users/resetPassword": admin_call("/Users/resetPassword", password=NEW),
    "Users/logoutAll": admin_call("/Users/logoutAll"),
    "Users/setDisabled": admin_call("/Users/setDisabled", disabled="true"),
    "Users/delete": admin_call("/Users/delete"),
    "Users/resetFactors": with_factors(admin_call("/Users/resetFactors")),
    "user reset-password": cli_call("user", "reset-password", "alice", stdin=f"{NEW}\n{NEW}\n"),
    "user logout-all": cli_call("user", "logout-all", "alice"),
    "user disable": cli_call("user", "disable", "alice"),
    "user delete": cli_call("user", "delete", "alice", "--yes"),
    "user reset-factors": with_factors(cli_call("user", "reset-factors", "alice", "--yes")),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_tokens_end_and_applications_hear_of_it(h: Harness, operation: str) -> None:
    issued = body(exchange(h, get_code(h)))
    assert introspect(h, issued["access_token"])["active"] is True
    assert live_tokens(h) == 2 and notifications(h) == 0

    OPERATIONS[operation](h)

    assert introspect(h, issued["access_token"]) == {"active": False}
    refreshed = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert body(refreshed)["error"] == "invalid_grant"
    assert live_tokens(h) == 0
    assert notifications(h) == 1  # Wiki held tokens for alice: it is told
    userinfo = h.client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {issued['access_token']}"}
    )
    assert userinfo.status_code == 401


def test_re_enabling_does_not_revive_old_tokens(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    run_cli(h, "user", "disable", "alice")
    run_cli(h, "user", "enable", "alice")
    assert introspect(h, issued["access_token"]) == {"active": False}
    refreshed = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert body(refreshed)["error"] == "invalid_grant"


def test_a_re_enabled_application_s_old_tokens_stay_dead(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    assert introspect(h, issued["access_token"])["active"] is True
    run_cli(h, "app", "disable", "Wiki")
    run_cli(h, "app", "enable", "Wiki")
    assert introspect(h, issued["access_token"]) == {"active": False}
    refreshed = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert body(refreshed)["error"] == "invalid_grant"
    fresh = body(exchange(h, get_code(h)))  # the application works again, with new tokens
    assert introspect(h, fresh["access_token"])["active"] is True
