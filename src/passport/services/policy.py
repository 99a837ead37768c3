"""Who may act on what: the one rule against privilege escalation by delegation.

Passport governs itself with the permissions of its own application (``admin``,
``users:write``, ``groups:write``, ``apps:write``, ...), so parts of the
administration can be delegated.  A delegated right must never be a way up:

* nobody may act on an account or group that holds Passport rights they do not
  hold themselves (resetting an administrator's password, then signing in as
  them; putting oneself into a group that holds ``admin``);
* the Passport application, and each of its permissions, is protected from
  everyone but ``admin`` (its origins are trusted by the administration API).

``admin`` implies every right.  The rights a target holds are its Passport
permissions as granted — a user's direct grants and their groups', a group's own
grants — whether or not the account is disabled today: enabling a disabled
administrator is acting on an administrator.

:func:`ensure_may_act_on` decides for the API, the CLI and every later interface
(OWASP ASVS 5.0 V8.2.2, V8.3.1: access control enforced on the server, one
trusted place; security checklist item 39).  :func:`refusal` is the decision
itself, without a database, so that its table can be read and tested.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.errors import Forbidden
from passport.services.permissions import ADMIN
from passport.services.permissions import PASSPORT_APP_ID
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission

FORBIDDEN = 403


USERS_READ = "users:read"
USERS_WRITE = "users:write"
GROUPS_WRITE = "groups:write"
APPS_WRITE = "apps:write"


@dataclass(frozen=True)
class Actor:
    """Who acts: an administrator (a user of Passport) or the machine's operator.

    ``rights`` are the name keys of the Passport permissions the actor holds;
    ``label`` names the actor in the audit log when there is no user id.
    """

    user_id: int | None
    label: str
    rights: frozenset[str]

    @classmethod
    def operator(cls, name: str) -> Actor:
        """The command line: whoever can read the database credentials has every right."""
        return cls(None, f"cli:{name}", frozenset({ADMIN}))

    @classmethod
    def administrator(cls, db: Session, user: User) -> Actor:
        """A signed-in user, with the Passport rights they hold now."""
        return cls(user.id, f"user:{user.id}", rights_of_user(db, user.id))

    def holds(self, right: str) -> bool:
        return ADMIN in self.rights or right.casefold() in self.rights


def rights_of_user(db: Session | Connection, user_id: int) -> frozenset[str]:
    """The Passport permissions granted to the user, directly or through a group."""
    direct = select(UserPermission.permission_id).where(UserPermission.user_id == user_id)
    through_groups = (
        select(GroupPermission.permission_id)
        .join(GroupMember, GroupMember.group_id == GroupPermission.group_id)
        .where(GroupMember.user_id == user_id)
    )
    rows = db.scalars(
        select(Permission.name_key).where(
            Permission.application_id == PASSPORT_APP_ID,
            or_(Permission.id.in_(direct), Permission.id.in_(through_groups)),
        )
    )
    return frozenset(rows)


def rights_of_group(db: Session, group_id: int) -> frozenset[str]:
    """The Passport permissions granted to the group (and so to each of its members)."""
    rows = db.scalars(
        select(Permission.name_key)
        .join(GroupPermission, GroupPermission.permission_id == Permission.id)
        .where(Permission.application_id == PASSPORT_APP_ID, GroupPermission.group_id == group_id)
    )
    return frozenset(rows)


def refusal(
    actor_rights: Collection[str], target_rights: Collection[str], *, protected: bool = False
) -> str | None:
    """Why an actor holding ``actor_rights`` may not act on a target holding
    ``target_rights`` (``protected``: Passport itself or one of its permissions),
    or None when they may."""
    if ADMIN in actor_rights:
        return None
    if protected:
        return "only an administrator holding 'admin' may change Passport itself"
    missing = sorted(set(target_rights) - set(actor_rights))
    if missing:
        return "it holds Passport rights that you do not hold (" + ", ".join(missing) + ")"
    return None


Target = User | Group | Application | Permission


def hold_rights_still(db: Session) -> None:
    """Serialise the decisions of the escalation rule with the changes they depend on.

    The rule reads the rights a target holds now; an administrator's change that raises
    them (a grant, a membership) could otherwise commit between that read and the
    operation's own commit — a delegate's password reset checked while the user held
    nothing, committed after they were made an administrator (a race an outside review
    won on PostgreSQL).  Every check of the rule and every change that goes through it
    first locks one row, Passport's own application (``FOR UPDATE``, held to the end of
    the transaction); under READ COMMITTED the check that follows sees whatever the
    transaction it waited for committed.  SQLite needs nothing: its writers already run
    one at a time (``BEGIN IMMEDIATE``).  Administrative writes are rare; queuing them
    costs nothing the users of Passport feel (sign-ins and tokens never take this lock)."""
    db.execute(select(Application.id).where(Application.id == PASSPORT_APP_ID).with_for_update())


def ensure_may_act_on(db: Session, actor: Actor, target: Target, source: str) -> None:
    """Raise a 403 ClientError unless ``actor`` may change ``target`` (see the module);
    decided under :func:`hold_rights_still`."""
    hold_rights_still(db)
    if isinstance(target, User):
        kind, name = "user", target.username
        reason = refusal(actor.rights, rights_of_user(db, target.id))
    elif isinstance(target, Group):
        kind, name = "group", target.name
        reason = refusal(actor.rights, rights_of_group(db, target.id))
    elif isinstance(target, Application):
        kind, name = "application", target.name
        reason = refusal(actor.rights, (), protected=target.id == PASSPORT_APP_ID)
    else:
        kind, name = "permission", target.name
        reason = refusal(actor.rights, (), protected=target.application_id == PASSPORT_APP_ID)
    if reason is not None:
        raise Forbidden(
            f"You may not change {kind} '{name}': {reason}.",
            source=source,
            value=name,
        )


def ensure_may_invite(
    db: Session, actor: Actor, groups: Iterable[Group], source: str = "groups"
) -> None:
    """Raise a 403 ClientError unless ``actor`` may invite a person into ``groups``: the
    right to make users, and for each group the right to change its members and the
    escalation rule (the invited person would hold the group's Passport rights).
    Checked when inviting, resending and revoking, and again when the person accepts,
    with the inviter as they are then (:meth:`Lifecycle.accept_invitation`)."""
    ensure_right(actor, USERS_WRITE)
    for group in groups:
        ensure_right(actor, GROUPS_WRITE)
        ensure_may_act_on(db, actor, group, source)


def ensure_right(actor: Actor, right: str) -> None:
    """Raise a 403 ClientError unless the actor holds the Passport permission ``right``."""
    if not actor.holds(right):
        raise Forbidden(
            f"You need the Passport permission '{right}' for this.",
            source="permission",
            value=right,
        )


def ensure_not_self(actor: Actor, user: User) -> None:
    """Administrators cannot lock themselves out (disable or delete their own account)."""
    if actor.user_id is not None and actor.user_id == user.id:
        raise Forbidden(
            "Administrators cannot do this to their own account; ask another administrator.",
            source="username",
            value=user.username,
        )
