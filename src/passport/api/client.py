"""``/Client/...``: server-to-server calls of an application, authenticated with
HTTP Basic (client id and secret).  An application only ever sees its own permissions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from passport.api import API
from passport.api.shapes import public_user
from passport.errors import required
from passport.services import access
from passport.services import clients
from passport.services import permissions
from passport.services.accounts import canonical
from passport.services.factors import acr_of
from passport.services.factors import amr_list
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.storage.models import Application
from passport.storage.models import User
from passport.web.controller import Controller
from passport.web.controller import not_found
from passport.web.errors import WebError
from passport.web.registry import expose


@API.controller("Client")
class ClientController(Controller):
    def _application(self) -> Application:
        credentials = clients.parse_basic(self.ctx.request.headers.get("Authorization"))
        app = None
        if credentials is not None:
            app = clients.authenticate(self.ctx.db, credentials, self.ctx.now)
        if app is None:
            raise WebError(
                "Authenticate with the application's client id and secret (HTTP Basic).",
                source="Authorization",
                number=401,
                headers={"WWW-Authenticate": 'Basic realm="passport", charset="UTF-8"'},
            )
        return app

    def _user(self, username: str | None) -> User:
        if not username:
            raise required("username", "Username must be specified.")
        user = self.ctx.db.scalars(
            select(User).where(User.username_key == canonical(username))
        ).first()
        if user is None:
            raise not_found("user", "username", username)
        return user

    @expose("GET", max_length={"username": 64, "permission": 100}, statuses=(400, 401, 404))
    def checkPermission(self, username: str | None, permission: str | None) -> dict[str, Any]:
        """Whether ``username`` has ``permission`` in the calling application."""
        app = self._application()
        user = self._user(username)
        if not permission:
            raise required("permission", "Permission name must be specified.")
        return {"Granted": permissions.granted(self.ctx.db, user.id, app.id, permission)}

    @expose("GET", max_length={"username": 64}, statuses=(400, 401, 404))
    def listPermissions(self, username: str | None) -> dict[str, Any]:
        """``username``'s effective permissions in the calling application."""
        app = self._application()
        user = self._user(username)
        return {"Permissions": permissions.effective(self.ctx.db, user.id, app.id)}

    @expose("POST", secrets=("token",), max_length={"token": 128}, statuses=(400, 401))
    def validateSession(self, token: str | None) -> dict[str, Any]:
        """Is this Passport session cookie value live, for a user who may sign in to the
        calling application (its sign-in policy, :func:`passport.services.access.admission`)?
        Then who, and their permissions here; a user it does not admit is ``Valid: false``
        (audited)."""
        app = self._application()
        if not token:
            raise required("token", "Session token must be specified.")
        info = self.ctx.services.sessions.get(token, self.ctx.now)
        user = self.ctx.db.get(User, info.user_id) if info is not None else None
        if info is None or user is None or user.disabled:
            return {"Valid": False, "User": None, "Permissions": []}
        admitted = access.admission(self.ctx.db, app, user)
        if not admitted.allowed:
            self.ctx.audit(
                access.refusal_record(
                    app,
                    user,
                    admitted,
                    door="validateSession",
                    at=self.ctx.now,
                    ip=self.ctx.client_ip,
                    user_agent=self.ctx.user_agent,
                ),
                durable=True,
            )
            return {"Valid": False, "User": None, "Permissions": []}
        owed = reading(self.ctx.settings, self.ctx.services.throttle, self.ctx.db).required_level(
            user.id, app.mfa_policy, None
        )
        if level_of(info.amr) < owed:
            # Signed in less strongly than this application (its mfa_policy) or the user's
            # own rule asks: not a session it may admit; the user signs in again with the
            # second factor (services/factors.py).
            return {"Valid": False, "User": None, "Permissions": [], "StepUp": True}
        return {
            "Valid": True,
            "User": public_user(user),
            "Expires": info.expires_at.isoformat(),
            "Permissions": permissions.effective(self.ctx.db, user.id, app.id),
            "Amr": amr_list(info.amr),
            "Acr": acr_of(info.amr),
        }
