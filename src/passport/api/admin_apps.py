"""Administration of applications, their permissions, and grants.

Reading needs the Passport permission ``apps:read``, changing ``apps:write``;
granting one of Passport's own permissions needs ``admin``.  Every change is
audited with the acting administrator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from passport.api import API
from passport.errors import ClientError
from passport.errors import required
from passport.services import clients
from passport.services import directory
from passport.services.permissions import PASSPORT_APP_ID
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission
from passport.web.controller import Controller
from passport.web.controller import not_found
from passport.web.controller import split_list
from passport.web.registry import expose

TEXT = {
    "accessTokenFormat": 10,
    "backchannelLogoutUri": 500,
    "name": 100,
    "application": 100,
    "permission": 100,
    "q": 100,
    "description": 2000,
    "origins": 4000,
    "redirectUris": 8000,
    "username": 64,
    "group": 100,
    "sort": 32,
}
READ = (400, 401, 403, 404)
WRITE = (400, 401, 403, 404, 409)


class _AppAdmin(Controller):
    def _app(self, ref: str | None, source: str = "application") -> Application:
        if not ref:
            raise required(source, "Application must be specified.")
        app = directory.find_application(self.ctx.db, ref)
        if app is None:
            raise not_found("application", source, ref)
        return app

    def _permission(self, app: Application, name: str | None) -> Permission:
        permission = directory.find_permission(self.ctx.db, app, name)
        if permission is None:
            raise not_found("permission", "permission", name)
        return permission


@API.controller("Applications")
class ApplicationsController(_AppAdmin):
    @expose("POST", max_length=TEXT, statuses=WRITE)
    def create(
        self,
        name: str | None,
        description: str | None,
        origins: str | None,
        redirectUris: str | None,
        confidential: bool | None,
        firstParty: bool | None,
        accessTokenFormat: str | None,
        backchannelLogoutUri: str | None,
    ) -> dict[str, Any]:
        """Register an application; its client secret is in the answer, this once only."""
        actor = self.require_right("apps:write")
        app, secret = directory.create_application(
            self.ctx.db,
            self.ctx.now,
            name,
            description=description or "",
            origins=split_list(origins),
            redirect_uris=split_list(redirectUris),
            confidential=True if confidential is None else confidential,
            first_party=bool(firstParty),
            access_token_format=accessTokenFormat or "jwt",
            backchannel_logout_uri=backchannelLogoutUri,
        )
        self.ctx.app.forget_origins()
        self.admin_audit(actor, "app_create", {"id": app.id}, application=app.name)
        return {"Application": directory.application_json(app), "ClientSecret": secret}

    @expose("GET", max_length=TEXT, statuses=READ)
    def get(self, application: str | None) -> dict[str, Any]:
        """One application, by id or name."""
        self.require_right("apps:read")
        return {"Application": directory.application_json(self._app(application))}

    @expose("GET", max_length=TEXT, statuses=READ)
    def list(
        self, q: str | None, offset: int | None, limit: int | None, sort: str | None
    ) -> dict[str, Any]:
        """Applications, filtered by ``q`` (part of the name), paginated, sorted."""
        self.require_right("apps:read")
        query = select(Application)
        if q:
            query = query.where(Application.name_key.contains(q.casefold(), autoescape=True))
        items, meta = self.page(
            query,
            offset,
            limit,
            sort,
            {"name": Application.name_key, "id": Application.id, "created": Application.created_at},
        )
        return {"Items": [directory.application_json(a) for a in items], **meta}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def update(
        self,
        application: str | None,
        name: str | None,
        description: str | None,
        origins: str | None,
        redirectUris: str | None,
        firstParty: bool | None,
        accessTokenFormat: str | None,
        backchannelLogoutUri: str | None,
    ) -> dict[str, Any]:
        """Change what is given; ``origins``/``redirectUris`` replace the whole list."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        if name is not None:
            directory.rename_application(self.ctx.db, app, name)
        if description is not None:
            app.description = description
        if origins is not None:
            app.allowed_origins = directory.validate_origins(split_list(origins))
            self.ctx.app.forget_origins()
        if redirectUris is not None:
            app.redirect_uris = directory.validate_redirect_uris(split_list(redirectUris))
        if firstParty is not None:
            app.first_party = firstParty
        if accessTokenFormat is not None:
            app.access_token_format = directory.validate_token_format(accessTokenFormat)
        if backchannelLogoutUri is not None:
            app.backchannel_logout_uri = directory.validate_backchannel_uri(backchannelLogoutUri)
        self.admin_audit(actor, "app_update", {"id": app.id}, application=app.name)
        return {"Application": directory.application_json(app)}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def setEnabled(self, application: str | None, enabled: bool | None) -> dict[str, Any]:
        """Enable or disable an application (a disabled one grants nothing)."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        if enabled is None:
            raise required("enabled", "enabled must be true or false.")
        if app.id == PASSPORT_APP_ID and not enabled:
            raise ClientError(
                "Passport itself cannot be disabled.", source="application", number=403
            )
        app.enabled = enabled
        self.admin_audit(
            actor, "app_enable" if enabled else "app_disable", {"id": app.id}, application=app.name
        )
        return {"Application": directory.application_json(app)}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def rotateSecret(self, application: str | None, overlapSeconds: int | None) -> dict[str, Any]:
        """A new client secret; the old one keeps working for ``overlapSeconds`` (default 0)."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        overlap = overlapSeconds or 0
        if not 0 <= overlap <= 30 * 86400:
            raise ClientError(
                "overlapSeconds must be between 0 and 2592000.",
                source="overlapSeconds",
                value=overlap,
                number=3,
            )
        if not app.confidential:
            raise ClientError(
                "A public application has no secret.",
                source="application",
                value=app.name,
                number=3,
            )
        if app.client_id is None:
            secret = clients.issue_credentials(app)
        else:
            secret = clients.rotate_secret(app, self.ctx.now, overlap)
        self.admin_audit(
            actor, "app_rotate_secret", {"id": app.id, "overlap": overlap}, application=app.name
        )
        return {"Application": directory.application_json(app), "ClientSecret": secret}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def delete(self, application: str | None) -> dict[str, Any]:
        """Delete an application with its permissions and every grant of them."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        name = app.name
        directory.delete_application(self.ctx.db, app)
        self.ctx.app.forget_origins()
        self.admin_audit(actor, "app_delete", {"id": app.id}, application=name)
        return {"Deleted": name}

    # -- permission definitions ------------------------------------------------------------
    @expose("POST", max_length=TEXT, statuses=WRITE)
    def addPermission(
        self, application: str | None, name: str | None, description: str | None
    ) -> dict[str, Any]:
        """Define a permission in an application."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        permission = directory.create_permission(self.ctx.db, app, name, description or "")
        self.admin_audit(
            actor, "permission_create", {"name": permission.name}, application=app.name
        )
        return {"Permission": directory.permission_json(permission, app)}

    @expose("GET", max_length=TEXT, statuses=READ)
    def permissions(self, application: str | None) -> dict[str, Any]:
        """The permissions an application defines."""
        self.require_right("apps:read")
        app = self._app(application)
        rows = self.ctx.db.scalars(
            select(Permission)
            .where(Permission.application_id == app.id)
            .order_by(Permission.name_key)
        ).all()
        return {"Items": [directory.permission_json(p, app) for p in rows]}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def deletePermission(self, application: str | None, permission: str | None) -> dict[str, Any]:
        """Delete a permission and every grant of it."""
        actor = self.require_right("apps:write")
        app = self._app(application)
        target = self._permission(app, permission)
        directory.delete_permission(self.ctx.db, target)
        self.admin_audit(actor, "permission_delete", {"name": target.name}, application=app.name)
        return {"Deleted": target.name}


