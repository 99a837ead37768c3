"""Read-only listings for administrators: users, a user's groups, permissions and
applications, the audit log, an application's permissions and who holds them, its
back-channel logout deliveries.

One place for the queries the Passport API (``Users/list``, ``Audit/list``,
``Grants/holders``), the command line and the admin console show, so that a filter
means the same everywhere.  They decide
nothing and check no right: each adapter checks the right its caller needs first
(``@expose(right=...)``, the console's guard) — as it does before any operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Generic
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import exists
from sqlalchemy import false
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.errors import Invalid
from passport.services.outbound import LOGOUT_MAX_ATTEMPTS
from passport.services.outbound import logout_backoff
from passport.services.permissions import ADMIN
from passport.services.permissions import PASSPORT_APP_ID
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Consent
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import LogoutNotification
from passport.storage.models import OAuthToken
from passport.storage.models import Permission
from passport.storage.models import TotpCredential
from passport.storage.models import User
from passport.storage.models import UserPermission
from passport.storage.models import WebAuthnCredential
from passport.storage.sql import hour_number

MAX_PAGE = 200
DEFAULT_PAGE = 50
T = TypeVar("T")

USER_SORTS: Mapping[str, Any] = {
    "username": User.username_key,
    "id": User.id,
    "created": User.created_at,
}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and where it sits in the whole."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def meta(self) -> dict[str, int]:
        return {"Total": self.total, "Offset": self.offset, "Limit": self.limit}


def page_of(
    db: Session,
    query: Select[Any],
    offset: int | None,
    limit: int | None,
    sort: str | None,
    sortable: Mapping[str, Any],
    *,
    searched: bool = False,
) -> Page[Any]:
    """Apply ``offset``/``limit``/``sort`` (``name`` or ``-name``) and count the total.

    ``searched``: the query's filter reads every row (a ``LIKE '%q%'`` search); the page
    and the count then come from one scan (a window count over the result), not from a
    second scan for the count — about half the time of a search over 100,000 users.
    Not for a cheap filter matching many rows (the disabled ones): the window carries
    every match through the sort, where a separate count reads an index
    (docs/benchmarks.md has both)."""
    start = offset or 0
    size = limit if limit is not None else DEFAULT_PAGE
    if start < 0:
        raise Invalid("offset must be 0 or more.", source="offset", value=start)
    if not 1 <= size <= MAX_PAGE:
        raise Invalid(f"limit must be between 1 and {MAX_PAGE}.", source="limit", value=size)
    key = (sort or next(iter(sortable))).strip()
    column = sortable.get(key.lstrip("-").lower())
    if column is None:
        raise Invalid(
            f"sort must be one of {', '.join(sorted(sortable))} (prefix '-' to reverse).",
            source="sort",
            value=key[:64],
        )
    ordered = query.order_by(column.desc() if key.startswith("-") else column.asc())
    if not searched:
        total = _count(db, query)
        items = list(db.scalars(ordered.offset(start).limit(size)).all())
        return Page(items, total, start, size)
    rows = db.execute(ordered.add_columns(func.count().over()).offset(start).limit(size)).all()
    if rows:
        return Page([row[0] for row in rows], int(rows[0][1]), start, size)
    return Page([], _count(db, query) if start else 0, start, size)


def _count(db: Session, query: Select[Any]) -> int:
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0


@dataclass(frozen=True)
class UserCounts:
    """How many users there are, disabled, and with an unconfirmed address."""

    users: int
    disabled: int
    unverified: int


def user_counts(db: Session) -> UserCounts:
    """The dashboard's counts in one scan of the users (three filtered counts, and the
    page each would fetch, were three scans and three sorts)."""
    unverified = and_(User.email.is_not(None), User.email_verified.is_(False))
    row = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((User.disabled.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((unverified, 1), else_=0)), 0),
        ).select_from(User)
    ).one()
    return UserCounts(int(row[0]), int(row[1]), int(row[2]))


def search_users(
    db: Session,
    q: str | None = None,
    disabled: bool | None = None,
    offset: int | None = None,
    limit: int | None = None,
    sort: str | None = None,
    *,
    unverified: bool | None = None,
    without_second_factor: bool | None = None,
) -> Page[User]:
    """Users whose username, email or display name contains ``q`` (any letter case),
    optionally only the disabled (or enabled) ones, those with an unconfirmed
    address, or those without a second factor.

    Without a second factor means what :attr:`passport.services.factors.FactorSummary.any`
    means (the rule of who proves one at sign-in): no passkey and no authenticator app.
    Recovery codes alone are no second factor there (a way back in, not a way to sign
    in), so neither here.  One statement: NOT EXISTS over the two tables."""
    query = select(User)
    if q:
        needle = q.casefold()
        query = query.where(
            or_(
                User.username_key.contains(needle, autoescape=True),
                User.email_key.contains(needle, autoescape=True),
                func.lower(User.display_name).contains(needle, autoescape=True),
            )
        )
    if disabled is not None:
        query = query.where(User.disabled == disabled)
    if unverified:
        query = query.where(User.email.is_not(None), User.email_verified.is_(False))
    if without_second_factor:
        query = query.where(
            ~exists().where(WebAuthnCredential.user_id == User.id),
            ~exists().where(TotpCredential.user_id == User.id),
        )
    return page_of(db, query, offset, limit, sort, USER_SORTS, searched=bool(q))


@dataclass(frozen=True)
class HeldPermission:
    """A permission a user has been granted in an application, and how: ``direct`` (granted
    to the user) and the groups it comes through.  ``effective``: whether it counts now —
    :mod:`passport.services.permissions`' rule: a disabled user or application holds
    nothing, whatever was granted."""

    name: str
    direct: bool
    groups: tuple[str, ...]
    effective: bool


@dataclass(frozen=True)
class ApplicationPermissions:
    """What a user was granted in one application."""

    application: str
    application_id: int
    enabled: bool
    permissions: list[HeldPermission]


def user_permissions(db: Session, user_id: int) -> list[ApplicationPermissions]:
    """Every permission granted to a user, per application (by name), with how it is held
    (directly, through which groups) and whether it counts now.  The grants are the same
    two sets :mod:`passport.services.permissions` unites (direct grants, the user's groups'
    grants); ``effective`` applies its rule (user and application enabled), so the
    effective names of an application are exactly ``permissions.effective`` there
    (``tests/web/test_console_users.py`` holds the two to it)."""
    user_disabled = bool(db.scalar(select(User.disabled).where(User.id == user_id)))
    direct = db.execute(
        select(Application.id, Permission.name, Permission.name_key)
        .join(Permission, Permission.application_id == Application.id)
        .join(UserPermission, UserPermission.permission_id == Permission.id)
        .where(UserPermission.user_id == user_id)
    ).all()
    through = db.execute(
        select(Application.id, Permission.name, Permission.name_key, Group.name)
        .join(Permission, Permission.application_id == Application.id)
        .join(GroupPermission, GroupPermission.permission_id == Permission.id)
        .join(Group, Group.id == GroupPermission.group_id)
        .join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.user_id == user_id)
    ).all()
    held: dict[tuple[int, str], tuple[str, bool, set[str]]] = {}
    for app_id, name, key in direct:
        held[(app_id, key)] = (name, True, set())
    for app_id, name, key, group in through:
        entry = held.setdefault((app_id, key), (name, False, set()))
        entry[2].add(group)
    app_ids = {app_id for app_id, _ in held}
    apps = (
        db.execute(
            select(Application.id, Application.name, Application.name_key, Application.enabled)
            .where(Application.id.in_(app_ids))
            .order_by(Application.name_key)
        ).all()
        if app_ids
        else []
    )
    shown: list[ApplicationPermissions] = []
    for app_id, app_name, _, enabled in apps:
        rows = sorted(
            (
                HeldPermission(
                    name, is_direct, tuple(sorted(groups)), enabled and not user_disabled
                )
                for (held_app, _key), (name, is_direct, groups) in held.items()
                if held_app == app_id
            ),
            key=lambda p: p.name,
        )
        shown.append(ApplicationPermissions(app_name, app_id, bool(enabled), rows))
    return shown


@dataclass(frozen=True)
class ApplicationUse:
    """What a user has at one application: live tokens, the consent they gave."""

    application: str
    application_id: int
    live_tokens: int
    last_issued: datetime | None
    consent_scope: str | None
    consent_granted: datetime | None


def user_applications(db: Session, user_id: int, now: datetime) -> list[ApplicationUse]:
    """The applications a user signed in to or consented to, by name: how many of their
    tokens there are alive (not revoked, not expired), when the last was issued, and the
    scopes of the consent they gave (if any) — what an administrator's "revoke" ends
    (:meth:`passport.services.administration.Administration.revoke_application`)."""
    tokens = {
        app_id: (live, last)
        for app_id, live, last in db.execute(
            select(
                OAuthToken.application_id,
                func.sum(
                    case(
                        (
                            and_(OAuthToken.revoked_at.is_(None), OAuthToken.expires_at > now),
                            1,
                        ),
                        else_=0,
                    )
                ),
                func.max(OAuthToken.created_at),
            )
            .where(OAuthToken.user_id == user_id)
            .group_by(OAuthToken.application_id)
        ).all()
    }
    consents = {
        row.application_id: row
        for row in db.scalars(select(Consent).where(Consent.user_id == user_id)).all()
    }
    ids = set(tokens) | set(consents)
    if not ids:
        return []
    names = db.execute(
        select(Application.id, Application.name)
        .where(Application.id.in_(ids))
        .order_by(Application.name_key)
    ).all()
    return [
        ApplicationUse(
            name,
            app_id,
            int(tokens.get(app_id, (0, None))[0] or 0),
            tokens.get(app_id, (0, None))[1],
            consents[app_id].scope if app_id in consents else None,
            consents[app_id].granted_at if app_id in consents else None,
        )
        for app_id, name in names
    ]


GROUP_SORTS: Mapping[str, Any] = {"name": Group.name_key, "id": Group.id}


def search_groups(
    db: Session,
    q: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    sort: str | None = None,
) -> Page[Group]:
    """Groups whose name contains ``q`` (any letter case)."""
    return _by_name(db, Group, q, offset, limit, sort, GROUP_SORTS)


def members_of(db: Session, group_id: int) -> list[tuple[int, str]]:
    """A group's members: (id, username), by username."""
    rows = db.execute(
        select(User.id, User.username)
        .join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group_id)
        .order_by(User.username_key)
    ).all()
    return [(row_id, name) for row_id, name in rows]


