"""Administration of users, groups and memberships, and reading the audit log.

Reading users and groups needs ``users:read``; changing users ``users:write``;
changing groups and memberships ``groups:write``; the audit log ``audit:read``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from passport.api import API
from passport.errors import INVALID
from passport.errors import ClientError
from passport.errors import required
from passport.services import directory
from passport.services.accounts import validate_display_name
from passport.services.accounts import validate_email
from passport.services.identity import identity_of
from passport.services.passwords import check_policy
from passport.storage.models import Application
from passport.storage.models import AuditEvent
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import LogoutNotification
from passport.storage.models import User
from passport.web.controller import Controller
from passport.web.controller import not_found
from passport.web.registry import expose

TEXT = {
    "username": 64,
    "name": 100,
    "group": 100,
    "q": 100,
    "description": 2000,
    "email": 254,
    "displayName": 128,
    "event": 64,
    "application": 100,
    "since": 40,
    "until": 40,
    "sort": 32,
}
READ = (400, 401, 403, 404)
WRITE = (400, 401, 403, 404, 409)


class _UserAdmin(Controller):
    def _user(self, ref: str | None) -> User:
        user = directory.find_user(self.ctx.db, ref)
        if user is None:
            raise not_found("user", "username", ref)
        return user

    def _group(self, ref: str | None) -> Group:
        group = directory.find_group(self.ctx.db, ref)
        if group is None:
            raise not_found("group", "group", ref)
        return group

    def _not_self(self, actor: User, user: User) -> None:
        if actor.id == user.id:
            raise ClientError(
                "Administrators cannot do this to their own account; ask another administrator.",
                source="username",
                value=user.username,
                number=403,
            )


@API.controller("Users")
class UsersController(_UserAdmin):
    @expose("POST", secrets=("password",), max_length=TEXT, statuses=WRITE)
    def create(
        self, username: str | None, password: str | None, email: str | None, displayName: str | None
    ) -> dict[str, Any]:
        """Create a user (also when self-registration is switched off)."""
        actor = self.require_right("users:write")
        user = self.accounts().register(
            self.caller, username, password, email, displayName, by_admin=True
        )
        self.admin_audit(actor, "user_create", {}, user=user)
        return {"User": directory.user_json(user)}

    @expose("GET", max_length=TEXT, statuses=READ)
    def get(self, username: str | None) -> dict[str, Any]:
        """One user, by id or username, with their groups."""
        self.require_right("users:read")
        user = self._user(username)
        groups = self.ctx.db.scalars(
            select(Group.name)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id)
            .order_by(Group.name_key)
        ).all()
        return {"User": directory.user_json(user), "Groups": list(groups)}

    @expose("GET", max_length=TEXT, statuses=READ)
    def list(
        self,
        q: str | None,
        disabled: bool | None,
        offset: int | None,
        limit: int | None,
        sort: str | None,
    ) -> dict[str, Any]:
        """Users, filtered by ``q`` (part of username, email or display name) and ``disabled``."""
        self.require_right("users:read")
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
        items, meta = self.page(
            query,
            offset,
            limit,
            sort,
            {"username": User.username_key, "id": User.id, "created": User.created_at},
        )
        return {"Items": [directory.user_json(u) for u in items], **meta}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def update(
        self, username: str | None, email: str | None, displayName: str | None
    ) -> dict[str, Any]:
        """Change a user's email or display name (empty email removes it)."""
        actor = self.require_right("users:write")
        user = self._user(username)
        if email is not None:
            mail = validate_email(email)
            with directory.unique(
                self.ctx.db, "This email address is already registered.", "email", mail
            ):
                user.email, user.email_key = mail, mail.casefold() if mail else None
        if displayName is not None:
            user.display_name = validate_display_name(displayName)
        self.ctx.app.sessions.refresh_identity(identity_of(user))
        self.admin_audit(actor, "user_update", {}, user=user)
        return {"User": directory.user_json(user)}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def setDisabled(self, username: str | None, disabled: bool | None) -> dict[str, Any]:
        """Disable (ends all their sessions, grants nothing) or re-enable a user."""
        actor = self.require_right("users:write")
        user = self._user(username)
        if disabled is None:
            raise required("disabled", "disabled must be true or false.")
        self._not_self(actor, user)
        directory.set_disabled(self.ctx.db, self.ctx.app.sessions, user, disabled)
        if disabled:
            self.ctx.app.notify_logout(self.ctx.db, user)
        self.admin_audit(actor, "user_disable" if disabled else "user_enable", {}, user=user)
        return {"User": directory.user_json(user)}

    @expose("POST", secrets=("password",), max_length=TEXT, statuses=WRITE)
    def resetPassword(self, username: str | None, password: str | None) -> dict[str, Any]:
        """Set a new password for a user; all their sessions end."""
        actor = self.require_right("users:write")
        user = self._user(username)
        if not password:
            raise required("password", "Password must be specified.")
        text = check_policy(
            password,
            username=user.username,
            min_length=self.ctx.settings.password_min_length,
            source="password",
        )
        user.password_hash = self.ctx.app.passwords.hash(text)
        user.password_changed_at = self.ctx.now
        self.ctx.app.sessions.remove_for_user(user.id, self.ctx.db)
        self.admin_audit(actor, "user_reset_password", {}, user=user)
        return {"User": directory.user_json(user)}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def logoutAll(self, username: str | None) -> dict[str, Any]:
        """End every session of a user."""
        actor = self.require_right("users:write")
        user = self._user(username)
        ended = self.ctx.app.sessions.remove_for_user(user.id, self.ctx.db)
        self.ctx.app.notify_logout(self.ctx.db, user)
        self.admin_audit(actor, "user_logout_all", {"ended": ended}, user=user)
        return {"Ended": ended}

    @expose("GET", max_length=TEXT, statuses=READ)
    def logoutNotifications(self, username: str | None) -> dict[str, Any]:
        """Back-channel logout notifications for a user: which applications heard, when."""
        self.require_right("users:read")
        user = self._user(username)
        rows = self.ctx.db.execute(
            select(LogoutNotification, Application.name)
            .join(Application, Application.id == LogoutNotification.application_id)
            .where(LogoutNotification.user_id == user.id)
            .order_by(LogoutNotification.id.desc())
            .limit(100)
        ).all()
        return {
            "Items": [
                {
                    "Application": name,
                    "Created": n.created_at.isoformat(),
                    "Delivered": n.delivered_at.isoformat() if n.delivered_at else None,
                    "Attempts": n.attempts,
                    "LastError": n.last_error,
                }
                for n, name in rows
            ]
        }

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def delete(self, username: str | None) -> dict[str, Any]:
        """Delete a user with their sessions, memberships and grants (the audit log stays)."""
        actor = self.require_right("users:write")
        user = self._user(username)
        self._not_self(actor, user)
        self.admin_audit(actor, "user_delete", {}, user=user)
        directory.delete_user(self.ctx.db, self.ctx.app.sessions, user)
        return {"Deleted": user.username}


