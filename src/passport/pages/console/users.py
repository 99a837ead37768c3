"""The console's users: search, a user's page and the actions on them."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.api.shapes import factors_json
from passport.api.shapes import session_json
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

USER_ACTIONS = ("disable", "enable", "logout", "reset-factors", "reset-password", "delete")


class UserScreens(ConsoleBase):
    """The console's users: search, a user's page and the actions on them."""

    # -- users -------------------------------------------------------------------------
    def users(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(USERS_READ):
                return render.error_page("Reading users needs users:read.", status=403)
            notice = ""
            if request.method == "POST":  # an invitation (Administration.invite decides)
                groups = [g.strip() for g in (params.get("groups") or "").split(",") if g.strip()]
                invitation = self._administration(ctx, admin).invite(params.get("email"), groups)
                notice = f"An invitation is on its way to {invitation.email}."
            q = (params.get("q") or "").strip()
            state = params.get("state") or ""
            offset = offset_of(params.get("offset"))
            found = listings.search_users(
                ctx.db,
                q or None,
                {"disabled": True, "enabled": False}.get(state),
                offset,
                PAGE_SIZE,
                "username",
                unverified=state == "unverified",
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
            sessions = [
                session_json(s, None)
                for s in self.services.sessions.list_for_user(target.id, ctx.now)
            ]
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
                sessions=sessions,
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
