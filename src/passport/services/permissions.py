"""Effective permissions: the union of direct grants and the user's groups' grants.

A disabled user or a disabled application grants nothing.  In the ``Passport``
application, ``admin`` implies every other right.  Everything is read fresh
from the database on each call (one Core SELECT), so a revocation takes effect
on the next request.
"""

from __future__ import annotations

from sqlalchemy import BindParameter
from sqlalchemy import Connection
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import exists
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.services.applications import name_key
from passport.storage.models import Application
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission

PASSPORT_APP_ID = 1
ADMIN = "admin"

_USER: BindParameter[int] = bindparam("user_id")
# The user is enabled and holds the permission, directly or through a group.
_HOLDS = and_(
    exists().where(User.id == _USER, User.disabled.is_(False)),
    or_(
        Permission.id.in_(
            select(UserPermission.permission_id).where(UserPermission.user_id == _USER)
        ),
        Permission.id.in_(
            select(GroupPermission.permission_id)
            .join(GroupMember, GroupMember.group_id == GroupPermission.group_id)
            .where(GroupMember.user_id == _USER)
        ),
    ),
)
_HELD = and_(
    Permission.application_id == bindparam("app_id"),
    exists().where(Application.id == Permission.application_id, Application.enabled.is_(True)),
    _HOLDS,
)
_EFFECTIVE = select(Permission.name).where(_HELD).order_by(Permission.name)
_GRANTED = (
    select(Permission.id)
    .where(_HELD, Permission.name_key.in_(bindparam("keys", expanding=True)))
    .limit(1)
)


def effective(db: Session | Connection, user_id: int, app_id: int) -> list[str]:
    """Names of the user's permissions in the application, sorted."""
    rows = db.execute(_EFFECTIVE, {"user_id": user_id, "app_id": app_id})
    return [str(name) for (name,) in rows]


# ``granted`` and the application looked up by name in one statement (a hot path of the
# Passport API, ``Permission/check``): the application's id, and whether the user holds
# the permission there — the same rule as ``_HELD``, correlated to that application.
_GRANTED_BY_NAME = select(
    Application.id,
    exists(
        select(Permission.id).where(
            Permission.application_id == Application.id,
            Application.enabled.is_(True),
            _HOLDS,
            or_(
                Permission.name_key == bindparam("key"),
                and_(Application.id == PASSPORT_APP_ID, Permission.name_key == ADMIN),
            ),
        )
    ),
).where(Application.name_key == bindparam("app_key"))


def granted_by_name(
    db: Session | Connection, user_id: int | None, application: str, permission: str
) -> bool | None:
    """Whether user ``user_id`` (None: nobody) holds ``permission`` in the application
    named ``application`` (any letter case) — :func:`granted`'s rule — or None when
    there is no such application; one statement."""
    row = db.execute(
        _GRANTED_BY_NAME,
        {
            "user_id": 0 if user_id is None else user_id,
            "key": name_key(permission),
            "app_key": name_key(application),
        },
    ).first()
    return None if row is None else bool(row[1]) and user_id is not None


def granted(db: Session | Connection, user_id: int, app_id: int, permission: str) -> bool:
    keys = [name_key(permission)]
    if app_id == PASSPORT_APP_ID:
        keys.append(ADMIN)
    row = db.execute(_GRANTED, {"user_id": user_id, "app_id": app_id, "keys": keys}).first()
    return row is not None
