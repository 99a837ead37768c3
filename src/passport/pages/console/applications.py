"""The console's applications: search, register, an application's page."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.pages import render
from passport.pages.console.base import APPS_READ
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.services import directory
from passport.services import listings
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import APPS_WRITE
from passport.web.context import RequestContext


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
                    app, secret = administration.rotate_secret(ref, int(overlap))
                    return self._secret(request, admin, app, secret, "given a new secret")
                if action in ("enable", "disable"):
                    app = administration.set_application_enabled(ref, action == "enable")
                    notice = f"{app.name} is {'enabled' if app.enabled else 'disabled'}."
                elif action == "delete":
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
                else:
                    raise invalid("Unknown action.", "action")
            app = directory.get_application(ctx.db, ref, "id")
            return self._screen(request, "console_application.html", admin, app=app, notice=notice)

        return self._run(request, screen)
