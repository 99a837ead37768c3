"""Who may sign in to an application: the one decision behind every door that admits a
user to one.

An application's ``sign_in_policy`` (migration 0024) is ``anyone`` (the default:
every enabled user), ``groups`` (members of the groups listed for it,
``application_sign_in_groups``) or ``permission`` (holders of its permission named
``sign_in_permission``, directly or through a group — :mod:`passport.services.permissions`
decides, so ``admin`` of Passport's own application counts there as everywhere).
A disabled user or a disabled application is never admitted, and a policy this code
does not know admits nobody (fail closed: a value written by a newer version, or by
hand).

Every path that admits a user to an application asks :func:`admission` — the OpenID
Connect authorization endpoint, the token endpoint's code, refresh and device grants,
``Client/validateSession``, forward-auth — and only it: the API, the CLI and the
console show and change the policy, they never decide.  Read fresh on each call (one
statement), so a user removed from a group gets no new tokens from the next request on.
Whether the sign-in was strong enough (a second factor) is the application's
``mfa_policy``, decided apart by :mod:`passport.services.factors`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import exists
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.services import permissions
from passport.services.audit import AuditRecord
from passport.storage.models import Application
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import GroupMember
from passport.storage.models import User

ANYONE = "anyone"
GROUPS = "groups"
PERMISSION = "permission"
POLICIES = (ANYONE, GROUPS, PERMISSION)


@dataclass(frozen=True)
class Admission:
    """Whether a user may sign in to an application, and if not, why — in words fit for
    the user's page and the audit record (names no group or permission: a refused user
    learns nothing of how the application is configured)."""

    allowed: bool
    reason: str = ""


ADMITTED = Admission(True)
NOT_ALLOWED = Admission(False, "Your account may not sign in to this application.")
UNAVAILABLE = Admission(False, "This application is not available.")


def admission(db: Session | Connection, app: Application, user: User) -> Admission:
    """May ``user`` sign in to ``app`` now?"""
    return admission_rule(
        app_enabled=app.enabled,
        user_disabled=user.disabled,
        policy=app.sign_in_policy,
        permission=app.sign_in_permission,
        in_sign_in_group=lambda: member_of_sign_in_group(db, app.id, user.id),
        holds=lambda name: permissions.granted(db, user.id, app.id, name),
    )


def admission_rule(
    *,
    app_enabled: bool,
    user_disabled: bool,
    policy: str,
    permission: str | None,
    in_sign_in_group: Callable[[], bool],
    holds: Callable[[str], bool],
) -> Admission:
    """The rule itself, over facts read by the caller: :func:`admission` reads them with
    the ORM; forward-auth's hot path (:func:`passport.services.forward_auth.decide`) reads
    them in the statement that finds the site.  Membership and permission are asked
    lazily, only for the policy that needs them."""
    if not app_enabled:
        return UNAVAILABLE
    if user_disabled:
        return NOT_ALLOWED
    if policy == ANYONE:
        return ADMITTED
    if policy == GROUPS:
        return ADMITTED if in_sign_in_group() else NOT_ALLOWED
    if policy == PERMISSION and permission:
        return ADMITTED if holds(permission) else NOT_ALLOWED
    return NOT_ALLOWED


def member_of_sign_in_group(db: Session | Connection, app_id: int, user_id: int) -> bool:
    """Whether the user is in one of the groups the application lets sign in."""
    return bool(
        db.scalar(
            select(
                exists().where(
                    GroupMember.user_id == user_id,
                    GroupMember.group_id.in_(
                        select(ApplicationSignInGroup.group_id).where(
                            ApplicationSignInGroup.application_id == app_id
                        )
                    ),
                )
            )
        )
    )


REFUSED_EVENT = "sign_in_refused"


def refusal_record(
    app: Application,
    user: User,
    refused: Admission,
    *,
    door: str,
    at: datetime,
    ip: str = "",
    user_agent: str = "",
) -> AuditRecord:
    """The audit record of a door that refused ``user`` (outcome ``failure``): which
    application, which door (``authorize``, ``token``, ``refresh``, ``device``,
    ``validateSession``…), the reason shown; never a code, token or secret.  Written
    durable by the doors whose request is rolled back on the refusal."""
    return AuditRecord(
        REFUSED_EVENT,
        "failure",
        at,
        user_id=user.id,
        username=user.username,
        application=app.name,
        ip=ip,
        user_agent=user_agent,
        detail=json.dumps(
            {"door": door, "policy": app.sign_in_policy, "reason": refused.reason},
            ensure_ascii=False,
        ),
    )
