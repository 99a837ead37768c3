"""Administration of users, groups and memberships, and reading the audit log.

Reading users, their second factors and groups needs ``users:read``; changing users
and resetting their second factors ``users:write``;
changing groups and memberships ``groups:write``; the audit log ``audit:read``.
Changes are :mod:`passport.services.administration`'s operations: a delegated
right never reaches an account or group holding Passport rights the caller lacks.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from sqlalchemy import select

from passport.api import API
from passport.api.shapes import admin_session_json
from passport.api.shapes import factors_json
from passport.api.shapes import group_json
from passport.api.shapes import invitation_json
from passport.api.shapes import user_json
from passport.errors import Invalid
from passport.services import directory
from passport.services import listings
from passport.services.lifecycle import invited_groups
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import Invitation
from passport.storage.models import LogoutNotification
from passport.storage.models import User
from passport.web.controller import Controller
from passport.web.controller import split_list
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
    "session": 64,
}
READ = (400, 401, 403, 404)
WRITE = (400, 401, 403, 404, 409)


class _UserAdmin(Controller):
    def _user(self, ref: str | None) -> User:
        return directory.get_user(self.ctx.db, ref)

    def _group(self, ref: str | None) -> Group:
        return directory.get_group(self.ctx.db, ref)


@API.controller("Users")
class UsersController(_UserAdmin):
    @expose("POST", right="users:write", secrets=("password",), max_length=TEXT, statuses=WRITE)
    def create(
        self,
        username: str | None,
        password: str | None,
        email: str | None,
        displayName: str | None,
        confirmAddress: bool | None,
    ) -> dict[str, Any]:
        """Create a user (also when self-registration is switched off).  Their address is
        confirmed by a link sent to it, unless ``confirmAddress`` is false: the
        administrator vouches for it (confirmed at once, no mail)."""
        user = self.administration().create_user(
            username,
            password,
            email,
            displayName,
            confirm_address=confirmAddress is not False,
        )
        return {"User": user_json(user)}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def get(self, username: str | None) -> dict[str, Any]:
        """One user, by id or username, with their groups."""
        user = self._user(username)
        groups = self.ctx.db.scalars(
            select(Group.name)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user.id)
            .order_by(Group.name_key)
        ).all()
        return {"User": user_json(user), "Groups": list(groups)}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def list(
        self,
        q: str | None,
        disabled: bool | None,
        offset: int | None,
        limit: int | None,
        sort: str | None,
        withoutSecondFactor: bool | None,
    ) -> dict[str, Any]:
        """Users, filtered by ``q`` (part of username, email or display name), ``disabled``
        and ``withoutSecondFactor`` (true: those with neither a passkey nor an
        authenticator app)."""
        found = listings.search_users(
            self.ctx.db,
            q,
            disabled,
            offset,
            limit,
            sort,
            without_second_factor=withoutSecondFactor,
        )
        items, meta = found.items, found.meta
        return {"Items": [user_json(u) for u in items], **meta}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def update(
        self, username: str | None, email: str | None, displayName: str | None
    ) -> dict[str, Any]:
        """Change a user's email or display name (empty email removes it)."""
        user = self.administration().update_user(username, email=email, display_name=displayName)
        return {"User": user_json(user)}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def setDisabled(self, username: str | None, disabled: bool | None) -> dict[str, Any]:
        """Disable (ends their sessions and tokens, grants nothing) or re-enable a user."""
        user = self.administration().set_user_disabled(username, disabled)
        return {"User": user_json(user)}

    @expose("POST", right="users:write", secrets=("password",), max_length=TEXT, statuses=WRITE)
    def resetPassword(self, username: str | None, password: str | None) -> dict[str, Any]:
        """Set a new password for a user; all their sessions and tokens end."""
        user = self.administration().reset_password(username, password)
        return {"User": user_json(user)}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def logoutAll(self, username: str | None) -> dict[str, Any]:
        """End every session and token of a user; applications are told."""
        _user, ended = self.administration().logout_everywhere(username)
        return {"Ended": ended}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def sessions(self, username: str | None) -> dict[str, Any]:
        """A user's live sessions, newest first, each named by its ``Session`` reference
        (never the token or its hash) for ``Users/endSession``."""
        user, found = self.administration().user_sessions(username)
        return {"User": user_json(user), "Sessions": [admin_session_json(s) for s in found]}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def endSession(self, username: str | None, session: str | None) -> dict[str, Any]:
        """End one session of a user (``session``: its reference from ``Users/sessions``);
        the applications signed in through it are told."""
        user, ended = self.administration().end_session(username, session)
        return {"User": user_json(user), "Ended": admin_session_json(ended)}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def revokeApplication(self, username: str | None, application: str | None) -> dict[str, Any]:
        """End a user's access to one application: their tokens, codes and consent there
        (the application is told by back-channel logout); the rest stays."""
        user, name, revoked = self.administration().revoke_application(username, application)
        return {"User": user_json(user), "Application": name, "Revoked": revoked}

    @expose("POST", right="users:write", max_length={**TEXT, "groups": 2000}, statuses=WRITE)
    def invite(self, email: str | None, groups: str | None) -> dict[str, Any]:
        """Invite a person by email to make an account (``groups``: comma-separated
        names they join); the link works for ``invitation_lifetime`` seconds."""
        names = split_list(groups) if groups else []
        invitation = self.administration().invite(email, names)
        return {"Invitation": self._invitation_json(invitation)}

    @expose("GET", right="users:read", statuses=READ)
    def invitations(self) -> dict[str, Any]:
        """Every invitation, newest first: pending, accepted, revoked or expired."""
        rows = self.administration().invitations()
        return {"Invitations": [invitation_json(i, groups, self.ctx.now) for i, groups in rows]}

    @expose("POST", right="users:write", max_length={"invitation": 20}, statuses=WRITE)
    def resendInvitation(self, invitation: str | None) -> dict[str, Any]:
        """Send an invitation again with a new link and a new expiry (the old link dies)."""
        found = self.administration().resend_invitation(invitation)
        return {"Invitation": self._invitation_json(found)}

    @expose("POST", right="users:write", max_length={"invitation": 20}, statuses=WRITE)
    def revokeInvitation(self, invitation: str | None) -> dict[str, Any]:
        """Withdraw an invitation: its link stops working."""
        found = self.administration().revoke_invitation(invitation)
        return {"Invitation": self._invitation_json(found)}

    def _invitation_json(self, invitation: Invitation) -> dict[str, Any]:
        names = [g.name for g in invited_groups(self.ctx.db, invitation.id)]
        return invitation_json(invitation, names, self.ctx.now)

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def factors(self, username: str | None) -> dict[str, Any]:
        """A user's second factors: passkeys, authenticator app, recovery codes left."""
        user, summary = self.administration().user_factors(username)
        return {"User": user_json(user), "Factors": factors_json(summary)}

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def resetFactors(self, username: str | None) -> dict[str, Any]:
        """Remove every second factor of a user; all their sessions and tokens end."""
        user, removed, ended = self.administration().reset_factors(username)
        return {"User": user_json(user), "Removed": removed.methods(), "Ended": ended}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def logoutNotifications(self, username: str | None) -> dict[str, Any]:
        """Back-channel logout notifications for a user: which applications heard, when."""
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

    @expose("POST", right="users:write", max_length=TEXT, statuses=WRITE)
    def delete(self, username: str | None) -> dict[str, Any]:
        """Delete a user with their sessions, tokens, memberships and grants (audit stays)."""
        return {"Deleted": self.administration().delete_user(username)}