@API.controller("Groups")
class GroupsController(_UserAdmin):
    @expose("POST", max_length=TEXT, statuses=WRITE)
    def create(self, name: str | None, description: str | None) -> dict[str, Any]:
        """Create a group."""
        actor = self.require_right("groups:write")
        group = directory.create_group(self.ctx.db, name, description or "")
        self.admin_audit(actor, "group_create", {"group": group.name})
        return {"Group": directory.group_json(group, 0)}

    @expose("GET", max_length=TEXT, statuses=READ)
    def get(self, group: str | None) -> dict[str, Any]:
        """One group and its members."""
        self.require_right("users:read")
        found = self._group(group)
        members = self.ctx.db.scalars(
            select(User.username)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == found.id)
            .order_by(User.username_key)
        ).all()
        return {"Group": directory.group_json(found, len(members)), "Members": list(members)}

    @expose("GET", max_length=TEXT, statuses=READ)
    def list(
        self, q: str | None, offset: int | None, limit: int | None, sort: str | None
    ) -> dict[str, Any]:
        """Groups, filtered by ``q`` (part of the name), paginated, sorted."""
        self.require_right("users:read")
        query = select(Group)
        if q:
            query = query.where(Group.name_key.contains(q.casefold(), autoescape=True))
        items, meta = self.page(
            query, offset, limit, sort, {"name": Group.name_key, "id": Group.id}
        )
        return {"Items": [directory.group_json(g) for g in items], **meta}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def update(
        self, group: str | None, name: str | None, description: str | None
    ) -> dict[str, Any]:
        """Rename a group or change its description."""
        actor = self.require_right("groups:write")
        found = self._group(group)
        if name is not None:
            directory.rename_group(self.ctx.db, found, name)
        if description is not None:
            found.description = description
        self.admin_audit(actor, "group_update", {"group": found.name})
        return {"Group": directory.group_json(found)}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def delete(self, group: str | None) -> dict[str, Any]:
        """Delete a group with its memberships and grants (the users stay)."""
        actor = self.require_right("groups:write")
        found = self._group(group)
        self.ctx.db.delete(found)
        self.ctx.db.flush()
        self.admin_audit(actor, "group_delete", {"group": found.name})
        return {"Deleted": found.name}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def addMember(self, group: str | None, username: str | None) -> dict[str, Any]:
        """Put a user in a group."""
        actor = self.require_right("groups:write")
        found, user = self._group(group), self._user(username)
        added = directory.add_member(self.ctx.db, found, user)
        self.admin_audit(actor, "group_add_member", {"group": found.name}, user=user)
        return {"Changed": added}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def removeMember(self, group: str | None, username: str | None) -> dict[str, Any]:
        """Take a user out of a group."""
        actor = self.require_right("groups:write")
        found, user = self._group(group), self._user(username)
        removed = directory.remove_member(self.ctx.db, found, user)
        self.admin_audit(actor, "group_remove_member", {"group": found.name}, user=user)
        return {"Changed": removed}


