"""``/Permission/...``: what the logged-in user may do in an application."""

from __future__ import annotations

from typing import Any

from passport.api import API
from passport.errors import required
from passport.services import applications
from passport.services import permissions
from passport.storage.models import Application
from passport.web.controller import Controller
from passport.web.controller import not_found
from passport.web.registry import expose

LIMITS = {"application": 100, "permission": 100}


def find_application(ctx_db: Any, name: str | None) -> Application:
    if not name:
        raise required("application", "Application name must be specified.")
    app = applications.find_by_name(ctx_db, name)
    if app is None:
        raise not_found("application", "application", name)
    return app


@API.controller("Permission")
class PermissionController(Controller):
    @expose("GET", jsonp=True, max_length=LIMITS, statuses=(400, 404))
    def check(self, application: str | None, permission: str | None) -> dict[str, Any]:
        """Whether the session's user has ``permission`` in ``application``.

        False when nobody is logged in (or over JSONP from an unregistered page).
        """
        app = find_application(self.ctx.db, application)
        if not permission:
            raise required("permission", "Permission name must be specified.")
        user = self.ctx.user
        granted = user is not None and permissions.granted(self.ctx.db, user, app, permission)
        return {"Granted": granted}

    @expose("GET", max_length=LIMITS, statuses=(400, 401, 404))
    def list(self, application: str | None) -> dict[str, Any]:
        """The session user's effective permissions in ``application``."""
        app = find_application(self.ctx.db, application)
        user = self.require_user()
        return {
            "Application": app.name,
            "Permissions": permissions.effective(self.ctx.db, user, app),
        }