def member_names_of(db: Session, group_id: int) -> list[str]:
    """A group's members, by username."""
    return [name for _, name in members_of(db, group_id)]


APPLICATION_SORTS: Mapping[str, Any] = {
    "name": Application.name_key,
    "id": Application.id,
    "created": Application.created_at,
}


def search_applications(
    db: Session,
    q: str | None = None,
    offset: int | None = None,
    limit: int | None = None,
    sort: str | None = None,
) -> Page[Application]:
    """Applications whose name contains ``q`` (any letter case)."""
    return _by_name(db, Application, q, offset, limit, sort, APPLICATION_SORTS)


def _by_name(
    db: Session,
    model: type[Group] | type[Application],
    q: str | None,
    offset: int | None,
    limit: int | None,
    sort: str | None,
    sortable: Mapping[str, Any],
) -> Page[Any]:
    """A page of the rows of ``model`` whose name key contains ``q`` (any letter case)."""
    query = select(model)
    if q:
        query = query.where(model.name_key.contains(q.casefold(), autoescape=True))
    return page_of(db, query, offset, limit, sort, sortable, searched=bool(q))


def group_names_of(db: Session, user_id: int) -> list[str]:
    """The groups a user is a member of, by name."""
    return list(
        db.scalars(
            select(Group.name)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(Group.name_key)
        ).all()
    )


