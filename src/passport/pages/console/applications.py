"""The console's applications: search, register, an application's page — its settings,
its permissions and who holds them, its secret, its back-channel logout deliveries."""

from __future__ import annotations

from typing import Any

from werkzeug import Request
from werkzeug import Response

from passport.pages import render
from passport.pages.console.base import APPS_READ
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.pages.console.base import link
from passport.pages.console.base import offset_of
from passport.services import access
from passport.services import clients
from passport.services import directory
from passport.services import listings
from passport.services.administration import Administration
from passport.services.factors import APPLICATION_POLICIES
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import APPS_WRITE
from passport.storage.models import Application
from passport.web.context import RequestContext

HOLDERS_PAGE = 50


def lines(value: str | None) -> list[str] | None:
    """A textarea's list, one item a line (URIs and scopes hold no white space);
    None when the field was not sent: that setting stays as it is."""
    return None if value is None else value.split()


def group_lines(value: str | None) -> list[str] | None:
    """The sign-in groups' textarea: one group name a line (a name may hold spaces);
    None when the field was not sent."""
    if value is None:
        return None
    return [line.strip() for line in value.splitlines() if line.strip()]


def rule_lines(value: str | None) -> list[str] | None:
    """The forward-auth rules' textarea, one ``"<pattern> <permission>"`` a line (a rule
    holds a space); None when the field was not sent."""
    if value is None:
        return None
    return [line.strip() for line in value.splitlines() if line.strip()]


