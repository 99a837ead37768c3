"""``/Permission/...``: what the logged-in user may do in an application."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from passport.api import API
from passport.errors import required
from passport.services import applications
from passport.services import permissions
from passport.web.controller import Controller
from passport.web.controller import not_found
from passport.web.registry import expose

LIMITS = {"application": 100, "permission": 100}


def find_application(conn: Connection, name: str | None) -> applications.AppRef:
    if not name:
        raise required("application", "Application name must be specified.")
    app = applications.lookup(conn, name)
    if app is None:
        raise not_found("application", "application", name)
    return app


@API.controller("Permission")
class PermissionController(Controller):
    @expose("GET", cross_origin=True, jsonp=True, max_length=LIMITS, statuses=(400, 404))
    def check(self, application: str | None, permission: str | None) -> dict[str, Any]:
        """Whether the session's user has ``permission`` in ``application``.

        False when nobody is logged in (or over JSONP from an unregistered page).
        """
        identity = self.ctx.identity
        if not application:
            raise required("application", "Application name must be specified.")
        with self.ctx.services.db.hot_read() as conn:
            if not permission:
                find_application(conn, application)  # an unknown application first: 404
                raise required("permission", "Permission name must be specified.")
            # The application and the grant in one statement (a hot path).
            granted = permissions.granted_by_name(
                conn, identity.id if identity is not None else None, application, permission
            )
        if granted is None:
            raise not_found("application", "application", application)
        return {"Granted": granted}

    @expose("GET", cross_origin=True, max_length=LIMITS, statuses=(400, 401, 404))
    def list(self, application: str | None) -> dict[str, Any]:
        """The session user's effective permissions in ``application``."""
        with self.ctx.services.db.hot_read() as conn:
            app = find_application(conn, application)
        user = self.require_user()
        return {
            "Application": app.name,
            "Permissions": permissions.effective(self.ctx.db, user.id, app.id),
        }