def audit_events(
    db: Session,
    *,
    username: str | None = None,
    application: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int | None = None,
    limit: int | None = None,
) -> Page[AuditEvent]:
    """Audit events, newest first, filtered by user, application, event, outcome and
    time range (``since`` inclusive, ``until`` exclusive)."""
    query = audit_query(
        username=username,
        application=application,
        event=event,
        outcome=outcome,
        since=since,
        until=until,
    )
    return page_of(db, query, offset, limit, "-id", {"id": AuditEvent.id})


def audit_query(
    *,
    username: str | None = None,
    application: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEvent]:
    """The audit events these filters select (unordered), for a page or an export."""
    query = select(AuditEvent)
    if username:
        query = query.where(AuditEvent.username == username)
    if application:
        query = query.where(AuditEvent.application == application)
    if event:
        query = query.where(AuditEvent.event == event)
    if outcome:
        query = query.where(AuditEvent.outcome == outcome)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return query


def sign_ins_per_hour(db: Session, now: datetime, hours: int = 24) -> list[tuple[int, int]]:
    """Successful and failed sign-ins in each of the last ``hours`` hours (UTC hours, the
    current one last), oldest first: counted by the database, grouped by the hour
    (:class:`passport.storage.sql.hour_number`), not read row by row."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    first = int(start.timestamp()) // 3600
    hour = hour_number(AuditEvent.at)
    rows = db.execute(
        select(hour, AuditEvent.outcome, func.count())
        .where(
            AuditEvent.event == "login",
            AuditEvent.at >= start,
            AuditEvent.at < start + timedelta(hours=hours),
            AuditEvent.outcome.in_(("success", "failure")),
        )
        .group_by(hour, AuditEvent.outcome)
    ).all()
    buckets = [[0, 0] for _ in range(hours)]
    for number, outcome, count in rows:
        index = int(number) - first
        if 0 <= index < hours:
            buckets[index][0 if outcome == "success" else 1] += int(count)
    return [(ok, failed) for ok, failed in buckets]


TAIL_LIMIT = 100


def audit_after(
    db: Session,
    after: int,
    *,
    username: str | None = None,
    application: str | None = None,
    event: str | None = None,
    outcome: str | None = None,
    limit: int = TAIL_LIMIT,
) -> list[AuditEvent]:
    """The newest events (at most ``limit``, newest first) with an id above ``after``
    that the audit log's filters select: what the console's live tail adds to the page."""
    query = audit_query(username=username, application=application, event=event, outcome=outcome)
    return list(
        db.scalars(query.where(AuditEvent.id > after).order_by(AuditEvent.id.desc()).limit(limit))
    )


# -- permissions and grants ----------------------------------------------------------------------

GRANTS_SHOWN = 100  # direct grants of one permission shown before "and N more"


def permissions_of(db: Session, app_id: int) -> list[Permission]:
    """The permissions an application defines, by name."""
    return list(
        db.scalars(
            select(Permission)
            .where(Permission.application_id == app_id)
            .order_by(Permission.name_key)
        ).all()
    )


@dataclass(frozen=True)
class PermissionGrants:
    """Who was granted one permission directly: users (id, username, disabled) and
    groups (id, name, member count), the first :data:`GRANTS_SHOWN` of each."""

    permission: Permission
    users: list[tuple[int, str, bool]]
    groups: list[tuple[int, str, int]]
    more_users: int
    more_groups: int


def grants_of(db: Session, app_id: int, shown: int = GRANTS_SHOWN) -> list[PermissionGrants]:
    """Each permission of an application with the users and groups it was granted to
    (as granted: a disabled user is listed, marked; :func:`holders_of` says who holds
    it).  Three statements whatever the number of permissions."""
    permissions = permissions_of(db, app_id)
    users: dict[int, list[tuple[int, str, bool]]] = {p.id: [] for p in permissions}
    for permission_id, user_id, username, off in db.execute(
        select(UserPermission.permission_id, User.id, User.username, User.disabled)
        .join(User, User.id == UserPermission.user_id)
        .join(Permission, Permission.id == UserPermission.permission_id)
        .where(Permission.application_id == app_id)
        .order_by(User.username_key)
    ).all():
        users.setdefault(permission_id, []).append((user_id, username, bool(off)))
    members = (
        select(GroupMember.group_id, func.count().label("n"))
        .group_by(GroupMember.group_id)
        .subquery()
    )
    groups: dict[int, list[tuple[int, str, int]]] = {p.id: [] for p in permissions}
    for permission_id, group_id, name, count in db.execute(
        select(GroupPermission.permission_id, Group.id, Group.name, members.c.n)
        .join(Group, Group.id == GroupPermission.group_id)
        .join(Permission, Permission.id == GroupPermission.permission_id)
        .outerjoin(members, members.c.group_id == Group.id)
        .where(Permission.application_id == app_id)
        .order_by(Group.name_key)
    ).all():
        groups.setdefault(permission_id, []).append((group_id, name, int(count or 0)))
    return [
        PermissionGrants(
            p,
            users[p.id][:shown],
            groups[p.id][:shown],
            max(0, len(users[p.id]) - shown),
            max(0, len(groups[p.id]) - shown),
        )
        for p in permissions
    ]


def grants_of_group(db: Session, group_id: int) -> list[tuple[int, str, str]]:
    """What a group was granted: (application id, application name, permission name),
    by application and permission."""
    rows = db.execute(
        select(Application.id, Application.name, Permission.name)
        .join(Permission, Permission.application_id == Application.id)
        .join(GroupPermission, GroupPermission.permission_id == Permission.id)
        .where(GroupPermission.group_id == group_id)
        .order_by(Application.name_key, Permission.name_key)
    ).all()
    return [(app_id, app_name, name) for app_id, app_name, name in rows]


@dataclass(frozen=True)
class HoldingPath:
    """One way a user holds a permission: granted directly (``group`` None) or through
    a group they are a member of; ``permission`` is the one granted — ``admin`` when it
    holds another of Passport's rights by implication."""

    permission: str
    group_id: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Holder:
    user_id: int
    username: str
    paths: tuple[HoldingPath, ...]


