"""The console's groups: search, create, a group's page, members, grants and settings."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.pages import render
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.services import directory
from passport.services import listings
from passport.services.administration import Administration
from passport.services.policy import GROUPS_WRITE
from passport.services.policy import USERS_READ
from passport.web.context import RequestContext


class GroupScreens(ConsoleBase):
    """The console's groups: search, create, a group's page, members, grants and settings."""

    # -- groups --------------------------------------------------------------------------
    def groups(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(USERS_READ) or admin.may(GROUPS_WRITE)):
                return render.error_page("Reading groups needs users:read.", status=403)
            notice = ""
            if request.method == "POST":  # a new group (Administration.create_group decides)
                made = self._administration(ctx, admin).create_group(
                    params.get("name"),
                    params.get("description"),
                    require_mfa=params.get("requiremfa") == "true",
                )
                notice = f"Group {made.name} created."
            return self._named_list(
                request, ctx, admin, params, listings.search_groups, "groups", notice=notice
            )

        return self._run(request, screen)

    def group(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(USERS_READ) or admin.may(GROUPS_WRITE)):
                return render.error_page("Reading groups needs users:read.", status=403)
            administration = self._administration(ctx, admin)
            ref = params.get("id") or ""
            notice = ""
            if request.method == "POST":
                notice, ref = self._group_act(administration, ctx, params, ref)
                if not ref:
                    return self._screen(
                        request, "console_done.html", admin, notice=notice, back="/admin/groups"
                    )
            found = directory.get_group(ctx.db, ref, "id")
            return self._screen(
                request,
                "console_group.html",
                admin,
                group=found,
                members=listings.members_of(ctx.db, found.id),
                grants=listings.grants_of_group(ctx.db, found.id),
                notice=notice,
            )

        return self._run(request, screen)

    def _group_act(
        self,
        administration: Administration,
        ctx: RequestContext,
        params: dict[str, str],
        ref: str,
    ) -> tuple[str, str]:
        """One change of a group, by its operation (rights, escalation, audit)."""
        action = params.get("action")
        if action in ("add", "remove"):
            # A typed name is a username, never read as a row id ("001" is a name);
            # the page's own buttons name members by id.
            member = params.get("member") or ""
            if action == "add" or not (member.isascii() and member.isdigit()):
                found = directory.find_user_by_username(ctx.db, member, "member")
                member = str(found.id)
            group, user, changed = administration.change_membership(action == "add", ref, member)
            verb = "added to" if action == "add" else "removed from"
            return (f"{user.username} {verb} {group.name}." if changed else "Nothing changed."), ref
        if action == "update":
            group = administration.update_group(
                ref,
                name=params.get("name") or None,
                description=params.get("description"),
                require_mfa=params.get("requiremfa") == "true",
            )
            return f"Group {group.name} saved.", ref
        if action in ("grant", "revoke"):
            # Typed, the application is a name ("2024" is one); the page's revoke
            # buttons name it by id.
            application = params.get("application") or ""
            if action == "grant":
                application = str(
                    directory.get_application_by_name(ctx.db, application, "application").id
                )
            app, permission, changed = administration.change_grant(
                action == "grant", application, params.get("permission"), group=ref or None
            )
            verb = "granted to" if action == "grant" else "revoked from"
            group = directory.get_group(ctx.db, ref, "id")
            done = f"{app.name}: {permission.name} {verb} {group.name}."
            return (done if changed else "Nothing changed."), ref
        if action == "delete":
            group = directory.get_group(ctx.db, ref, "id")
            if (params.get("confirm") or "") != group.name:
                raise invalid("Type the group's name to confirm the deletion.", "confirm")
            return f"Group {administration.delete_group(ref)} was deleted.", ""
        raise invalid("Unknown action.", "action")
