"""The administrative operations: one function each, for the API, the CLI and what comes.

Every operation here, in this order: checks that the actor holds the right it
needs and may act on its target (:mod:`passport.services.policy`), makes the
change, ends what must end (sessions, OAuth tokens, with back-channel logout:
:func:`passport.services.signout.end_user_access`), and writes one audit record
with the actor — the administrator's user id, or for the command line an
``"actor": "cli:<os user>"`` entry in the record's detail.  All in the caller's
transaction: a refusal or a failure leaves nothing behind.  (A read that needs more
than a query, :meth:`Administration.user_factors`, checks its right and writes nothing.)

Adapters (API controllers, CLI commands) only parse their input, call one of
these functions, and format the domain objects it returns.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.errors import Conflict
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import NotFound
from passport.errors import Taken
from passport.errors import WrongLength
from passport.errors import required
from passport.services import access
from passport.services import clients
from passport.services import directory
from passport.services import forward_auth
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.accounts import email_key
from passport.services.accounts import same_address
from passport.services.accounts import validate_display_name
from passport.services.accounts import validate_email
from passport.services.audit import AuditRecord
from passport.services.factors import FactorSummary
from passport.services.factors import validate_policy
from passport.services.identity import identity_of
from passport.services.lifecycle import invited_groups
from passport.services.passwords import check_policy
from passport.services.permissions import ADMIN
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import APPS_WRITE
from passport.services.policy import GROUPS_WRITE
from passport.services.policy import USERS_READ
from passport.services.policy import USERS_WRITE
from passport.services.policy import Actor
from passport.services.policy import Target
from passport.services.policy import ensure_may_act_on
from passport.services.policy import ensure_may_invite
from passport.services.policy import ensure_not_self
from passport.services.policy import ensure_right
from passport.services.sessions import LoginSessionInfo
from passport.services.signout import end_application_access
from passport.services.signout import end_client_resource_access
from passport.services.signout import end_user_access
from passport.services.signout import end_user_application_access
from passport.services.text import check_text
from passport.storage.models import Application
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import EmailLink
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import Invitation
from passport.storage.models import InvitationGroup
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission

MAX_DESCRIPTION = 2000
MAX_SIGN_IN_GROUPS = 100
MAX_OVERLAP_SECONDS = 30 * 86400


def _description(value: str | None, source: str = "description") -> str:
    """A description of a group, application or permission: at most 2000 characters of
    multi-line text for people (:func:`passport.services.text.check_text`: TAB and LF
    are kept, other control, bidi and invisible characters are refused).  A CR LF or
    lone CR line break, as browsers send a textarea's lines, is stored as LF."""
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_DESCRIPTION:
        raise WrongLength(
            f"{source} must be at most {MAX_DESCRIPTION} characters long.",
            source=source,
        )
    return check_text(text, field=source, source=source, multiline=True)


_INVITATION_ID = re.compile(r"[0-9]{1,9}")


class SigningKeys(Protocol):
    """What rotating needs of the key ring (:class:`passport.oidc.keys.KeyRing`, a layer
    above this one, which knows keys; this layer knows who may rotate them)."""

    def rotate(self, now: datetime, db: Session | None = None) -> list[str]: ...

    def forget(self) -> None: ...


