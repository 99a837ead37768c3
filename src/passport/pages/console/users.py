"""The console's users: search, create, a user's page and the actions on them."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.api.shapes import admin_session_json
from passport.api.shapes import factors_json
from passport.pages import render
from passport.pages.console.base import AUDIT_READ
from passport.pages.console.base import PAGE_SIZE
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.pages.console.base import link
from passport.pages.console.base import offset_of
from passport.services import listings
from passport.services.administration import Administration
from passport.services.policy import USERS_READ
from passport.web.context import RequestContext

USER_ACTIONS = (
    "disable",
    "enable",
    "logout",
    "end-session",
    "revoke-app",
    "update",
    "reset-factors",
    "reset-password",
    "delete",
)
# What the list's "Show" chooses: the filters of listings.search_users.
STATES = ("", "enabled", "disabled", "unverified", "nomfa")


class UserScreens(ConsoleBase):
    """The console's users: search, create, a user's page and the actions on them."""

    # -- users -------------------------------------------------------------------------
    def users(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(USERS_READ):
                return render.error_page("Reading users needs users:read.", status=403)
            notice = ""
            if request.method == "POST" and params.get("action") == "create":
                # Administration.create_user decides (the API's Users/create); the address
                # is to be confirmed by mail unless the administrator vouches for it.
                user = self._administration(ctx, admin).create_user(
                    params.get("username"),
                    params.get("password"),
                    params.get("email") or None,
                    params.get("displayname") or None,
                    confirm_address=params.get("address") != "confirmed",
                )
                return self._screen(
                    request,
                    "console_done.html",
                    admin,
                    notice=f"User {user.username} created.",
                    back=f"/admin/user?id={user.id}",
                )
            if request.method == "POST":  # an invitation (Administration.invite decides)
                groups = [g.strip() for g in (params.get("groups") or "").split(",") if g.strip()]
                invitation = self._administration(ctx, admin).invite(params.get("email"), groups)
                notice = f"An invitation is on its way to {invitation.email}."
            q = (params.get("q") or "").strip()
            state = params.get("state") or ""
            if state not in STATES:
                raise invalid("Show must be one of the listed choices.", "state")
            offset = offset_of(params.get("offset"))
            found = listings.search_users(
                ctx.db,
                q or None,
                {"disabled": True, "enabled": False}.get(state),
                offset,
                PAGE_SIZE,
                "username",
                unverified=state == "unverified",
                without_second_factor=state == "nomfa",
            )
            return self._screen(
                request,
                "console_users.html",
                admin,
                users=found.items,
                page=found,
                q=q,
                state=state,
                notice=notice,
                mail=self.settings.mail_enabled,
                previous=link(
                    "/admin/users",
                    q=q,
                    state=state,
                    offset=max(0, min(found.offset, found.total) - PAGE_SIZE),
                )
                if found.offset
                else None,
                next=link("/admin/users", q=q, state=state, offset=found.offset + PAGE_SIZE)
                if found.offset + PAGE_SIZE < found.total
                else None,
            )

        return self._run(request, screen)

    def user(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(USERS_READ):  # the page it acts from shows the user
                return render.error_page("A user's page needs users:read.", status=403)
            administration = self._administration(ctx, admin)
            notice = ""
            ref = params.get("id") or ""
            if request.method == "POST":
                notice, ref = self._act(administration, params, ref)
                if not ref:  # deleted
                    return self._screen(
                        request, "console_done.html", admin, notice=notice, back="/admin/users"
                    )
            target, factors = administration.user_factors(ref)  # checks users:read
            _, sessions = administration.user_sessions(str(target.id))
            events = (
                listings.audit_events(ctx.db, username=target.username, limit=10).items
                if admin.may(AUDIT_READ)
                else None
            )
            return self._screen(
                request,
                "console_user.html",
                admin,
                target=target,
                groups=listings.group_names_of(ctx.db, target.id),
                factors=factors_json(factors),
                sessions=[admin_session_json(s) for s in sessions],
                permissions=listings.user_permissions(ctx.db, target.id),
                applications=listings.user_applications(ctx.db, target.id, ctx.now),
                events=events,
                notice=notice,
                actions=USER_ACTIONS,
            )

        return self._run(request, screen)

    def _act(
        self, administration: Administration, params: dict[str, str], ref: str
    ) -> tuple[str, str]:
        """One action on a user: the operation decides (rights, escalation, what ends,
        the audit record); returns what to tell and the user to show next ("" once
        deleted)."""
        action = params.get("action")
        if action == "disable":
            user = administration.set_user_disabled(ref, True)
            return f"{user.username} is disabled; their sessions and tokens ended.", ref
        if action == "enable":
            user = administration.set_user_disabled(ref, False)
            return f"{user.username} is enabled again.", ref
        if action == "logout":
            user, ended = administration.logout_everywhere(ref)
            return f"{ended} session(s) of {user.username} ended.", ref
        if action == "end-session":
            user, _ = administration.end_session(ref, params.get("session"))
            return f"That session of {user.username} ended.", ref
        if action == "revoke-app":
            user, name, revoked = administration.revoke_application(ref, params.get("application"))
            return (
                f"{user.username}'s access to {name} ended ({revoked} token(s) revoked, "
                "consent forgotten).",
                ref,
            )
        if action == "update":
            # A field left out is unchanged; an empty address removes it (Users/update).
            user = administration.update_user(
                ref, email=params.get("email"), display_name=params.get("displayname")
            )
            return f"The profile of {user.username} is saved.", ref
        if action == "reset-factors":
            user, removed, ended = administration.reset_factors(ref)
            what = ", ".join(removed.methods()) or "none"
            return f"Second factors of {user.username} removed ({what}).", ref
        if action == "reset-password":
            user = administration.reset_password(ref, params.get("password"))
            return f"{user.username} has a new password; their sessions ended.", ref
        if action == "delete":
            target = administration.user_factors(ref)[0]
            if (params.get("confirm") or "") != target.username:
                raise invalid("Type the username to confirm the deletion.", "confirm")
            name = administration.delete_user(ref)
            return f"{name} was deleted.", ""
        raise invalid("Unknown action.", "action")
