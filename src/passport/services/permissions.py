"""Effective permissions: the union of direct grants and the user's groups' grants.

A disabled user or a disabled application grants nothing.  In the ``Passport``
application, ``admin`` implies every other right.  Everything is read fresh
from the database on each call, so a revocation takes effect on the next request.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy import union
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


def effective(db: Session, user: User, app: Application) -> list[str]:
    """Names of ``user``'s permissions in ``app``, sorted."""
    if user.disabled or not app.enabled:
        return []
    direct = select(UserPermission.permission_id).where(UserPermission.user_id == user.id)
    via_groups = (
        select(GroupPermission.permission_id)
        .join(GroupMember, GroupMember.group_id == GroupPermission.group_id)
        .where(GroupMember.user_id == user.id)
    )
    ids = union(direct, via_groups).subquery()
    names = db.scalars(
        select(Permission.name)
        .where(Permission.application_id == app.id, Permission.id.in_(select(ids.c[0])))
        .order_by(Permission.name)
    ).all()
    return list(names)


def granted(db: Session, user: User, app: Application, permission: str) -> bool:
    keys = {name_key(n) for n in effective(db, user, app)}
    if app.id == PASSPORT_APP_ID and ADMIN in keys:
        return True
    return name_key(permission) in keys
