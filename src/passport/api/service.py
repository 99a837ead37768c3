"""``/Service/...``: what this service is, and application lookup (the original design)."""

from __future__ import annotations

from typing import Any

from passport import __version__
from passport.api import API
from passport.errors import NotFound
from passport.errors import required
from passport.services import applications
from passport.web.controller import Controller
from passport.web.registry import expose


@API.controller("Service")
class ServiceController(Controller):
    @expose("GET", cross_origin=True, jsonp=True)
    def Index(self) -> dict[str, Any]:
        """Name and version of the service."""
        return {"Service": "Passport", "Version": __version__}

    @expose("GET", cross_origin=True, jsonp=True, max_length={"name": 100}, statuses=(400, 404))
    def getApplication(self, name: str | None) -> dict[str, Any]:
        """The ID of the application called ``name`` (any letter case)."""
        if name is None or name == "":
            raise required("name", "Application name must be specified.")
        with self.ctx.services.db.hot_read() as conn:
            app = applications.lookup(conn, name)
        if app is None:
            raise NotFound(f"Could not find application '{name}'.", source="name", value=name)
        return {
            "Message": f"Application ID for '{app.name}' is: {app.id}",
            "Application": {"ID": app.id},
        }
