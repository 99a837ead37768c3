"""The admin API and the CLI are two doors to one set of operations.

For every operation both offer, the same change is made once through the JSON API
(an administrator signed in) and once through ``passport ...`` (the operator, in
process with click's runner) on an equal fresh state; both must run the same
:class:`passport.services.administration.Administration` operation and leave the same
traces: the audit records (event, outcome, target, detail keys; only the actor
differs: a user id for the API, ``"actor": "cli:<os user>"`` in the detail for the
CLI), the back-channel logout notifications queued for the application that held the
user's tokens, and the user's sessions and tokens that remain.  The API has no import,
so ``passport user import`` has no counterpart here.
"""

from __future__ import annotations

import functools
import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from enrolled_support import give_factors
from oidc_support import KEK
from oidc_support import SIGNED_OUT
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import seed
from passport.cli import cli
from passport.services import directory
from passport.services.administration import Administration
from passport.services.applications import find_by_name
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import EmailLink
from passport.storage.models import Group
from passport.storage.models import Invitation
from passport.storage.models import LoginSession
from passport.storage.models import LogoutNotification
from passport.storage.models import MailMessage
from passport.storage.models import OAuthToken
from passport.storage.models import RecoveryCode
from passport.storage.models import TotpCredential
from passport.storage.models import WebAuthnCredential

from support import STRONG
from support import Harness
from support import PassportClient

pytestmark = pytest.mark.sqlite  # the same code on every database: SQLite is enough here

NEW = "a brand new passphrase for alice"
BACKCHANNEL = "http://127.0.0.1:9/backchannel"
SMTP = "smtp://127.0.0.1:1"  # mail is queued, never sent, in these tests


@dataclass(frozen=True)
class Operation:
    api: tuple[str, dict[str, str]]
    cli: tuple[str, ...]
    stdin: str = ""
    before: Callable[[Harness], None] | None = None