@API.controller("Grants")
class GrantsController(_AppAdmin):
    def _target(self, username: str | None, group: str | None) -> tuple[User | None, Group | None]:
        if bool(username) == bool(group):
            raise ClientError("Give exactly one of username or group.", source="username", number=1)
        if username:
            user = directory.find_user(self.ctx.db, username)
            if user is None:
                raise not_found("user", "username", username)
            return user, None
        found = directory.find_group(self.ctx.db, group)
        if found is None:
            raise not_found("group", "group", group)
        return None, found

    def _change(
        self,
        add: bool,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        actor = self.require_right("apps:write")
        app = self._app(application)
        target = self._permission(app, permission)
        if app.id == PASSPORT_APP_ID:
            self.require_right("admin")
        user, grp = self._target(username, group)
        change = directory.grant if add else directory.revoke
        changed = change(self.ctx.db, target, user=user, group=grp)
        who = {"user": user.username} if user else {"group": grp.name if grp else ""}
        self.admin_audit(
            actor,
            "grant" if add else "revoke",
            {"permission": target.name, **who},
            user=user,
            application=app.name,
        )
        return {"Changed": changed}

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def grant(
        self,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        """Grant a permission to a user or a group."""
        return self._change(True, application, permission, username, group)

    @expose("POST", max_length=TEXT, statuses=WRITE)
    def revoke(
        self,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        """Take a permission back from a user or a group."""
        return self._change(False, application, permission, username, group)

    @expose("GET", max_length=TEXT, statuses=READ)
    def list(self, application: str | None) -> dict[str, Any]:
        """Who holds which permission of an application, directly or through a group."""
        self.require_right("apps:read")
        app = self._app(application)
        direct = self.ctx.db.execute(
            select(Permission.name, User.username)
            .join(UserPermission, UserPermission.permission_id == Permission.id)
            .join(User, User.id == UserPermission.user_id)
            .where(Permission.application_id == app.id)
            .order_by(Permission.name_key, User.username_key)
        ).all()
        groups = self.ctx.db.execute(
            select(Permission.name, Group.name)
            .join(GroupPermission, GroupPermission.permission_id == Permission.id)
            .join(Group, Group.id == GroupPermission.group_id)
            .where(Permission.application_id == app.id)
            .order_by(Permission.name_key, Group.name_key)
        ).all()
        return {
            "Users": [{"Permission": p, "Username": u} for p, u in direct],
            "Groups": [{"Permission": p, "Group": g} for p, g in groups],
        }
