"""Administration of applications, their permissions, and grants.

Reading needs the Passport permission ``apps:read``, changing ``apps:write``;
the Passport application itself, and granting or revoking one of its
permissions, need ``admin`` (:mod:`passport.services.policy`).  Every change is
one operation of :mod:`passport.services.administration`, audited with the
acting administrator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from passport.api import API
from passport.api.shapes import application_json
from passport.api.shapes import permission_json
from passport.services import directory
from passport.services import listings
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission
from passport.web.controller import Controller
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
    "postLogoutRedirectUris": 8000,
    "scopes": 1000,
    "idTokenSignedResponseAlg": 10,
    "resources": 12000,
    "resourceClients": 8000,
    "mfaPolicy": 16,
    "signInPolicy": 16,
    "signInGroups": 12000,
    "signInPermission": 100,
    "forwardAuthHosts": 6000,
    "forwardAuthRules": 8000,
    "username": 64,
    "group": 100,
    "sort": 32,
}
READ = (400, 401, 403, 404)
WRITE = (400, 401, 403, 404, 409)


def _list(value: str | None) -> list[str] | None:
    """A list parameter: None (absent) leaves the list as it is; "" empties it."""
    return None if value is None else split_list(value)


def group_names(value: str | None) -> list[str] | None:
    """``signInGroups``: group names separated by commas or line breaks (a group's name
    may hold a space, never a line break); None (absent) leaves the list as it is, ""
    empties it."""
    if value is None:
        return None
    return [
        name.strip()
        for name in value.replace("\r", "\n").replace(",", "\n").split("\n")
        if name.strip()
    ]


def _rules(value: str | None) -> list[str] | None:
    """Forward-auth path rules: each ``"<pattern> <permission>"`` holds a space, so the
    rules are separated by newlines or commas only; None leaves them, "" empties."""
    if value is None:
        return None
    return [item.strip() for item in value.replace(",", "\n").splitlines() if item.strip()]


class _AppAdmin(Controller):
    def _app(self, ref: str | None, source: str = "application") -> Application:
        return directory.get_application(self.ctx.db, ref, source)


@API.controller("Applications")
class ApplicationsController(_AppAdmin):
    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def create(
        self,
        name: str | None,
        description: str | None,
        origins: str | None,
        redirectUris: str | None,
        postLogoutRedirectUris: str | None,
        confidential: bool | None,
        firstParty: bool | None,
        accessTokenFormat: str | None,
        backchannelLogoutUri: str | None,
        scopes: str | None,
        refreshTokens: bool | None,
        idTokenSignedResponseAlg: str | None,
        requirePushedAuthorizationRequests: bool | None,
        deviceGrant: bool | None,
        resources: str | None,
        resourceClients: str | None,
        mfaPolicy: str | None,
        signInPolicy: str | None,
        signInGroups: str | None,
        signInPermission: str | None,
        forwardAuthHosts: str | None,
        forwardAuthRules: str | None,
    ) -> dict[str, Any]:
        """Register an application; its client secret is in the answer, this once only.
        ``idTokenSignedResponseAlg`` (ES256 or RS256; absent: the server's ``signing_alg``)
        signs its ID, logout and JWT access tokens; ``requirePushedAuthorizationRequests``
        (default false) accepts its authorization requests only through ``/oauth2/par``
        (RFC 9126 §6); ``deviceGrant`` (default false) lets it use the Device Authorization
        Grant (RFC 8628).  ``resources``: the RFC 8707 resource identifiers (absolute https
        URIs, no fragment) of the APIs it serves, each registered by one application
        only (409 when another has it).  ``postLogoutRedirectUris``: where ``/logout`` may
        return its users (RP-Initiated Logout 1.0 §3; none by default, not the redirect
        URIs: §2 wants them registered for that purpose).  ``resourceClients``: the
        ``client_id`` of each confidential application that may get client credentials
        tokens for them (none: no client may).  ``mfaPolicy``: the second factor its
        sign-ins need, ``default`` (the server's ``mfa_policy``), ``optional``, ``mfa``
        or ``passkey``.  Who may sign in: ``signInPolicy`` ``anyone`` (the default),
        ``groups`` (members of ``signInGroups``, group names separated by commas or line
        breaks) or ``permission`` (holders of ``signInPermission``, defined with the
        application when it has none of that name).  ``forwardAuthHosts``: the host
        names (``host`` or ``host:port``) of the site it is behind a reverse proxy
        (forward-auth; one application each, 409 otherwise); ``forwardAuthRules``: its path rules
        ``"<pattern> <permission>"`` separated by newlines or commas, the first match
        wins (docs/forward-auth.md)."""
        app, secret = self.administration().create_application(
            name,
            description=description,
            origins=split_list(origins),
            redirect_uris=split_list(redirectUris),
            post_logout_redirect_uris=split_list(postLogoutRedirectUris),
            confidential=True if confidential is None else confidential,
            first_party=bool(firstParty),
            access_token_format=accessTokenFormat,
            backchannel_logout_uri=backchannelLogoutUri,
            scopes=split_list(scopes),
            refresh_tokens=True if refreshTokens is None else refreshTokens,
            id_token_signed_response_alg=idTokenSignedResponseAlg,
            require_pushed_authorization_requests=bool(requirePushedAuthorizationRequests),
            device_grant=bool(deviceGrant),
            resources=split_list(resources),
            resource_clients=split_list(resourceClients),
            mfa_policy=mfaPolicy,
            sign_in_policy=signInPolicy,
            sign_in_groups=group_names(signInGroups),
            sign_in_permission=signInPermission,
            forward_auth_hosts=split_list(forwardAuthHosts),
            forward_auth_rules=_rules(forwardAuthRules) or [],
        )
        return {"Application": application_json(app), "ClientSecret": secret}

    @expose("GET", right="apps:read", max_length=TEXT, statuses=READ)
    def get(self, application: str | None) -> dict[str, Any]:
        """One application, by id or name."""
        return {"Application": application_json(self._app(application))}

    @expose("GET", right="apps:read", max_length=TEXT, statuses=READ)
    def list(
        self, q: str | None, offset: int | None, limit: int | None, sort: str | None
    ) -> dict[str, Any]:
        """Applications, filtered by ``q`` (part of the name), paginated, sorted."""
        found = listings.search_applications(self.ctx.db, q, offset, limit, sort)
        return {"Items": [application_json(a) for a in found.items], **found.meta}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def update(
        self,
        application: str | None,
        name: str | None,
        description: str | None,
        origins: str | None,
        redirectUris: str | None,
        postLogoutRedirectUris: str | None,
        firstParty: bool | None,
        accessTokenFormat: str | None,
        backchannelLogoutUri: str | None,
        scopes: str | None,
        refreshTokens: bool | None,
        idTokenSignedResponseAlg: str | None,
        requirePushedAuthorizationRequests: bool | None,
        deviceGrant: bool | None,
        resources: str | None,
        resourceClients: str | None,
        mfaPolicy: str | None,
        signInPolicy: str | None,
        signInGroups: str | None,
        signInPermission: str | None,
        forwardAuthHosts: str | None,
        forwardAuthRules: str | None,
    ) -> dict[str, Any]:
        """Change what is given; lists (``origins``, ``redirectUris``,
        ``postLogoutRedirectUris``, ``scopes``, ``resources``, ``resourceClients``)
        replace ("" empties); ``idTokenSignedResponseAlg`` "" goes back to the server's
        ``signing_alg``; ``deviceGrant`` switches the Device Authorization Grant (RFC 8628)
        on or off; ``mfaPolicy`` as in ``Applications/create``; ``signInPolicy``,
        ``signInGroups`` (replaces the list) and ``signInPermission`` (an existing
        permission of the application; "" none) say who may sign in — the ``groups``
        policy needs a group, the ``permission`` policy a permission; deleting them later
        admits nobody (fail closed).  Passport's own application admits anyone (403).
        ``forwardAuthHosts`` and ``forwardAuthRules`` (both replace; "" empties) as in
        ``Applications/create``."""
        app = self.administration().update_application(
            application,
            name=name,
            description=description,
            origins=_list(origins),
            redirect_uris=_list(redirectUris),
            post_logout_redirect_uris=_list(postLogoutRedirectUris),
            first_party=firstParty,
            access_token_format=accessTokenFormat,
            backchannel_logout_uri=backchannelLogoutUri,
            scopes=_list(scopes),
            refresh_tokens=refreshTokens,
            id_token_signed_response_alg=idTokenSignedResponseAlg,
            require_pushed_authorization_requests=requirePushedAuthorizationRequests,
            device_grant=deviceGrant,
            resources=_list(resources),
            resource_clients=_list(resourceClients),
            mfa_policy=mfaPolicy,
            sign_in_policy=signInPolicy,
            sign_in_groups=group_names(signInGroups),
            sign_in_permission=signInPermission,
            forward_auth_hosts=_list(forwardAuthHosts),
            forward_auth_rules=_rules(forwardAuthRules),
        )
        return {"Application": application_json(app)}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def setEnabled(self, application: str | None, enabled: bool | None) -> dict[str, Any]:
        """Enable or disable an application (a disabled one grants nothing)."""
        app = self.administration().set_application_enabled(application, enabled)
        return {"Application": application_json(app)}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def rotateSecret(self, application: str | None, overlapSeconds: int | None) -> dict[str, Any]:
        """A new client secret; the old one keeps working for ``overlapSeconds`` (default 0)."""
        app, secret = self.administration().rotate_secret(application, overlapSeconds)
        return {"Application": application_json(app), "ClientSecret": secret}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def delete(self, application: str | None) -> dict[str, Any]:
        """Delete an application with its permissions and every grant of them."""
        return {"Deleted": self.administration().delete_application(application)}

    # -- permission definitions ------------------------------------------------------------
    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def addPermission(
        self, application: str | None, name: str | None, description: str | None
    ) -> dict[str, Any]:
        """Define a permission in an application."""
        app, permission = self.administration().add_permission(application, name, description)
        return {"Permission": permission_json(permission, app)}

    @expose("GET", right="apps:read", max_length=TEXT, statuses=READ)
    def permissions(self, application: str | None) -> dict[str, Any]:
        """The permissions an application defines."""
        app = self._app(application)
        rows = listings.permissions_of(self.ctx.db, app.id)
        return {"Items": [permission_json(p, app) for p in rows]}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def deletePermission(self, application: str | None, permission: str | None) -> dict[str, Any]:
        """Delete a permission and every grant of it."""
        admin = self.administration()
        return {"Deleted": admin.delete_permission(application, permission)}


@API.controller("Grants")
class GrantsController(_AppAdmin):
    def _change(
        self,
        add: bool,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        _app, _permission, changed = self.administration().change_grant(
            add, application, permission, username=username, group=group
        )
        return {"Changed": changed}

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def grant(
        self,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        """Grant a permission to a user or a group."""
        return self._change(True, application, permission, username, group)

    @expose("POST", right="apps:write", max_length=TEXT, statuses=WRITE)
    def revoke(
        self,
        application: str | None,
        permission: str | None,
        username: str | None,
        group: str | None,
    ) -> dict[str, Any]:
        """Take a permission back from a user or a group."""
        return self._change(False, application, permission, username, group)

    @expose("GET", right="apps:read", max_length=TEXT, statuses=READ)
    def list(self, application: str | None) -> dict[str, Any]:
        """Who holds which permission of an application, directly or through a group."""
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

    @expose("GET", right="apps:read", max_length=TEXT, statuses=READ)
    def holders(
        self,
        application: str | None,
        permission: str | None,
        offset: int | None,
        limit: int | None,
    ) -> dict[str, Any]:
        """Who holds a permission now, by username, and through what (``Through``: granted
        directly — ``Group`` null — or through a group; ``Permission`` is ``admin`` where
        it implies one of Passport's rights): enabled users only, none while the
        application is disabled — the rule ``Permission/check`` applies.  Paginated."""
        app = self._app(application)
        found = directory.find_permission(self.ctx.db, app, permission)
        if found is None:
            raise directory.missing("permission", "permission", permission)
        page = listings.holders_of(self.ctx.db, found, offset, limit)
        return {
            "Items": [
                {
                    "Username": h.username,
                    "Through": [{"Group": p.group, "Permission": p.permission} for p in h.paths],
                }
                for h in page.items
            ],
            "Total": page.total,
            "Offset": page.offset,
            "Limit": page.limit,
            "ApplicationEnabled": page.application_enabled,
        }