def _time(value: str | None, source: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ClientError(
            f"{source} must be an ISO 8601 time like 2026-01-31T12:00:00Z.",
            source=source,
            value=value,
            number=INVALID,
        ) from None
    if moment.tzinfo is None:
        raise ClientError(
            f"{source} must carry a time zone (e.g. Z).", source=source, value=value, number=INVALID
        )
    return moment


@API.controller("Audit")
class AuditController(_UserAdmin):
    @expose("GET", max_length=TEXT, statuses=READ)
    def list(
        self,
        username: str | None,
        application: str | None,
        event: str | None,
        since: str | None,
        until: str | None,
        offset: int | None,
        limit: int | None,
    ) -> dict[str, Any]:
        """Audit events, newest first, filtered by user, application, event and time range."""
        self.require_right("audit:read")
        query = select(AuditEvent)
        if username:
            query = query.where(AuditEvent.username == username)
        if application:
            query = query.where(AuditEvent.application == application)
        if event:
            query = query.where(AuditEvent.event == event)
        start, end = _time(since, "since"), _time(until, "until")
        if start:
            query = query.where(AuditEvent.at >= start)
        if end:
            query = query.where(AuditEvent.at < end)
        items, meta = self.page(query, offset, limit, "-id", {"id": AuditEvent.id})
        return {
            "Items": [
                {
                    "ID": e.id,
                    "At": e.at.isoformat(),
                    "Event": e.event,
                    "Outcome": e.outcome,
                    "UserID": e.user_id,
                    "Username": e.username,
                    "ActorID": e.actor_id,
                    "Application": e.application,
                    "IP": e.ip,
                    "UserAgent": e.user_agent,
                    "Detail": e.detail,
                }
                for e in items
            ],
            **meta,
        }