@dataclass(frozen=True)
class Holders:
    """A page of the users who hold a permission now, with how each holds it."""

    items: list[Holder]
    total: int
    offset: int
    limit: int
    application_enabled: bool

    @property
    def more(self) -> int:
        """How many holders come after this page."""
        return max(0, self.total - self.offset - len(self.items))


def holders_of(
    db: Session, permission: Permission, offset: int | None = None, limit: int | None = None
) -> Holders:
    """Who holds ``permission`` now, by username, and through what — the rule of
    :mod:`passport.services.permissions` (:func:`~passport.services.permissions.granted`):
    an enabled user granted it directly or a member of a group granted it; in Passport's
    own application ``admin`` implies every right; a disabled application grants
    nothing (then the page is empty and says so).  Four bounded statements: the count,
    the page of users, their direct grants and their groups' grants."""
    app = db.get(Application, permission.application_id)
    enabled = app is not None and app.enabled
    ids = [permission.id]
    if permission.application_id == PASSPORT_APP_ID and permission.name_key != ADMIN:
        ids += db.scalars(
            select(Permission.id).where(
                Permission.application_id == PASSPORT_APP_ID, Permission.name_key == ADMIN
            )
        ).all()
    direct = select(UserPermission.user_id).where(UserPermission.permission_id.in_(ids))
    through = (
        select(GroupMember.user_id)
        .join(GroupPermission, GroupPermission.group_id == GroupMember.group_id)
        .where(GroupPermission.permission_id.in_(ids))
    )
    query = select(User).where(
        User.disabled.is_(False), or_(User.id.in_(direct), User.id.in_(through))
    )
    if not enabled:
        query = query.where(false())
    found: Page[User] = page_of(db, query, offset, limit, "username", USER_SORTS)
    user_ids = [u.id for u in found.items]
    paths: dict[int, list[HoldingPath]] = {i: [] for i in user_ids}
    if user_ids:
        for user_id, name in db.execute(
            select(UserPermission.user_id, Permission.name)
            .join(Permission, Permission.id == UserPermission.permission_id)
            .where(UserPermission.user_id.in_(user_ids), Permission.id.in_(ids))
            .order_by(Permission.name_key)
        ).all():
            paths[user_id].append(HoldingPath(name))
        for user_id, group_id, group, name in db.execute(
            select(GroupMember.user_id, Group.id, Group.name, Permission.name)
            .join(Group, Group.id == GroupMember.group_id)
            .join(GroupPermission, GroupPermission.group_id == Group.id)
            .join(Permission, Permission.id == GroupPermission.permission_id)
            .where(GroupMember.user_id.in_(user_ids), Permission.id.in_(ids))
            .order_by(Group.name_key, Permission.name_key)
        ).all():
            paths[user_id].append(HoldingPath(name, group_id, group))
    holders = [Holder(u.id, u.username, tuple(paths[u.id])) for u in found.items]
    return Holders(holders, found.total, found.offset, found.limit, enabled)