@API.controller("Groups")
class GroupsController(_UserAdmin):
    @expose("POST", right="groups:write", max_length=TEXT, statuses=WRITE)
    def create(
        self, name: str | None, description: str | None, requireMfa: bool | None
    ) -> dict[str, Any]:
        """Create a group; ``requireMfa`` (default false): its members sign in with a
        second factor."""
        group = self.administration().create_group(name, description, require_mfa=bool(requireMfa))
        return {"Group": group_json(group, 0)}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def get(self, group: str | None) -> dict[str, Any]:
        """One group and its members."""
        found = self._group(group)
        members = listings.member_names_of(self.ctx.db, found.id)
        return {"Group": group_json(found, len(members)), "Members": members}

    @expose("GET", right="users:read", max_length=TEXT, statuses=READ)
    def list(
        self, q: str | None, offset: int | None, limit: int | None, sort: str | None
    ) -> dict[str, Any]:
        """Groups, filtered by ``q`` (part of the name), paginated, sorted."""
        found = listings.search_groups(self.ctx.db, q, offset, limit, sort)
        return {"Items": [group_json(g) for g in found.items], **found.meta}

    @expose("POST", right="groups:write", max_length=TEXT, statuses=WRITE)
    def update(
        self,
        group: str | None,
        name: str | None,
        description: str | None,
        requireMfa: bool | None,
    ) -> dict[str, Any]:
        """Rename a group, change its description, or whether its members must sign in
        with a second factor (``requireMfa``)."""
        found = self.administration().update_group(
            group, name=name, description=description, require_mfa=requireMfa
        )
        return {"Group": group_json(found)}

    @expose("POST", right="groups:write", max_length=TEXT, statuses=WRITE)
    def delete(self, group: str | None) -> dict[str, Any]:
        """Delete a group with its memberships and grants (the users stay)."""
        return {"Deleted": self.administration().delete_group(group)}

    @expose("POST", right="groups:write", max_length=TEXT, statuses=WRITE)
    def addMember(self, group: str | None, username: str | None) -> dict[str, Any]:
        """Put a user in a group."""
        admin = self.administration()
        _group, _user, added = admin.change_membership(True, group, username)
        return {"Changed": added}

    @expose("POST", right="groups:write", max_length=TEXT, statuses=WRITE)
    def removeMember(self, group: str | None, username: str | None) -> dict[str, Any]:
        """Take a user out of a group."""
        admin = self.administration()
        _group, _user, removed = admin.change_membership(False, group, username)
        return {"Changed": removed}


def _time(value: str | None, source: str) -> datetime | None:
    """An ISO 8601 time with a zone, as UTC; a time that has no UTC form (the first
    hours of year 1 east of Greenwich, the last of 9999 west of it) is refused too."""
    if not value:
        return None
    problem = f"{source} must be an ISO 8601 time like 2026-01-31T12:00:00Z."
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            problem = f"{source} must carry a time zone (e.g. Z)."
            raise ValueError(problem)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid(problem, source=source, value=value) from None


@API.controller("Audit")
class AuditController(_UserAdmin):
    @expose("GET", right="audit:read", max_length=TEXT, statuses=READ)
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
        found = listings.audit_events(
            self.ctx.db,
            username=username,
            application=application,
            event=event,
            since=_time(since, "since"),
            until=_time(until, "until"),
            offset=offset,
            limit=limit,
        )
        items, meta = found.items, found.meta
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