class ApplicationScreens(ConsoleBase):
    """The console's applications: search, register, an application's page."""

    # -- applications ---------------------------------------------------------------------
    def applications(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(APPS_READ) or admin.may(APPS_WRITE)):
                return render.error_page("Reading applications needs apps:read.", status=403)
            if request.method == "POST":  # Administration.create_application decides
                app, secret = self._administration(ctx, admin).create_application(
                    params.get("name"),
                    description=params.get("description"),
                    origins=(params.get("origins") or "").split(),
                    redirect_uris=(params.get("redirecturis") or "").split(),
                    confidential=params.get("public") != "true",
                )
                return self._secret(request, admin, app, secret, "registered")
            return self._named_list(
                request, ctx, admin, params, listings.search_applications, "applications"
            )

        return self._run(request, screen)

    def application(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(APPS_READ) or admin.may(APPS_WRITE)):
                return render.error_page("Reading applications needs apps:read.", status=403)
            administration = self._administration(ctx, admin)
            ref = params.get("id") or ""
            notice = ""
            if request.method == "POST":
                action = params.get("action")
                if directory.get_application(ctx.db, ref, "id").id == PASSPORT_APP_ID:
                    return render.error_page(
                        "Passport's own application is changed with the CLI, not here.",
                        status=403,
                    )
                if action == "rotate":
                    overlap = params.get("overlap") or "0"
                    if not (overlap.isascii() and overlap.isdigit() and len(overlap) < 10):
                        raise invalid("The overlap is a number of seconds.", "overlap")
                    # The stamp of the secret the form was shown for: a reload of the
                    # new secret's page posts it again and is refused (409), not rotated.
                    app, secret = administration.rotate_secret(
                        ref, int(overlap), expected=params.get("stamp") or ""
                    )
                    return self._secret(request, admin, app, secret, "given a new secret")
                if action == "delete":
                    app = directory.get_application(ctx.db, ref, "id")
                    if (params.get("confirm") or "") != app.name:
                        raise invalid("Type the application's name to confirm.", "confirm")
                    name = administration.delete_application(ref)
                    return self._screen(
                        request,
                        "console_done.html",
                        admin,
                        notice=f"{name} was deleted.",
                        back="/admin/applications",
                    )
                notice = self._application_act(administration, ctx, params, ref, action)
            app = directory.get_application(ctx.db, ref, "id")
            return self._application_page(request, ctx, admin, app, params, notice)

        return self._run(request, screen)

    def _application_act(
        self,
        administration: Administration,
        ctx: RequestContext,
        params: dict[str, str],
        ref: str,
        action: str | None,
    ) -> str:
        """One change of an application, by its operation (rights, escalation, audit);
        the notice to show."""
        if action in ("enable", "disable"):
            app = administration.set_application_enabled(ref, action == "enable")
            return f"{app.name} is {'enabled' if app.enabled else 'disabled'}."
        if action == "update":
            app = administration.update_application(
                ref,
                name=params.get("name"),
                description=params.get("description"),
                origins=lines(params.get("origins")),
                redirect_uris=lines(params.get("redirecturis")),
                post_logout_redirect_uris=lines(params.get("postlogouturis")),
                first_party=params.get("firstparty") == "true",
                access_token_format=params.get("tokenformat"),
                backchannel_logout_uri=params.get("backchanneluri"),
                scopes=lines(params.get("scopes")),
                refresh_tokens=params.get("refreshtokens") == "true",
                require_pushed_authorization_requests=params.get("par") == "true",
                device_grant=params.get("devicegrant") == "true",
                mfa_policy=params.get("mfapolicy"),
                sign_in_policy=params.get("signinpolicy"),
                sign_in_groups=group_lines(params.get("signingroups")),
                sign_in_permission=params.get("signinpermission"),
                forward_auth_hosts=lines(params.get("forwardauthhosts")),
                forward_auth_rules=rule_lines(params.get("forwardauthrules")),
            )
            return f"{app.name} saved."
        if action == "addpermission":
            app, permission = administration.add_permission(
                ref, params.get("name"), params.get("description")
            )
            return f"Permission {permission.name} defined."
        if action == "deletepermission":
            app = directory.get_application(ctx.db, ref, "id")
            found = directory.find_permission(ctx.db, app, params.get("permission"))
            if found is None:
                raise directory.missing("permission", "permission", params.get("permission"))
            if (params.get("confirm") or "") != found.name:
                raise invalid("Type the permission's name to confirm the deletion.", "confirm")
            name = administration.delete_permission(ref, found.name)
            return f"Permission {name} and every grant of it were deleted."
        if action == "grant":
            return self._grant(administration, ctx, params, ref)
        if action == "revoke":
            # The page's buttons name the holder by id.
            user, group = params.get("user") or None, params.get("group") or None
            _app, permission, changed = administration.change_grant(
                False, ref, params.get("permission"), username=user, group=group
            )
            return f"{permission.name} revoked." if changed else "Nothing changed."
        raise invalid("Unknown action.", "action")

    def _grant(
        self,
        administration: Administration,
        ctx: RequestContext,
        params: dict[str, str],
        ref: str,
    ) -> str:
        """Grant a permission to a user or a group typed by name (never read as a row
        id: "001" is a username)."""
        kind, holder = params.get("kind"), params.get("holder")
        if kind == "user":
            user = directory.find_user_by_username(ctx.db, holder, "holder")
            who, username, group = user.username, str(user.id), None
        elif kind == "group":
            team = directory.get_group_by_name(ctx.db, holder, "holder")
            who, username, group = f"group {team.name}", None, str(team.id)
        else:
            raise invalid("Grant to a user or a group.", "kind")
        _app, permission, changed = administration.change_grant(
            True, ref, params.get("permission"), username=username, group=group
        )
        return f"{permission.name} granted to {who}." if changed else "Nothing changed."

    def _application_page(
        self,
        request: Request,
        ctx: RequestContext,
        admin: Admin,
        app: Application,
        params: dict[str, str],
        notice: str,
    ) -> Response:
        values: dict[str, Any] = {}
        shown = params.get("holders") if request.method == "GET" else None
        if shown:
            permission = directory.find_permission(ctx.db, app, shown)
            if permission is None:
                raise directory.missing("permission", "holders", shown)
            holders = listings.holders_of(
                ctx.db, permission, offset_of(params.get("offset")), HOLDERS_PAGE
            )
            later = holders.offset + HOLDERS_PAGE
            values.update(
                shown=permission,
                holders=holders,
                next=link("/admin/application", id=app.id, holders=permission.name, offset=later)
                if holders.more
                else None,
            )
        return self._screen(
            request,
            "console_application.html",
            admin,
            app=app,
            notice=notice,
            grants=listings.grants_of(ctx.db, app.id),
            delivery=listings.backchannel_status(ctx.db, app.id, ctx.now)
            if app.backchannel_logout_uri
            else None,
            stamp=clients.secret_stamp(app),
            policies=APPLICATION_POLICIES,
            sign_in_policies=access.POLICIES,
            sign_in_permission_defined=app.sign_in_permission is not None
            and directory.find_permission(ctx.db, app, app.sign_in_permission) is not None,
            **values,
        )