def _disable_alice(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.get_user(db, "alice").disabled = True


def _give_alice_factors(h: Harness) -> None:
    give_factors(h, "alice")


def _create_readers(h: Harness) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.create_group(db, "Readers")


BATCH_ID = "batch-client"


def _fixed_batch_id(h: Harness) -> None:
    """Batch's client id is random; both doors name it by a known one."""
    with h.app.services.db.session(write=True) as db, db.begin():
        batch = find_by_name(db, "Batch")
        assert batch is not None
        batch.client_id = BATCH_ID


def _invite_bob(h: Harness) -> None:
    """An invitation (id 4242) to bob@example.com into Editors, made earlier."""
    from datetime import timedelta

    from passport.storage.models import Invitation
    from passport.storage.models import InvitationGroup

    with h.app.services.db.session(write=True) as db, db.begin():
        now = h.clock()
        invitation = Invitation(
            id=4242,
            email="bob@example.com",
            email_key="bob@example.com",
            created_at=now,
            sent_at=now,
            expires_at=now + timedelta(days=7),
        )
        db.add(invitation)
        db.flush()
        db.add(
            InvitationGroup(
                invitation_id=invitation.id, group_id=directory.get_group(db, "Editors").id
            )
        )


ALICE_SID = "alice-session-sid-0001"


def _name_alices_session(h: Harness) -> None:
    """alice's session (and the tokens made in it) get a known ``sid``: the reference
    both doors name it by (a new world makes a new random one).  It is alive both on the
    harness's clock and on the real one the CLI reads."""
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    from sqlalchemy import update

    real = datetime.now(UTC)
    with h.app.services.db.session(write=True) as db, db.begin():
        alice = directory.get_user(db, "alice").id
        db.execute(
            update(LoginSession)
            .where(LoginSession.user_id == alice)
            .values(
                sid=ALICE_SID,
                last_seen_at=max(real, h.clock()),
                expires_at=max(real, h.clock()) + timedelta(days=1),
            )
        )
        db.execute(update(OAuthToken).where(OAuthToken.user_id == alice).values(sid=ALICE_SID))


OPERATIONS = {
    "end one session of a user": Operation(
        ("/Users/endSession", {"username": "alice", "session": ALICE_SID}),
        ("user", "end-session", "alice", ALICE_SID),
        before=_name_alices_session,
    ),
    "revoke a user's access to one application": Operation(
        ("/Users/revokeApplication", {"username": "alice", "application": "Wiki"}),
        ("user", "revoke-app", "alice", "Wiki"),
    ),
    "invite a person into a group": Operation(
        ("/Users/invite", {"email": "bob@example.com", "groups": "Editors"}),
        ("user", "invite", "bob@example.com", "--group", "Editors"),
    ),
    "send an invitation again": Operation(
        ("/Users/resendInvitation", {"invitation": "4242"}),
        ("user", "resend-invitation", "4242"),
        before=_invite_bob,
    ),
    "revoke an invitation": Operation(
        ("/Users/revokeInvitation", {"invitation": "4242"}),
        ("user", "revoke-invitation", "4242"),
        before=_invite_bob,
    ),
    "change a user's email address": Operation(
        ("/Users/update", {"username": "alice", "email": "alice@new.example"}),
        ("user", "update", "alice", "--email", "alice@new.example"),
    ),
    "disable user": Operation(
        ("/Users/setDisabled", {"username": "alice", "disabled": "true"}),
        ("user", "disable", "alice"),
    ),
    "enable user": Operation(
        ("/Users/setDisabled", {"username": "alice", "disabled": "false"}),
        ("user", "enable", "alice"),
        before=_disable_alice,
    ),
    "reset password": Operation(
        ("/Users/resetPassword", {"username": "alice", "password": NEW}),
        ("user", "reset-password", "alice"),
        stdin=f"{NEW}\n{NEW}\n",
    ),
    "logout-all": Operation(
        ("/Users/logoutAll", {"username": "alice"}), ("user", "logout-all", "alice")
    ),
    "reset second factors": Operation(
        ("/Users/resetFactors", {"username": "alice"}),
        ("user", "reset-factors", "alice", "--yes"),
        before=_give_alice_factors,
    ),
    "delete user": Operation(
        ("/Users/delete", {"username": "alice"}), ("user", "delete", "alice", "--yes")
    ),
    "create group": Operation(
        ("/Groups/create", {"name": "Readers", "description": "They read"}),
        ("group", "add", "Readers", "--description", "They read"),
    ),
    "create a group whose members need a second factor": Operation(
        ("/Groups/create", {"name": "Readers", "requireMfa": "true"}),
        ("group", "add", "Readers", "--require-mfa"),
    ),
    "require a second factor of a group's members": Operation(
        ("/Groups/update", {"group": "Editors", "requireMfa": "true"}),
        ("group", "update", "Editors", "--require-mfa"),
    ),
    "rename group": Operation(
        ("/Groups/update", {"group": "Editors", "name": "Writers"}),
        ("group", "update", "Editors", "--rename", "Writers"),
    ),
    "delete group": Operation(
        ("/Groups/delete", {"group": "Editors"}), ("group", "delete", "Editors")
    ),
    "add member": Operation(
        ("/Groups/addMember", {"group": "Readers", "username": "alice"}),
        ("group", "add-member", "Readers", "alice"),
        before=_create_readers,
    ),
    "remove member": Operation(
        ("/Groups/removeMember", {"group": "Editors", "username": "alice"}),
        ("group", "remove-member", "Editors", "alice"),
    ),
    "grant permission": Operation(
        ("/Grants/grant", {"application": "Wiki", "permission": "edit", "group": "Editors"}),
        ("grant", "add", "Wiki", "edit", "--group", "Editors"),
    ),
    "revoke permission": Operation(
        ("/Grants/revoke", {"application": "Wiki", "permission": "edit", "username": "alice"}),
        ("grant", "remove", "Wiki", "edit", "--user", "alice"),
    ),
    "create application": Operation(
        (
            "/Applications/create",
            {
                "name": "Notes",
                "origins": "https://notes.example.com",
                "redirectUris": "https://notes.example.com/callback",
            },
        ),
        (
            "app",
            "add",
            "Notes",
            "--origin",
            "https://notes.example.com",
            "--redirect-uri",
            "https://notes.example.com/callback",
        ),
    ),
    "choose the ID token signature": Operation(
        ("/Applications/update", {"application": "Wiki", "idTokenSignedResponseAlg": "RS256"}),
        ("app", "update", "Wiki", "--id-token-signed-response-alg", "RS256"),
    ),
    "register resource identifiers": Operation(
        (
            "/Applications/update",
            {
                "application": "Batch",
                "resources": "https://orders.example.com/api https://billing.example.com",
            },
        ),
        (
            "app",
            "update",
            "Batch",
            "--resource",
            "https://orders.example.com/api",
            "--resource",
            "https://billing.example.com",
        ),
    ),
    "register post-logout redirect URIs": Operation(
        (
            "/Applications/update",
            {
                "application": "Wiki",
                "postLogoutRedirectUris": "https://wiki.example.com/bye http://127.0.0.1:9/out",
            },
        ),
        (
            "app",
            "update",
            "Wiki",
            "--post-logout-redirect-uri",
            "https://wiki.example.com/bye",
            "--post-logout-redirect-uri",
            "http://127.0.0.1:9/out",
        ),
    ),
    "remove the post-logout redirect URIs": Operation(
        ("/Applications/update", {"application": "Wiki", "postLogoutRedirectUris": ""}),
        ("app", "update", "Wiki", "--no-post-logout-redirect-uris"),
    ),
    "register an application with a post-logout redirect URI": Operation(
        (
            "/Applications/create",
            {
                "name": "Notes",
                "redirectUris": "https://notes.example.com/callback",
                "postLogoutRedirectUris": "https://notes.example.com/",
            },
        ),
        (
            "app",
            "add",
            "Notes",
            "--redirect-uri",
            "https://notes.example.com/callback",
            "--post-logout-redirect-uri",
            "https://notes.example.com/",
        ),
    ),
    "register an API with its resource": Operation(
        ("/Applications/create", {"name": "Orders", "resources": "https://orders.example.com"}),
        ("app", "add", "Orders", "--resource", "https://orders.example.com"),
    ),
    "let a client get client credentials tokens for an API": Operation(
        (
            "/Applications/update",
            {"application": "Wiki", "resourceClients": BATCH_ID},
        ),
        ("app", "update", "Wiki", "--resource-client", BATCH_ID),
        before=_fixed_batch_id,
    ),
    "register an API with the clients that may reach it": Operation(
        (
            "/Applications/create",
            {
                "name": "Orders",
                "resources": "https://orders.example.com",
                "resourceClients": BATCH_ID,
            },
        ),
        (
            "app",
            "add",
            "Orders",
            "--resource",
            "https://orders.example.com",
            "--resource-client",
            BATCH_ID,
        ),
        before=_fixed_batch_id,
    ),
    "rotate application secret": Operation(
        ("/Applications/rotateSecret", {"application": "Wiki"}), ("app", "rotate-secret", "Wiki")
    ),
    "disable application": Operation(
        ("/Applications/setEnabled", {"application": "Wiki", "enabled": "false"}),
        ("app", "disable", "Wiki"),
    ),
    "refresh tokens only for offline_access": Operation(
        ("/Applications/update", {"application": "Wiki", "refreshTokens": "false"}),
        ("app", "update", "Wiki", "--no-refresh-tokens"),
    ),
    "require pushed authorization requests": Operation(
        (
            "/Applications/update",
            {"application": "Wiki", "requirePushedAuthorizationRequests": "true"},
        ),
        ("app", "update", "Wiki", "--par-required"),
    ),
    "an application's second-factor policy": Operation(
        ("/Applications/update", {"application": "Wiki", "mfaPolicy": "passkey"}),
        ("app", "update", "Wiki", "--mfa-policy", "passkey"),
    ),
    "register an application with a second-factor policy": Operation(
        ("/Applications/create", {"name": "Notes", "mfaPolicy": "mfa"}),
        ("app", "add", "Notes", "--mfa-policy", "mfa"),
    ),
    "who may sign in: members of groups": Operation(
        (
            "/Applications/update",
            {"application": "Wiki", "signInPolicy": "groups", "signInGroups": "Editors"},
        ),
        ("app", "update", "Wiki", "--sign-in-policy", "groups", "--sign-in-group", "Editors"),
    ),
    "who may sign in: holders of a permission": Operation(
        (
            "/Applications/update",
            {"application": "Wiki", "signInPolicy": "permission", "signInPermission": "edit"},
        ),
        ("app", "update", "Wiki", "--sign-in-policy", "permission", "--sign-in-permission", "edit"),
    ),
    "register an application with a sign-in policy": Operation(
        (
            "/Applications/create",
            {"name": "Notes", "signInPolicy": "permission", "signInPermission": "read"},
        ),
        (
            "app",
            "add",
            "Notes",
            "--sign-in-policy",
            "permission",
            "--sign-in-permission",
            "read",
        ),
    ),
    "guard a site by forward-auth": Operation(
        (
            "/Applications/update",
            {
                "application": "Wiki",
                "forwardAuthHosts": "Wiki.Example.com, wiki.example.com:8443",
                "forwardAuthRules": "/admin/* admin\n/ read",
            },
        ),
        (
            "app",
            "update",
            "Wiki",
            "--forward-auth-host",
            "Wiki.Example.com",
            "--forward-auth-host",
            "wiki.example.com:8443",
            "--forward-auth-rule",
            "/admin/* admin",
            "--forward-auth-rule",
            "/ read",
        ),
    ),
    "register an application guarding a site": Operation(
        ("/Applications/create", {"name": "Notes", "forwardAuthHosts": "notes.example.com"}),
        ("app", "add", "Notes", "--forward-auth-host", "notes.example.com"),
    ),
    "allow the device authorization grant": Operation(
        ("/Applications/update", {"application": "Wiki", "deviceGrant": "true"}),
        ("app", "update", "Wiki", "--device-grant"),
    ),
}


@dataclass
class Traces:
    """What one run of an operation left behind (actors aside)."""

    operations: list[str] = field(default_factory=list)
    audit: list[tuple[str, str, str, str, list[str]]] = field(default_factory=list)
    notifications: list[tuple[str, bool]] = field(default_factory=list)
    alice_sessions: int = 0
    alice_live_tokens: int = 0
    # Each application's post-logout redirect URIs, and the ``changed`` list of each
    # audited update: the same setting, to the same values, through either door.
    post_logout_uris: dict[str, list[str]] = field(default_factory=dict)
    changed: list[list[str]] = field(default_factory=list)
    # alice's second factors (passkeys, authenticator apps, recovery codes), each
    # application's second-factor policy and each group's requireMfa: what the
    # multi-factor operations change.
    alice_factors: tuple[int, ...] = ()
    mfa_policies: dict[str, str] = field(default_factory=dict)
    require_mfa: dict[str, bool] = field(default_factory=dict)
    # Who may sign in to each application: its policy, groups and permission.
    sign_in: dict[str, tuple[str, list[str], str | None]] = field(default_factory=dict)
    # Each application's forward-auth host names and path rules.
    forward_auth: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    # The mail queued (to whom, which message) and the invitations (address, state).
    mail: list[tuple[str, str]] = field(default_factory=list)
    invitations: list[tuple[str, bool, bool]] = field(default_factory=list)  # revoked, link


@dataclass
class World:
    """The state both doors start from: Wiki, with a back-channel logout URI, holds an
    access and a refresh token of alice, who is signed in; root is an administrator."""

    h: Harness
    alice_id: int
    root_id: int
    root: PassportClient


def make_world(factory: Any) -> World:
    h: Harness = factory("sqlite", "db", key_encryption_key=KEK, smtp_url=SMTP)
    h.ids = seed(h.settings.database_url)  # type: ignore[attr-defined]
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        wiki.backchannel_logout_uri = BACKCHANNEL
    assert h.register("root").status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        root_user = directory.get_user(db, "root")
        directory.grant(db, admin, user=root_user)
        root_id, alice_id = root_user.id, directory.get_user(db, "alice").id
    issued = body(exchange(h, get_code(h)))  # alice signs in, Wiki gets her tokens
    assert "refresh_token" in issued, issued
    root = h.new_client()
    signed_in = root.post("/Account/login", data={"username": "root", "password": STRONG})
    assert signed_in.status_code == 200
    return World(h, alice_id, root_id, root)


def watermark(h: Harness) -> int:
    with h.app.services.db.session() as db:
        return db.scalar(select(func.max(AuditEvent.id))) or 0


def traces_since(world: World, mark: int, called: list[str]) -> tuple[Traces, list[AuditEvent]]:
    with world.h.app.services.db.session() as db:
        rows = list(db.scalars(select(AuditEvent).where(AuditEvent.id > mark).order_by("id")))
        names = {id_: name for id_, name in db.execute(select(Application.id, Application.name))}
        post_logout = {
            name: uris
            for name, uris in db.execute(
                select(Application.name, Application.post_logout_redirect_uris)
            )
        }
        queued = db.scalars(select(LogoutNotification).order_by(LogoutNotification.id)).all()
        alice_factors = tuple(
            db.scalar(
                select(func.count()).select_from(model).where(model.user_id == world.alice_id)
            )
            or 0
            for model in (WebAuthnCredential, TotpCredential, RecoveryCode)
        )
        sessions = db.scalar(
            select(func.count())
            .select_from(LoginSession)
            .where(LoginSession.user_id == world.alice_id)
        )
        tokens = db.scalar(
            select(func.count())
            .select_from(OAuthToken)
            .where(OAuthToken.user_id == world.alice_id, OAuthToken.revoked_at.is_(None))
        )
        traces = Traces(
            operations=list(called),
            audit=[
                (
                    r.event,
                    r.outcome,
                    r.username,
                    r.application,
                    sorted(set(json.loads(r.detail or "{}")) - {"actor"}),
                )
                for r in rows
            ],
            notifications=[(names[n.application_id], n.user_id == world.alice_id) for n in queued],
            alice_sessions=sessions or 0,
            alice_live_tokens=tokens or 0,
            post_logout_uris=post_logout,
            changed=[
                json.loads(r.detail)["changed"]
                for r in rows
                if "changed" in json.loads(r.detail or "{}")
            ],
            alice_factors=alice_factors,
            mfa_policies=dict(db.execute(select(Application.name, Application.mfa_policy)).all()),
            require_mfa=dict(db.execute(select(Group.name, Group.require_mfa)).all()),
            sign_in={
                a.name: (a.sign_in_policy, a.sign_in_groups, a.sign_in_permission)
                for a in db.scalars(select(Application))
            },
            forward_auth={
                a.name: ([r.host for r in a.forward_auth_host_rows], list(a.forward_auth_rules))
                for a in db.scalars(select(Application))
            },
            mail=[
                (m.recipient, m.purpose)
                for m in db.scalars(select(MailMessage).order_by(MailMessage.id))
            ],
            invitations=[
                (
                    i.email,
                    i.revoked_at is not None,
                    bool(db.scalar(select(func.count()).where(EmailLink.invitation_id == i.id))),
                )
                for i in db.scalars(select(Invitation).order_by(Invitation.id))
            ],
        )
        db.expunge_all()
    return traces, rows


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Administration operations run, whoever runs them."""
    called: list[str] = []
    for name, method in list(vars(Administration).items()):
        if name.startswith("_") or not callable(method):
            continue

        def record(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            called.append(_name)
            return _method(*args, **kwargs)

        monkeypatch.setattr(Administration, name, functools.wraps(method)(record))
    return called


def through_the_api(factory: Any, operation: Operation, called: list[str]) -> Traces:
    world = make_world(factory)
    if operation.before:
        operation.before(world.h)
    mark = watermark(world.h)
    called.clear()
    path, params = operation.api
    response = world.root.post(path, data=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    traces, rows = traces_since(world, mark, called)
    for row in rows:  # the administrator, by user id
        assert row.actor_id == world.root_id and "actor" not in json.loads(row.detail or "{}")
    return traces


def through_the_cli(factory: Any, operation: Operation, called: list[str]) -> Traces:
    world = make_world(factory)
    if operation.before:
        operation.before(world.h)
    mark = watermark(world.h)
    called.clear()
    env = {
        "PASSPORT_PUBLIC_URL": world.h.settings.public_url,
        "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
        "PASSPORT_SMTP_URL": SMTP,
    }
    args = [*operation.cli, "--database-url", world.h.settings.database_url]
    result = CliRunner().invoke(cli, args, input=operation.stdin, env=env)
    assert result.exit_code == 0, result.output
    traces, rows = traces_since(world, mark, called)
    for row in rows:  # the operator, by name, in the detail
        assert row.actor_id is None
        assert json.loads(row.detail)["actor"] == f"cli:{getpass.getuser()}"
    return traces


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_the_api_and_the_cli_run_the_same_operation(
    factory: Any, spy: list[str], name: str
) -> None:
    operation = OPERATIONS[name]
    api = through_the_api(factory, operation, spy)
    cli_traces = through_the_cli(factory, operation, spy)
    assert len(api.operations) == 1, api.operations  # one operation per request
    assert api.audit, "every change is audited"
    assert cli_traces == api


def test_ending_access_is_seen_by_the_comparison(factory: Any, spy: list[str]) -> None:
    """The traces that parity compares do tell apart an operation that ends alice's access
    from one that does not (so a door that skipped it would be caught)."""
    ending = through_the_api(factory, OPERATIONS["logout-all"], spy)
    keeping = through_the_api(factory, OPERATIONS["create group"], spy)
    assert (ending.alice_sessions, ending.alice_live_tokens) == (0, 0)
    assert (keeping.alice_sessions, keeping.alice_live_tokens) == (1, 2)
    assert ending.notifications == [("Wiki", True)] and keeping.notifications == []


def test_post_logout_redirect_uris_are_seen_by_the_comparison(factory: Any, spy: list[str]) -> None:
    """The traces hold each application's post-logout redirect URIs and what an update
    changed: a door that set other values, or none, would be caught."""
    setting = through_the_api(factory, OPERATIONS["register post-logout redirect URIs"], spy)
    removing = through_the_api(factory, OPERATIONS["remove the post-logout redirect URIs"], spy)
    adding = through_the_api(
        factory, OPERATIONS["register an application with a post-logout redirect URI"], spy
    )
    assert setting.post_logout_uris["Wiki"] == [
        "https://wiki.example.com/bye",
        "http://127.0.0.1:9/out",
    ]
    assert setting.changed == [["postLogoutRedirectUris"]]
    assert removing.post_logout_uris["Wiki"] == [] and removing.changed == setting.changed
    assert adding.post_logout_uris["Notes"] == ["https://notes.example.com/"]
    assert adding.post_logout_uris["Wiki"] == [SIGNED_OUT]  # the seed's, untouched


def test_second_factors_and_policies_are_seen_by_the_comparison(
    factory: Any, spy: list[str]
) -> None:
    """The traces hold alice's factors, the applications' policies and the groups'
    requireMfa: a door that removed no factor, or set another policy, would be caught."""
    reset = through_the_api(factory, OPERATIONS["reset second factors"], spy)
    kept = through_the_api(factory, OPERATIONS["logout-all"], spy)
    assert reset.alice_factors == (0, 0, 0) and kept.alice_factors == (0, 0, 0)
    world = make_world(factory)
    _give_alice_factors(world.h)
    assert traces_since(world, watermark(world.h), [])[0].alice_factors == (1, 1, 10)
    assert (reset.alice_sessions, reset.alice_live_tokens) == (0, 0)
    assert reset.notifications == [("Wiki", True)]
    policy = through_the_api(factory, OPERATIONS["an application's second-factor policy"], spy)
    assert policy.mfa_policies["Wiki"] == "passkey" and kept.mfa_policies["Wiki"] == "default"
    group = through_the_api(
        factory, OPERATIONS["require a second factor of a group's members"], spy
    )
    assert group.require_mfa == {"Editors": True} and kept.require_mfa == {"Editors": False}


def test_mail_and_invitations_are_seen_by_the_comparison(factory: Any, spy: list[str]) -> None:
    """The traces hold the mail queued and each invitation's state: a door that sent no
    message, or left the link alive, would be caught."""
    invited = through_the_api(factory, OPERATIONS["invite a person into a group"], spy)
    assert invited.mail == [("bob@example.com", "invitation")]
    assert invited.invitations == [("bob@example.com", False, True)]
    revoked = through_the_api(factory, OPERATIONS["revoke an invitation"], spy)
    assert revoked.mail == [] and revoked.invitations == [("bob@example.com", True, False)]
    changed = through_the_api(factory, OPERATIONS["change a user's email address"], spy)
    assert sorted(changed.mail) == [
        ("alice@example.com", "email_changed"),
        ("alice@new.example", "verify_email"),
    ]


def test_sign_in_policies_are_seen_by_the_comparison(factory: Any, spy: list[str]) -> None:
    """The traces hold each application's sign-in policy: a door that set another, or
    none, would be caught."""
    groups = through_the_api(factory, OPERATIONS["who may sign in: members of groups"], spy)
    kept = through_the_api(factory, OPERATIONS["logout-all"], spy)
    assert groups.sign_in["Wiki"] == ("groups", ["Editors"], None)
    assert kept.sign_in["Wiki"] == ("anyone", [], None)
    made = through_the_cli(
        factory, OPERATIONS["register an application with a sign-in policy"], spy
    )
    assert made.sign_in["Notes"] == ("permission", [], "read")


def test_forward_auth_sites_are_seen_by_the_comparison(factory: Any, spy: list[str]) -> None:
    """The traces hold each application's forward-auth hosts and rules: a door that set
    other values, or none, would be caught."""
    guarded = through_the_api(factory, OPERATIONS["guard a site by forward-auth"], spy)
    kept = through_the_api(factory, OPERATIONS["logout-all"], spy)
    assert guarded.forward_auth["Wiki"] == (
        ["wiki.example.com", "wiki.example.com:8443"],
        ["/admin/* admin", "/ read"],
    )
    assert kept.forward_auth["Wiki"] == ([], [])
    assert guarded.changed == [["forwardAuthHosts", "forwardAuthRules"]]
