"""How the directory's objects look in the administration API's answers, and in the
CLI's ``--json`` output (the same shapes: both interfaces show the same result)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from typing import Protocol

from passport.services.factors import FactorSummary
from passport.services.lifecycle import invitation_state
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import Invitation
from passport.storage.models import Permission
from passport.storage.models import User


def application_json(app: Application) -> dict[str, Any]:
    return {
        "ID": app.id,
        "Name": app.name,
        "Description": app.description,
        "AllowedOrigins": app.allowed_origins,
        "RedirectUris": app.redirect_uris,
        # RP-Initiated Logout 1.0 §3: where /logout may return to (apart from RedirectUris)
        "PostLogoutRedirectUris": app.post_logout_redirect_uris,
        "Confidential": app.confidential,
        "Enabled": app.enabled,
        "ClientId": app.client_id,
        "FirstParty": app.first_party,
        "BackchannelLogoutUri": app.backchannel_logout_uri,
        "AccessTokenFormat": app.access_token_format,
        "Scopes": app.scopes,
        "RefreshTokens": app.refresh_tokens,
        # null: the server's signing_alg (OIDC Dynamic Client Registration §2 default)
        "IdTokenSignedResponseAlg": app.id_token_signed_response_alg,
        # RFC 9126 §6: authorization requests only through the PAR endpoint
        "RequirePushedAuthorizationRequests": app.require_pushed_authorization_requests,
        "DeviceGrant": app.device_grant,  # RFC 8628, off unless switched on
        # RFC 8707 §2 resource identifiers of the APIs it serves (it is their RS)
        "Resources": app.resources,
        # the client_id of each application that may get client credentials tokens for
        # them (RFC 8707 §2: the server decides which client may reach which resource)
        "ResourceClients": app.resource_clients,
        # the second factor its sign-ins need: "default" (the server's mfa_policy),
        # "optional", "mfa" or "passkey" (services/factors.py)
        "MfaPolicy": app.mfa_policy,
        # who may sign in (services/access.py decides): "anyone", "groups" (members of
        # SignInGroups) or "permission" (holders of SignInPermission, of this application)
        "SignInPolicy": app.sign_in_policy,
        "SignInGroups": app.sign_in_groups,
        "SignInPermission": app.sign_in_permission,
        # forward-auth (services/forward_auth.py): the site's host names and path rules
        "ForwardAuthHosts": [row.host for row in app.forward_auth_host_rows],
        "ForwardAuthRules": list(app.forward_auth_rules or []),
        "Created": app.created_at.isoformat(),
    }


def permission_json(permission: Permission, app: Application) -> dict[str, Any]:
    return {
        "ID": permission.id,
        "Application": app.name,
        "Name": permission.name,
        "Description": permission.description,
    }


def group_json(group: Group, members: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ID": group.id,
        "Name": group.name,
        "Description": group.description,
        "RequireMfa": group.require_mfa,  # its members sign in with a second factor
    }
    if members is not None:
        data["Members"] = members
    return data


def user_json(user: User) -> dict[str, Any]:
    return {
        "ID": user.id,
        "Username": user.username,
        "Email": user.email,
        "EmailVerified": user.email_verified,
        "DisplayName": user.display_name,
        "Disabled": user.disabled,
        "Created": user.created_at.isoformat(),
        "PasswordChanged": user.password_changed_at.isoformat(),
    }


def factors_json(summary: FactorSummary) -> dict[str, Any]:
    """A user's second factors as an administrator sees them (never a secret):
    ``Synced`` a passkey that may be copied to the user's other devices (WebAuthn
    backup eligible, RFC 8176 ``swk``) rather than bound to one (``hwk``)."""
    return {
        "Methods": summary.methods(),
        "Passkeys": [
            {
                "ID": p.id,
                "Name": p.name,
                "Created": p.created_at.isoformat(),
                "LastUsed": p.last_used_at.isoformat() if p.last_used_at else None,
                "Synced": p.synced,
                "Aaguid": p.aaguid,
            }
            for p in summary.passkeys
        ],
        "Totp": summary.totp,
        "TotpCreated": summary.totp_created_at.isoformat() if summary.totp_created_at else None,
        "RecoveryCodes": summary.recovery_codes,
    }


class UserLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...

    @property
    def email(self) -> str | None: ...

    @property
    def email_verified(self) -> bool: ...

    @property
    def display_name(self) -> str: ...


def public_user(user: UserLike) -> dict[str, object]:
    return {
        "ID": user.id,
        "Username": user.username,
        "Email": user.email,
        "EmailVerified": bool(user.email_verified),
        "DisplayName": user.display_name,
    }


def session_json(info: LoginSessionInfo, current_hash: str | None) -> dict[str, object]:
    """A login session as ``Account/sessions`` lists it: the ``ID`` is a prefix of the
    token's hash (never the token), enough to name it to ``Account/endSession``."""
    return {
        "ID": info.id_hash[:16],
        "Created": info.created_at.isoformat(),
        "LastSeen": info.last_seen_at.isoformat(),
        "Expires": info.expires_at.isoformat(),
        "IP": info.ip,
        "UserAgent": info.user_agent,
        "Current": info.id_hash == current_hash,
    }


def admin_session_json(info: LoginSessionInfo) -> dict[str, object]:
    """A user's login session as an administrator sees it (``Users/sessions``, the CLI,
    the console): named by its ``Session`` reference, the OpenID Connect ``sid`` — never
    the token or its hash — for ``Users/endSession``."""
    return {
        "Session": info.sid,
        "Created": info.created_at.isoformat(),
        "LastSeen": info.last_seen_at.isoformat(),
        "Expires": info.expires_at.isoformat(),
        "IP": info.ip,
        "UserAgent": info.user_agent,
    }


def invitation_json(invitation: Invitation, groups: list[str], now: datetime) -> dict[str, Any]:
    """An invitation as administrators see it (never its link)."""
    return {
        "ID": invitation.id,
        "Email": invitation.email,
        "Groups": groups,
        "State": invitation_state(invitation, now),
        "Created": invitation.created_at.isoformat(),
        "Sent": invitation.sent_at.isoformat(),
        "Expires": invitation.expires_at.isoformat(),
        "Accepted": invitation.accepted_at.isoformat() if invitation.accepted_at else None,
        "Revoked": invitation.revoked_at.isoformat() if invitation.revoked_at else None,
        "UserID": invitation.user_id,
    }
