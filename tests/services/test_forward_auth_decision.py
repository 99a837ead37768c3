"""Forward-auth's decision reads every fact in one statement (it is asked on every request
to every guarded site); the rules are those of every other door.  A Hypothesis property,
on every database: for random sign-in policies, memberships, grants, path rules, second
factors, group and server MFA rules and sessions, ``forward_auth.decide`` agrees with
the ORM readings the other doors use — :func:`passport.services.access.admission`,
:meth:`passport.services.factors.Factors.required_level` and
:func:`passport.services.permissions.granted` — and names the user's groups in order."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC
from datetime import datetime
from itertools import count
from typing import Any

from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.services import access
from passport.services import directory
from passport.services import forward_auth
from passport.services import permissions
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.services.forward_auth import Verdict
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import Application
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import ForwardAuthHost
from passport.storage.models import TotpCredential
from passport.storage.models import User
from passport.storage.models import WebAuthnCredential

from support import Harness
from support import user_row

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_names = count()
LENIENT = ["default", "default", "optional", "optional", "mfa", "passkey"]
PATHS = ["/", "/admin", "/admin/x", "/%61dmin/y", "/other"]  # the rule: /admin/* edit
AMRS = ["pwd", "pwd otp mfa", "hwk mfa", "pwd mfa"]

# An enabled user signed in to an enabled site that owes nothing: the explicit examples
# change one thing each.
PLAIN: dict[str, Any] = dict(
    policy=access.ANYONE,
    listed=set(),
    member_of=set(),
    mfa_groups=set(),
    holds=set(),
    app_mfa="optional",
    own_mfa="optional",
    server_mfa="optional",
    passport_right=False,
    passkey=False,
    totp=False,
    disabled=False,
    enabled=True,
    signed_in=True,
    bare=True,
)


def _example(**changes: Any) -> Any:
    return example(**(PLAIN | changes))


def _user(db: Session, disabled: bool) -> User:
    row = user_row(db, prefix="fad", disabled=disabled)
    row.display_name = f"Ünï {row.username}"
    row.email = f"{row.username}@example.test"
    return row


def _session(user: User, amr: str) -> LoginSessionInfo:
    return LoginSessionInfo(
        id_hash="h",
        user_id=user.id,
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=NOW,
        idle_timeout=60,
        remember=False,
        ip="",
        user_agent="",
        sid="s",
        amr=amr,
    )


# Each rule that owes a second factor on its own: a Passport right (with admin_mfa), a
# passkey, an authenticator app, a group that requires MFA, Passport's own policy, the
# site's, the server's through "default"; and who may sign in: a sign-in group held and
# not, a sign-in permission held and not (and the path rule's).
@_example(passport_right=True)
@_example(passkey=True)
@_example(totp=True)
@_example(member_of={1}, mfa_groups={1})
@_example(own_mfa="mfa")
@_example(app_mfa="passkey", bare=False)
@_example(own_mfa="default", app_mfa="default", server_mfa="mfa")
@_example(policy=access.GROUPS, listed={0}, member_of={0, 2})
@_example(policy=access.GROUPS, listed={1}, member_of={0, 2})
@_example(policy=access.PERMISSION, holds={"enter", "edit"})
@_example(policy=access.PERMISSION, holds={"edit"})
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    policy=st.sampled_from([access.ANYONE] * 2 + [access.GROUPS, access.PERMISSION, "other"]),
    listed=st.sets(st.integers(0, 2)),
    member_of=st.sets(st.integers(0, 2)),
    mfa_groups=st.sets(st.integers(0, 2)),
    holds=st.sets(st.sampled_from(["enter", "edit"])),
    # mostly policies that leave the second factor to the user's own rules
    app_mfa=st.sampled_from(LENIENT),
    own_mfa=st.sampled_from(LENIENT),
    server_mfa=st.sampled_from(["optional"] * 3 + ["mfa", "passkey"]),
    passport_right=st.booleans(),
    passkey=st.sampled_from([False] * 3 + [True]),
    totp=st.sampled_from([False] * 3 + [True]),
    # mostly an enabled user, signed in, of an enabled site: the later rules get examples
    disabled=st.sampled_from([False] * 7 + [True]),
    enabled=st.sampled_from([True] * 7 + [False]),
    signed_in=st.sampled_from([True] * 7 + [False]),
    bare=st.booleans(),
)
def test_the_one_statement_agrees_with_every_other_doors_rules(
    harness: Harness,
    policy: str,
    listed: set[int],
    member_of: set[int],
    mfa_groups: set[int],
    holds: set[str],
    app_mfa: str,
    own_mfa: str,
    server_mfa: str,
    passport_right: bool,
    passkey: bool,
    totp: bool,
    disabled: bool,
    enabled: bool,
    signed_in: bool,
    bare: bool,
) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        who = _user(db, disabled)
        teams = [directory.create_group(db, f"Team{next(_names)}") for _ in range(3)]
        for index in member_of:
            directory.add_member(db, teams[index], who)
        for index in mfa_groups:
            teams[index].require_mfa = True
        app, _ = directory.create_application(db, NOW, f"Site{next(_names)}")
        app.enabled = enabled
        app.mfa_policy = app_mfa
        app.sign_in_policy = policy
        app.sign_in_permission = "enter" if policy == access.PERMISSION else None
        app.forward_auth_rules = ["/admin/* edit"]
        host = f"site{next(_names)}.example.test"
        db.add(ForwardAuthHost(application_id=app.id, host=host if bare else host + ":8443"))
        for index in listed:
            db.add(ApplicationSignInGroup(application_id=app.id, group_id=teams[index].id))
        for name in ("enter", "edit"):
            made = directory.create_permission(db, app, name)
            if name in holds:
                directory.grant(db, made, user=who)
        passport = db.get(Application, PASSPORT_APP_ID)
        assert passport is not None
        passport.mfa_policy = own_mfa
        if passport_right:
            right = directory.find_permission(db, passport, "users:read")
            assert right is not None
            directory.grant(db, right, user=who)
        if passkey:
            db.add(
                WebAuthnCredential(
                    user_id=who.id,
                    credential_id_hash=f"{next(_names):064d}",
                    credential_id="c",
                    public_key="k",
                    created_at=NOW,
                )
            )
        if totp:
            db.add(TotpCredential(user_id=who.id, secret="s", created_at=NOW))
        db.flush()

        for rule_path, amr, admin_mfa in itertools.product(PATHS, AMRS, (False, True)):
            config = dataclasses.replace(
                harness.settings, mfa_policy=server_mfa, admin_mfa=admin_mfa
            )
            asked = forward_auth.original("GET", "https", host + ":8443", rule_path + "?q=1")
            assert asked is not None
            session = _session(who, amr) if signed_in else None
            decision = forward_auth.decide(db, config, asked, session)
            expected = _other_doors(harness, db, config, app, who, rule_path, amr, signed_in)
            assert decision.verdict is expected, (rule_path, amr, decision)
            assert decision.application == app.name
            if expected is Verdict.ALLOW:
                assert decision.username == who.username
                assert decision.display_name == who.display_name
                assert decision.email == who.email
                assert decision.groups == sorted(teams[index].name for index in member_of)
        # Passport's own application is shared by every example: back as it was.
        passport.mfa_policy = "default"
        db.flush()


def _other_doors(
    harness: Harness,
    db: Session,
    config: Settings,
    app: Application,
    who: User,
    path: str,
    amr: str,
    signed_in: bool,
) -> Verdict:
    """The verdict the other doors' readings give, one rule after another."""
    if not signed_in or who.disabled:
        return Verdict.SIGN_IN
    if not access.admission(db, app, who).allowed:
        return Verdict.FORBIDDEN
    if path not in ("/", "/other") and not permissions.granted(db, who.id, app.id, "edit"):
        return Verdict.FORBIDDEN
    owed = reading(config, harness.app.services.throttle, db).required_level(
        who.id, app.mfa_policy, None
    )
    return Verdict.STEP_UP if level_of(amr) < owed else Verdict.ALLOW


def test_an_unregistered_host_is_no_site_whoever_asks(harness: Harness) -> None:
    asked = forward_auth.original("GET", "https", "nobody.example.test", "/")
    assert asked is not None
    with harness.app.services.db.session() as db:
        decision = forward_auth.decide(db, harness.settings, asked, None)
    assert decision.verdict is Verdict.UNKNOWN_SITE