class Administration:
    """The operations of one actor, in one transaction (``accounts.db``)."""

    def __init__(
        self,
        accounts: Accounts,
        actor: Actor,
        caller: Caller,
        *,
        origins_changed: Callable[[], None],
    ) -> None:
        self.accounts = accounts
        self.db = accounts.db
        self.actor = actor
        self.caller = caller
        self.origins_changed = origins_changed

    # -- shared steps --------------------------------------------------------------------------
    def _audit(
        self, event: str, *, about: User | None = None, application: str = "", **detail: Any
    ) -> None:
        if self.actor.user_id is None:
            detail["actor"] = self.actor.label
        self.accounts.audit(
            AuditRecord(
                event,
                "success",
                self.caller.now,
                user_id=about.id if about else None,
                username=about.username if about else "",
                actor_id=self.actor.user_id,
                application=application,
                ip=self.caller.ip,
                user_agent=self.caller.user_agent,
                detail=json.dumps(detail, ensure_ascii=False, default=str),
            )
        )

    def _may_change(self, right: str, *targets: tuple[Target, str]) -> None:
        ensure_right(self.actor, right)
        for target, source in targets:
            ensure_may_act_on(self.db, self.actor, target, source)

    def _may_lift_mfa_rule(self, group: Group) -> None:
        """Lifting a group's "require MFA" (switching it off) acts on every member:
        nobody may weaken the sign-in of someone holding rights they lack (an
        administrator kept in a group that requires MFA)."""
        self._may_act_on_members(group, "requireMfa")

    def _may_act_on_members(self, group: Group, source: str) -> None:
        """A change that takes something from every member of ``group`` (its rule, its
        grants) acts on each of them: the escalation rule for every member."""
        members = self.db.scalars(
            select(User)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group.id)
        )
        for member in members:
            ensure_may_act_on(self.db, self.actor, member, source)

    def _end_access(self, user: User) -> int:
        return end_user_access(
            self.db,
            self.accounts.sessions,
            self.accounts.notify_logout,
            user,
            self.caller.now,
        )

    def _user(self, ref: str | None, source: str = "username") -> User:
        return directory.get_user(self.db, ref, source)

    def _group(self, ref: str | None, source: str = "group") -> Group:
        return directory.get_group(self.db, ref, source)

    def _application(self, ref: str | None, source: str = "application") -> Application:
        return directory.get_application(self.db, ref, source)

    def _permission(
        self, app: Application, ref: str | None, source: str = "permission"
    ) -> Permission:
        found = directory.find_permission(self.db, app, ref)
        if found is None:
            raise directory.missing("permission", source, ref)
        return found

    # -- users -----------------------------------------------------------------------------------
    def create_user(
        self,
        username: str | None,
        password: str | None,
        email: str | None,
        display_name: str | None,
        *,
        confirm_address: bool = True,
    ) -> User:
        """Make an account (also when self-registration is switched off).  Its address,
        if any, is unconfirmed and a link goes to it (``confirm_address``, the default);
        otherwise the administrator vouches for it: it is confirmed at once, no mail — the
        record says so."""
        ensure_right(self.actor, USERS_WRITE)
        user = self.accounts.register(
            self.caller,
            username,
            password,
            email,
            display_name,
            by_admin=True,
            verified=not confirm_address,
        )
        if user.email and not confirm_address:
            self._audit("user_create", about=user, addressConfirmedBy="administrator")
        else:
            self._audit("user_create", about=user)
        return user

    def make_administrator(self, ref: str | None) -> User:
        """Grant ``admin`` to a user: only an administrator (or the operator) may."""
        user = self._user(ref)
        passport = self._application(str(PASSPORT_APP_ID))
        admin = self._permission(passport, ADMIN)
        self._may_change(APPS_WRITE, (admin, "permission"), (user, "username"))
        directory.grant(self.db, admin, user=user)
        self._audit("admin_create", about=user)
        return user

    def update_user(
        self, ref: str | None, *, email: str | None = None, display_name: str | None = None
    ) -> User:
        """Change a user's email (empty removes it) or display name."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        self._may_change(USERS_WRITE, (user, "username"))
        changed: list[str] = []
        if email is not None:
            mail = validate_email(email)
            old = user.email
            with directory.unique(
                self.db, "This email address is already registered.", "email", mail
            ):
                user.email, user.email_key = mail, email_key(mail) if mail else None
            if not same_address(old, mail):
                # Unverified, a link to the new address, a notice to the old one.
                if mail is not None:
                    self.accounts.refuse_invited_address(mail, self.caller.now)
                self.accounts.lifecycle().address_changed(user, old, self.caller.now)
            changed.append("email")
        if display_name is not None:
            user.display_name = validate_display_name(display_name)
            changed.append("displayName")
        self.accounts.sessions.refresh_identity(identity_of(user))
        self._audit("user_update", about=user, changed=changed)
        return user

    def set_user_disabled(self, ref: str | None, disabled: bool | None) -> User:
        """Disable a user (every way in ends; they grant nothing) or enable them again."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        if disabled is None:
            raise required("disabled", "disabled must be true or false.")
        ensure_not_self(self.actor, user)
        self._may_change(USERS_WRITE, (user, "username"))
        if disabled:
            self._end_access(user)
        user.disabled = disabled
        self._audit("user_disable" if disabled else "user_enable", about=user)
        return user

    def reset_password(self, ref: str | None, password: str | None) -> User:
        """Set a new password for a user; every way in that they had ends.

        Not on one's own account: there, the account page changes the password after
        proving the current one (throttled), which a stolen administrator's session
        must not get round."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        ensure_not_self(self.actor, user)
        if not password:
            raise required("password", "Password must be specified.")
        self._may_change(USERS_WRITE, (user, "username"))
        text = check_policy(
            password,
            username=user.username,
            min_length=self.accounts.settings.password_min_length,
            source="password",
        )
        user.password_hash = self.accounts.passwords.hash(text)
        user.password_changed_at = self.caller.now
        ended = self._end_access(user)
        self._audit("user_reset_password", about=user, ended=ended)
        return user

    def logout_everywhere(self, ref: str | None) -> tuple[User, int]:
        """End every session and token of a user; returns the user and the sessions ended."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        self._may_change(USERS_WRITE, (user, "username"))
        ended = self._end_access(user)
        self._audit("user_logout_all", about=user, ended=ended)
        return user, ended

    def user_sessions(self, ref: str | None) -> tuple[User, list[LoginSessionInfo]]:
        """A user's live sessions, newest first, as an administrator sees them: each named
        by its OpenID Connect ``sid`` (random, one-way: neither the cookie nor its hash,
        :func:`passport.storage.models.new_sid`) for :meth:`end_session`."""
        ensure_right(self.actor, USERS_READ)
        user = self._user(ref)
        return user, self.accounts.sessions_of(user.id, self.caller.now)

    def end_session(self, ref: str | None, session: str | None) -> tuple[User, LoginSessionInfo]:
        """End one session of a user — as the user's own "sign out that session" ends it
        (:meth:`Accounts.close_session`: the applications signed in through it told, its
        unused codes dropped; their tokens live on, OpenID Connect Core 1.0 §11).  The
        session is named by its ``sid`` (:meth:`user_sessions`) and must be that user's:
        another user's session is not found here (404), whatever the rights."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        self._may_change(USERS_WRITE, (user, "username"))
        wanted = (session or "").strip()
        if not wanted:
            raise required("session", "Session must be specified.")
        for item in self.accounts.sessions_of(user.id, self.caller.now):
            if hmac.compare_digest(item.sid.encode(), wanted.encode("utf-8", "replace")):
                self.accounts.close_session(user, item)
                self._audit("user_end_session", about=user, session=item.sid)
                return user, item
        raise NotFound(
            f"{user.username} has no active session with this reference.",
            source="session",
            value=wanted[:64],
        )

    def revoke_application(self, ref: str | None, application: str | None) -> tuple[User, str, int]:
        """End a user's access to one application: its tokens, codes and device approvals
        for them, and their consent (:func:`passport.services.signout.end_user_application_access`,
        the application told by back-channel logout); their other applications and their
        Passport sessions stay.  Returns the user, the application's name and the live
        tokens revoked."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        app = self._application(application)
        self._may_change(USERS_WRITE, (user, "username"))
        revoked = end_user_application_access(
            self.db, self.accounts.notify_logout, user, app.id, self.caller.now
        )
        self._audit("user_revoke_application", about=user, application=app.name, revoked=revoked)
        return user, app.name, revoked

    def user_factors(self, ref: str | None) -> tuple[User, FactorSummary]:
        """A user's second factors as an administrator sees them: passkeys (name, when
        added and last used, synced or bound to a device), whether an authenticator app
        is set up, how many recovery codes are left — never a secret."""
        ensure_right(self.actor, USERS_READ)
        user = self._user(ref)
        return user, self.accounts.factors().summary(user.id)

    def reset_factors(self, ref: str | None) -> tuple[User, FactorSummary, int]:
        """Remove every second factor of a user (passkeys, authenticator app, recovery
        codes) and end every way in that they had, for a user who lost them: they sign
        in with their password again and, where a factor is owed, enrol a new one.
        Returns the user, the factors removed and the sessions ended.

        Not on one's own account: there, the account page changes factors after a
        recent sign-in (:meth:`Factors.ensure_recent`), which a stolen administrator's
        session must not get round."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        ensure_not_self(self.actor, user)
        self._may_change(USERS_WRITE, (user, "username"))
        factors = self.accounts.factors()
        removed = factors.summary(user.id)
        factors.reset(user.id)
        ended = self._end_access(user)
        self._audit(
            "mfa.reset",
            about=user,
            removed=removed.methods(),
            passkeys=len(removed.passkeys),
            ended=ended,
        )
        return user, removed, ended

    def delete_user(self, ref: str | None) -> str:
        """Delete a user with their sessions, tokens, memberships and grants (the audit
        log keeps the name); returns the username."""
        ensure_right(self.actor, USERS_WRITE)
        user = self._user(ref)
        ensure_not_self(self.actor, user)
        self._may_change(USERS_WRITE, (user, "username"))
        self._end_access(user)
        self._audit("user_delete", about=user)
        name = user.username
        self.db.delete(user)
        self.db.flush()
        return name

    # -- invitations -----------------------------------------------------------------------------
    def _inviter(self) -> str:
        """How the invitation names who sent it."""
        if self.actor.user_id is not None:
            user = self.db.get(User, self.actor.user_id)
            if user is not None:
                return user.username  # not the display name: free words in our mail
        return "An administrator"

    def _invitation(self, ref: str | None) -> Invitation:
        if ref is None or str(ref).strip() == "":
            raise required("invitation", "Invitation must be specified.")
        text = str(ref).strip()
        # ASCII digits only: str.isdigit() is also true of "²" and "٣", which int() refuses
        # or reads as another number.
        found = self.db.get(Invitation, int(text)) if _INVITATION_ID.fullmatch(text) else None
        if found is None:
            raise NotFound("No such invitation.", source="invitation", value=text[:64])
        return found

    def invite(self, email: str | None, groups: Sequence[str] = ()) -> Invitation:
        """Invite a person by email to make an account, joining ``groups`` when they do.
        Nobody invites into a group holding Passport rights they lack (the escalation
        rule: the invited person would hold them)."""
        ensure_right(self.actor, USERS_WRITE)
        if email is None or email.strip() == "":
            raise required("email", "Email must be specified.")
        mail = validate_email(email)
        assert mail is not None
        key = email_key(mail)
        if self.db.scalar(select(User.id).where(User.email_key == key)) is not None:
            raise Taken("This email address is already registered.", source="email", value=mail)
        now = self.caller.now
        open_one = self.db.scalar(
            select(Invitation.id).where(
                Invitation.email_key == key,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
        )
        if open_one is not None:
            raise Taken(
                f"This address has an open invitation ({open_one}); resend or revoke it.",
                source="email",
                value=mail,
            )
        chosen: dict[int, Group] = {}
        for ref in groups:
            group = self._group(ref, "groups")
            chosen[group.id] = group
        ensure_may_invite(self.db, self.actor, chosen.values())
        self.accounts.outbox.ensure_enabled("email")
        invitation = Invitation(
            email=mail,
            email_key=key,
            invited_by=self.actor.user_id,
            inviter=self.actor.label,
            created_at=now,
            sent_at=now,
            expires_at=now,
        )
        self.db.add(invitation)
        self.db.flush()
        for group_id in chosen:
            self.db.add(InvitationGroup(invitation_id=invitation.id, group_id=group_id))
        self.accounts.lifecycle().send_invitation(invitation, self._inviter(), now)
        self._audit(
            "invitation_create",
            invitation=invitation.id,
            email=mail,
            groups=sorted(g.name for g in chosen.values()),
        )
        return invitation

    def invitations(self) -> list[tuple[Invitation, list[str]]]:
        """Every invitation, newest first, with the names of its groups."""
        ensure_right(self.actor, USERS_READ)
        rows = self.db.scalars(select(Invitation).order_by(Invitation.id.desc())).all()
        return [(row, [g.name for g in invited_groups(self.db, row.id)]) for row in rows]

    def resend_invitation(self, ref: str | None) -> Invitation:
        """A new link (the old one dies) and a new expiry, for an invitation not yet
        accepted or revoked — acting again on its groups, under the escalation rule."""
        ensure_right(self.actor, USERS_WRITE)
        invitation = self._invitation(ref)
        self.accounts.outbox.ensure_enabled("email")
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise Invalid(
                "This invitation was accepted or revoked; invite the person again.",
                source="invitation",
            )
        ensure_may_invite(self.db, self.actor, invited_groups(self.db, invitation.id))
        self.accounts.lifecycle().send_invitation(invitation, self._inviter(), self.caller.now)
        self._audit("invitation_resend", invitation=invitation.id, email=invitation.email)
        return invitation

    def revoke_invitation(self, ref: str | None) -> Invitation:
        """Withdraw an invitation: its link stops working.  Only by someone who could
        have made it (a delegate does not withdraw an administrator's invitation into a
        group holding rights they lack)."""
        ensure_right(self.actor, USERS_WRITE)
        invitation = self._invitation(ref)
        ensure_may_invite(self.db, self.actor, invited_groups(self.db, invitation.id))
        if invitation.accepted_at is not None:
            raise Invalid("This invitation was accepted already.", source="invitation")
        if invitation.revoked_at is None:
            invitation.revoked_at = self.caller.now
            self.db.execute(delete(EmailLink).where(EmailLink.invitation_id == invitation.id))
            self._audit("invitation_revoke", invitation=invitation.id, email=invitation.email)
        return invitation

    # -- groups ----------------------------------------------------------------------------------
    def create_group(
        self, name: str | None, description: str | None = None, *, require_mfa: bool = False
    ) -> Group:
        """Create a group; ``require_mfa``: its members sign in with a second factor
        (:mod:`passport.services.factors`)."""
        ensure_right(self.actor, GROUPS_WRITE)
        group = directory.create_group(self.db, name, _description(description))
        group.require_mfa = require_mfa
        if require_mfa:
            self._audit("group_create", group=group.name, requireMfa=True)
        else:
            self._audit("group_create", group=group.name)
        return group

    def update_group(
        self,
        ref: str | None,
        *,
        name: str | None = None,
        description: str | None = None,
        require_mfa: bool | None = None,
    ) -> Group:
        """Rename a group, change its description, or whether its members must sign in
        with a second factor (None: unchanged)."""
        ensure_right(self.actor, GROUPS_WRITE)
        group = self._group(ref)
        self._may_change(GROUPS_WRITE, (group, "group"))
        changed: list[str] = []
        if name is not None:
            directory.rename_group(self.db, group, name)
            changed.append("name")
        if description is not None:
            group.description = _description(description)
            changed.append("description")
        if require_mfa is not None:
            if group.require_mfa and not require_mfa:
                self._may_lift_mfa_rule(group)
            group.require_mfa = require_mfa
            changed.append("requireMfa")
        self._audit("group_update", group=group.name, changed=changed)
        return group

    def delete_group(self, ref: str | None) -> str:
        """Delete a group with its memberships and grants; returns its name."""
        ensure_right(self.actor, GROUPS_WRITE)
        group = self._group(ref)
        self._may_change(GROUPS_WRITE, (group, "group"))
        # Its members lose what it gave them (and its second-factor rule): deleting it
        # acts on each of them, under the escalation rule.
        self._may_act_on_members(group, "group")
        name = group.name
        self.db.delete(group)
        self.db.flush()
        self._audit("group_delete", group=name)
        return name

    def change_membership(
        self, add: bool, group_ref: str | None, user_ref: str | None
    ) -> tuple[Group, User, bool]:
        """Put a user in a group or take them out; True when something changed.  A member
        receives the group's rights, so those must be the actor's too (and the user's)."""
        ensure_right(self.actor, GROUPS_WRITE)
        group, user = self._group(group_ref), self._user(user_ref)
        self._may_change(GROUPS_WRITE, (group, "group"), (user, "username"))
        if add:
            changed = directory.add_member(self.db, group, user)
        else:
            changed = directory.remove_member(self.db, group, user)
        self._audit(
            "group_add_member" if add else "group_remove_member", about=user, group=group.name
        )
        return group, user, changed

    # -- grants ----------------------------------------------------------------------------------
    def change_grant(
        self,
        add: bool,
        application: str | None,
        permission: str | None,
        *,
        username: str | None = None,
        group: str | None = None,
        define_missing: bool = False,
    ) -> tuple[Application, Permission, bool]:
        """Grant a permission to exactly one user or group, or revoke it; True when
        something changed.  ``define_missing`` defines a new permission first."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(application)
        found = directory.find_permission(self.db, app, permission)
        if found is None and not (add and define_missing):
            raise directory.missing("permission", "permission", permission)
        if bool(username) == bool(group):
            raise required("username", "Give exactly one of username or group.")
        holder: Target = self._user(username) if username else self._group(group)
        target = found if found is not None else self.add_permission(application, permission)[1]
        self._may_change(
            APPS_WRITE,
            (target, "permission"),
            (holder, "username" if isinstance(holder, User) else "group"),
        )
        user = holder if isinstance(holder, User) else None
        team = holder if isinstance(holder, Group) else None
        if team is not None and not add:
            # Its members lose the grant: revoking it acts on each (as revoking it from one
            # of them directly would, and as deleting the permission does).
            self._may_act_on_members(team, "group")
        change = directory.grant if add else directory.revoke
        changed = change(self.db, target, user=user, group=team)
        who = {"user": user.username} if user else {"group": team.name if team else ""}
        self._audit(
            "grant" if add else "revoke",
            about=user,
            application=app.name,
            permission=target.name,
            **who,
        )
        return app, target, changed

    # -- applications ----------------------------------------------------------------------------
    def create_application(
        self,
        name: str | None,
        *,
        description: str | None = None,
        origins: list[str] | None = None,
        redirect_uris: list[str] | None = None,
        post_logout_redirect_uris: list[str] | None = None,
        confidential: bool = True,
        first_party: bool = False,
        access_token_format: str | None = None,
        backchannel_logout_uri: str | None = None,
        scopes: list[str] | None = None,
        refresh_tokens: bool = True,
        id_token_signed_response_alg: str | None = None,
        require_pushed_authorization_requests: bool = False,
        device_grant: bool = False,
        resources: list[str] | None = None,
        resource_clients: list[str] | None = None,
        mfa_policy: str | None = None,
        sign_in_policy: str | None = None,
        sign_in_groups: list[str] | None = None,
        sign_in_permission: str | None = None,
        forward_auth_hosts: list[str] | None = None,
        forward_auth_rules: list[str] | None = None,
    ) -> tuple[Application, str | None]:
        """Register an application; returns it and its client secret (once).
        ``refresh_tokens`` False: refresh tokens only for ``offline_access`` (OIDC Core §11).
        ``id_token_signed_response_alg`` empty or None: the server's ``signing_alg``.
        ``require_pushed_authorization_requests``: its authorization requests only
        through the PAR endpoint (RFC 9126 §6).
        ``device_grant``: whether it may use the Device Authorization Grant (RFC 8628).
        ``resources``: the RFC 8707 resource identifiers it serves as a resource server.
        ``post_logout_redirect_uris``: where ``/logout`` may return to (RP-Initiated
        Logout 1.0 §3); none by default, not its redirect URIs (§2).
        ``resource_clients``: the ``client_id`` of each application that may get client
        credentials tokens for them (:meth:`update_application`).
        ``mfa_policy``: the second factor its sign-ins need — ``default`` (None: the
        server's ``mfa_policy``), ``optional``, ``mfa`` or ``passkey``
        (:mod:`passport.services.factors`).
        ``sign_in_policy``, ``sign_in_groups``, ``sign_in_permission``: who may sign in
        (:meth:`update_application`; absent: anyone).  A new application defines no
        permission yet, so a ``sign_in_permission`` it does not have is defined with it
        (named in the ``app_create`` record as ``definedPermission``).
        ``forward_auth_hosts``, ``forward_auth_rules``: the site it is behind a reverse
        proxy (:mod:`passport.services.forward_auth`: host names, one application each —
        409 when another has one —, and path rules, the first match wins)."""
        ensure_right(self.actor, APPS_WRITE)
        policy = "default" if mfa_policy is None else validate_policy(mfa_policy)
        rules = forward_auth.validate_rules(forward_auth_rules or [])
        hosts = forward_auth.validate_hosts(forward_auth_hosts or [])
        listed = self._resource_clients(None, resource_clients or [])
        app, secret = directory.create_application(
            self.db,
            self.caller.now,
            name,
            description=_description(description),
            origins=origins,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_redirect_uris,
            confidential=confidential,
            first_party=first_party,
            access_token_format=access_token_format or "jwt",
            backchannel_logout_uri=backchannel_logout_uri,
            allow_private_backchannel=self.accounts.settings.backchannel_allow_private,
            scopes=scopes,
            id_token_signed_response_alg=id_token_signed_response_alg,
            resources=resources,
            own_origin=self.accounts.settings.issuer,
        )
        app.refresh_tokens = refresh_tokens
        app.require_pushed_authorization_requests = require_pushed_authorization_requests
        app.device_grant = device_grant
        app.mfa_policy = policy
        app.forward_auth_rules = rules
        if listed:
            directory.set_resource_clients(self.db, app, listed)
        detail: dict[str, Any] = {}
        if sign_in_permission:
            if directory.find_permission(self.db, app, sign_in_permission) is None:
                defined = directory.create_permission(self.db, app, sign_in_permission)
                detail["definedPermission"] = defined.name
        if sign_in_policy is not None or sign_in_groups or sign_in_permission:
            self._set_sign_in(app, sign_in_policy, sign_in_groups, sign_in_permission)
            detail.update(self._sign_in_detail(app))
        self.db.flush()
        forward_auth.set_hosts(self.db, app, hosts)
        self.origins_changed()
        self._audit("app_create", application=app.name, id=app.id, **detail)
        return app, secret

    def update_application(
        self,
        ref: str | None,
        *,
        name: str | None = None,
        description: str | None = None,
        origins: list[str] | None = None,
        redirect_uris: list[str] | None = None,
        post_logout_redirect_uris: list[str] | None = None,
        first_party: bool | None = None,
        access_token_format: str | None = None,
        backchannel_logout_uri: str | None = None,
        scopes: list[str] | None = None,
        refresh_tokens: bool | None = None,
        id_token_signed_response_alg: str | None = None,
        require_pushed_authorization_requests: bool | None = None,
        device_grant: bool | None = None,
        resources: list[str] | None = None,
        resource_clients: list[str] | None = None,
        mfa_policy: str | None = None,
        sign_in_policy: str | None = None,
        sign_in_groups: list[str] | None = None,
        sign_in_permission: str | None = None,
        forward_auth_hosts: list[str] | None = None,
        forward_auth_rules: list[str] | None = None,
    ) -> Application:
        """Change what is given (None: unchanged); lists replace the whole list;
        ``id_token_signed_response_alg`` "" goes back to the server's ``signing_alg``.
        Removing a resource identifier ends the tokens, codes and consents granted for it
        (:func:`passport.services.signout.end_resource_access`, RFC 8707 §2).
        ``resource_clients``: the ``client_id`` of each application that may get client
        credentials tokens for its resource identifiers (RFC 8707 §2; none: no client
        may).  Removing one revokes the client credentials tokens it holds for them
        (:func:`passport.services.signout.end_client_resource_access`).
        ``mfa_policy``: as in :meth:`create_application` (``default``: the server's).

        Who may sign in (:func:`passport.services.access.admission` decides, at every
        door): ``sign_in_policy`` ``anyone``, ``groups`` or ``permission``;
        ``sign_in_groups`` the names of the groups whose members may (the whole list is
        replaced; a group holding Passport rights may be listed: it grants nothing);
        ``sign_in_permission`` a permission of this application whose holders may ("":
        none).  The ``groups`` policy needs a group listed and the ``permission`` policy
        a permission that exists, when set.  Afterwards it fails closed: deleting the
        last listed group (rows cascade) or that permission (its name stays) leaves the
        policy in force and admits nobody until an administrator changes it.  Passport's
        own application keeps ``anyone``: its administrators are decided by rights.
        ``forward_auth_hosts``, ``forward_auth_rules``: as there; a list replaces the
        whole list (``[]``: none)."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(ref)
        self._may_change(APPS_WRITE, (app, "application"))
        sign_in_changed = self._set_sign_in(app, sign_in_policy, sign_in_groups, sign_in_permission)
        policy = None if mfa_policy is None else validate_policy(mfa_policy)
        rules = (
            None if forward_auth_rules is None else forward_auth.validate_rules(forward_auth_rules)
        )
        hosts = (
            None if forward_auth_hosts is None else forward_auth.validate_hosts(forward_auth_hosts)
        )
        listed = None
        if resource_clients is not None:
            listed = self._resource_clients(app, resource_clients)
        changed: list[str] = []
        if name is not None:
            directory.rename_application(self.db, app, name)
            changed.append("name")
        if description is not None:
            app.description = _description(description)
            changed.append("description")
        if origins is not None:
            app.allowed_origins = directory.validate_origins(origins)
            changed.append("origins")
        if redirect_uris is not None:
            app.redirect_uris = directory.validate_redirect_uris(redirect_uris)
            changed.append("redirectUris")
        if post_logout_redirect_uris is not None:
            app.post_logout_redirect_uris = directory.validate_post_logout_redirect_uris(
                post_logout_redirect_uris
            )
            changed.append("postLogoutRedirectUris")
        if first_party is not None:
            app.first_party = first_party
            changed.append("firstParty")
        if access_token_format is not None:
            app.access_token_format = directory.validate_token_format(access_token_format)
            changed.append("accessTokenFormat")
        if backchannel_logout_uri is not None:
            app.backchannel_logout_uri = directory.validate_backchannel_uri(
                backchannel_logout_uri,
                allow_private=self.accounts.settings.backchannel_allow_private,
            )
            changed.append("backchannelLogoutUri")
        if scopes is not None:
            app.scopes = directory.validate_scopes(scopes)
            changed.append("scopes")
        if refresh_tokens is not None:
            app.refresh_tokens = refresh_tokens
            changed.append("refreshTokens")
        if id_token_signed_response_alg is not None:
            app.id_token_signed_response_alg = directory.validate_signing_alg(
                id_token_signed_response_alg
            )
            changed.append("idTokenSignedResponseAlg")
        if require_pushed_authorization_requests is not None:
            app.require_pushed_authorization_requests = require_pushed_authorization_requests
            changed.append("requirePushedAuthorizationRequests")
        if device_grant is not None:
            app.device_grant = device_grant
            changed.append("deviceGrant")
        if policy is not None:
            app.mfa_policy = policy
            changed.append("mfaPolicy")
        if resources is not None:
            directory.set_resources(
                self.db,
                app,
                resources,
                self.caller.now,
                own_origin=self.accounts.settings.issuer,
            )
            changed.append("resources")
        if listed is not None:
            before = {r.client_app_id for r in app.resource_client_rows}
            directory.set_resource_clients(self.db, app, listed)
            removed = before - {c.id for c in listed}
            end_client_resource_access(self.db, removed, app.resources, self.caller.now)
            changed.append("resourceClients")
        if hosts is not None:
            forward_auth.set_hosts(self.db, app, hosts)
            changed.append("forwardAuthHosts")
        if rules is not None:
            app.forward_auth_rules = rules
            changed.append("forwardAuthRules")
        if origins is not None:
            self.origins_changed()
        changed += sign_in_changed
        sign_in = self._sign_in_detail(app) if sign_in_changed else {}
        self._audit("app_update", application=app.name, id=app.id, changed=changed, **sign_in)
        return app

    def _set_sign_in(
        self,
        app: Application,
        policy: str | None,
        groups: list[str] | None,
        permission: str | None,
    ) -> list[str]:
        """Validate and set who may sign in to ``app`` (None: unchanged); the names of
        what changed.  Raises before anything is set."""
        if policy is None and groups is None and permission is None:
            return []
        if app.id == PASSPORT_APP_ID:
            raise Forbidden(
                "Passport's own application admits anyone who may sign in; who "
                "administers it is decided by its rights.",
                source="signInPolicy",
                value=policy,
            )
        if policy is not None and policy not in access.POLICIES:
            raise Invalid(
                f"signInPolicy must be one of {', '.join(access.POLICIES)}.",
                source="signInPolicy",
                value=policy[:100],
            )
        listed: list[Group] | None = None
        if groups is not None:
            if len(groups) > MAX_SIGN_IN_GROUPS:
                raise WrongLength(
                    f"signInGroups may list at most {MAX_SIGN_IN_GROUPS} groups.",
                    source="signInGroups",
                )
            listed = []
            for name in groups:
                group = directory.get_group_by_name(self.db, name, "signInGroups")
                if all(g.id != group.id for g in listed):
                    listed.append(group)
        named: str | None = None
        if permission:
            found = directory.find_permission(self.db, app, permission)
            if found is None:
                raise directory.missing("permission", "signInPermission", permission[:100])
            named = found.name
        after = policy if policy is not None else app.sign_in_policy
        if after == access.GROUPS and not (
            listed if listed is not None else app.sign_in_group_rows
        ):
            raise Invalid(
                "List at least one group whose members may sign in (signInGroups).",
                source="signInGroups",
            )
        current = app.sign_in_permission
        if permission is None and current:
            found_now = directory.find_permission(self.db, app, current)
            named_after = found_now.name if found_now is not None else None
        else:
            named_after = named
        if after == access.PERMISSION and not named_after:
            raise Invalid(
                "Name a permission of this application whose holders may sign in "
                "(signInPermission).",
                source="signInPermission",
            )
        changed: list[str] = []
        if policy is not None and policy != app.sign_in_policy:
            app.sign_in_policy = policy
            changed.append("signInPolicy")
        if listed is not None:
            keep = {g.id for g in listed}
            before = {row.group_id for row in app.sign_in_group_rows}
            if keep != before:
                app.sign_in_group_rows = [
                    row for row in app.sign_in_group_rows if row.group_id in keep
                ] + [
                    ApplicationSignInGroup(application_id=app.id, group_id=g.id, group=g)
                    for g in listed
                    if g.id not in before
                ]
                changed.append("signInGroups")
        if permission is not None and named != app.sign_in_permission:
            app.sign_in_permission = named
            changed.append("signInPermission")
        return changed

    @staticmethod
    def _sign_in_detail(app: Application) -> dict[str, Any]:
        """What the audit record says of who may sign in now."""
        return {
            "signInPolicy": app.sign_in_policy,
            "signInGroups": app.sign_in_groups,
            "signInPermission": app.sign_in_permission,
        }

    def _resource_clients(self, app: Application | None, values: list[str]) -> list[Application]:
        """The client applications to list on resource server ``app`` (None: one being
        created).  Listing a client widens what it may do, so each newly listed one is
        acted on too (:func:`ensure_may_act_on`: Passport itself only by ``admin``, which
        :func:`directory.resource_client_apps` refuses anyway)."""
        clients = directory.resource_client_apps(self.db, values)
        already = {r.client_app_id for r in app.resource_client_rows} if app else set()
        self._may_change(
            APPS_WRITE, *((c, "resourceClients") for c in clients if c.id not in already)
        )
        return clients

    def change_origins(self, ref: str | None, added: list[str], removed: list[str]) -> Application:
        """Allow some origins and stop allowing others, keeping the rest."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(ref)
        self._may_change(APPS_WRITE, (app, "application"))
        gone = directory.validate_origins(removed, "remove")
        current = [o for o in app.allowed_origins if o not in gone]
        current += [o for o in directory.validate_origins(added, "add") if o not in current]
        if current != app.allowed_origins:
            app.allowed_origins = current
            self.origins_changed()
            self._audit("app_update", application=app.name, id=app.id, origins=current)
        return app

    def set_application_enabled(self, ref: str | None, enabled: bool | None) -> Application:
        """Enable or disable an application (a disabled one grants nothing)."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(ref)
        if enabled is None:
            raise required("enabled", "enabled must be true or false.")
        self._may_change(APPS_WRITE, (app, "application"))
        if app.id == PASSPORT_APP_ID and not enabled:
            raise Forbidden("Passport itself cannot be disabled.", source="application")
        app.enabled = enabled
        if not enabled:
            end_application_access(self.db, app.id, self.caller.now)
        self._audit("app_enable" if enabled else "app_disable", application=app.name, id=app.id)
        return app

    def rotate_secret(
        self, ref: str | None, overlap_seconds: int | None, *, expected: str | None = None
    ) -> tuple[Application, str]:
        """A new client secret (returned once); the old one keeps working for the overlap.

        ``expected``: the :func:`passport.services.clients.secret_stamp` of the secret the
        caller saw; when the application's secret is no longer that one (the form was
        posted again, by a reload or a second tab), nothing is rotated (409), so that a
        second secret does not silently replace the one just shown.  None: rotate
        whatever the current secret (the API and the CLI)."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(ref)
        self._may_change(APPS_WRITE, (app, "application"))
        # Two posts of one form at once: the second waits here for the first to commit and
        # then compares the stamp with the secret the first made (a review found both
        # rotating, each showing a secret, one of them already dead).
        self.db.refresh(app, with_for_update=True)
        if expected is not None and not hmac.compare_digest(
            expected.encode("utf-8", "surrogatepass"),
            clients.secret_stamp(app).encode("ascii"),
        ):
            raise Conflict(
                f"The secret of '{app.name}' was already renewed since this page was shown: "
                "nothing was changed. Open the application again to renew it once more.",
                source="stamp",
                value=app.name,
            )
        overlap = overlap_seconds or 0
        if not 0 <= overlap <= MAX_OVERLAP_SECONDS:
            raise Invalid(
                f"overlapSeconds must be between 0 and {MAX_OVERLAP_SECONDS}.",
                source="overlapSeconds",
                value=overlap,
            )
        if not app.confidential:
            raise Invalid(
                "A public application has no secret.",
                source="application",
                value=app.name,
            )
        if app.client_id is None:
            secret = clients.issue_credentials(app)
        else:
            secret = clients.rotate_secret(app, self.caller.now, overlap)
        self._audit("app_rotate_secret", application=app.name, id=app.id, overlap=overlap)
        return app, secret

    def delete_application(self, ref: str | None) -> str:
        """Delete an application with its permissions and their grants; returns its name."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(ref)
        self._may_change(APPS_WRITE, (app, "application"))
        name, app_id = app.name, app.id
        directory.delete_application(self.db, app, self.caller.now)
        self.origins_changed()
        self._audit("app_delete", application=name, id=app_id)
        return name

    def add_permission(
        self, application: str | None, name: str | None, description: str | None = None
    ) -> tuple[Application, Permission]:
        """Define a permission in an application."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(application)
        self._may_change(APPS_WRITE, (app, "application"))
        permission = directory.create_permission(self.db, app, name, _description(description))
        self._audit("permission_create", application=app.name, name=permission.name)
        return app, permission

    def delete_permission(self, application: str | None, permission: str | None) -> str:
        """Delete a permission and every grant of it; returns its name."""
        ensure_right(self.actor, APPS_WRITE)
        app = self._application(application)
        target = self._permission(app, permission)
        self._may_change(APPS_WRITE, (app, "application"), (target, "permission"))
        # Whoever holds it loses it: the escalation rule for each user granted it and for
        # each group (a delegate may not take an administrator's grant away this way when
        # revoking it from them is refused).
        holders: list[Target] = [
            *self.db.scalars(
                select(User)
                .join(UserPermission, UserPermission.user_id == User.id)
                .where(UserPermission.permission_id == target.id)
            ),
            *self.db.scalars(
                select(Group)
                .join(GroupPermission, GroupPermission.group_id == Group.id)
                .where(GroupPermission.permission_id == target.id)
            ),
        ]
        for holder in holders:
            ensure_may_act_on(self.db, self.actor, holder, "permission")
            if isinstance(holder, Group):
                self._may_act_on_members(holder, "permission")
        name = target.name
        directory.delete_permission(self.db, target)
        self._audit("permission_delete", application=app.name, name=name)
        return name

    # -- signing keys ----------------------------------------------------------------------------
    def rotate_signing_keys(self, keys: SigningKeys) -> list[str]:
        """Publish a new signing key of each algorithm now, signing after
        ``key_rotation_delay``; returns their kids.  The keys sign every application's
        tokens, so only ``admin`` may (no target to weigh: Passport-wide).  The keys and
        the audit record are written in this transaction; once it commits this process
        reads its keys again (another process within its key cache's few seconds)."""
        ensure_right(self.actor, ADMIN)
        kids = keys.rotate(self.caller.now, self.db)
        self.accounts.after(keys.forget)
        self._audit("keys_rotate", kids=kids)
        return kids