# -- back-channel logout deliveries --------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryStatus:
    """An application's back-channel logout notifications (OpenID Connect Back-Channel
    Logout 1.0 §2.5): ``waiting`` not yet tried, ``failing`` tried and to be tried again,
    ``given_up`` after the last attempt, ``delivered`` since ``since``; the last error
    (an HTTP status or a connection error's kind, never the answer's bytes) and when
    that attempt was made."""

    waiting: int
    failing: int
    given_up: int
    delivered: int
    since: datetime
    last_error: str
    last_error_at: datetime | None


def backchannel_status(
    db: Session, app_id: int, now: datetime, recent: timedelta = timedelta(days=1)
) -> DeliveryStatus:
    """What :class:`DeliveryStatus` says of application ``app_id``: two statements."""
    since = now - recent
    note = LogoutNotification
    pending = note.delivered_at.is_(None)

    def count(*conditions: Any) -> Any:
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    waiting, failing, given_up, delivered = db.execute(
        select(
            count(pending, note.attempts < LOGOUT_MAX_ATTEMPTS, note.last_error == ""),
            count(pending, note.attempts < LOGOUT_MAX_ATTEMPTS, note.last_error != ""),
            count(pending, note.attempts >= LOGOUT_MAX_ATTEMPTS),
            count(note.delivered_at >= since),
        ).where(note.application_id == app_id)
    ).one()
    # A failed attempt set the next one ``logout_backoff(attempts)`` later: when it was
    # made is read back from that (the table keeps no attempt time of its own).
    failures = db.execute(
        select(note.last_error, note.next_attempt_at, note.attempts)
        .where(note.application_id == app_id, pending, note.last_error != "", note.attempts > 0)
        .order_by(note.next_attempt_at.desc())
        .limit(50)
    ).all()
    last_error, last_at = "", None
    for error, next_at, attempts in failures:
        at = next_at - logout_backoff(attempts)
        if last_at is None or at > last_at:
            last_error, last_at = error, at
    return DeliveryStatus(
        int(waiting), int(failing), int(given_up), int(delivered), since, last_error, last_at
    )
