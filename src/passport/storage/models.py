"""The relational model of Passport (SQLAlchemy 2 declarative, typed).

Names that must be unique "in any letter case" carry a ``*_key`` column with
the canonical (NFKC + casefold) form under a unique index: uniqueness is then
decided by the database, atomically, never by a check-then-insert.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from passport.lookalikes import lookalike_key
from passport.storage.types import JSONList
from passport.storage.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table with an integer surrogate id declares ``sqlite_autoincrement``: SQLite
    would otherwise hand a deleted row's id to the next row, and a deleted user's
    OpenID Connect ``sub`` to the next account (OpenID Connect Core 1.0 §2: a ``sub`` is
    never reassigned).  MariaDB and PostgreSQL never reuse ids."""

    metadata = MetaData(naming_convention=NAMING)


def _name_skeleton(context: DefaultExecutionContext) -> str:
    parameters: dict[str, str] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return lookalike_key(parameters["name"])


class Application(Base):
    """A relying application that signs its users in through Passport."""

    __tablename__ = "applications"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    # Equal for names that look alike (UTS #39 skeleton, passport.lookalikes): the unique
    # index refuses a look-alike of an existing name; ``<key>:<id>`` for look-alikes
    # from before migration 0009.
    name_skeleton: Mapped[str] = mapped_column(String(80), unique=True, default=_name_skeleton)
    description: Mapped[str] = mapped_column(Text, default="")
    allowed_origins: Mapped[list[str]] = mapped_column(JSONList, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redirect_uris: Mapped[list[str]] = mapped_column(JSONList, default=list)
    # OpenID Connect RP-Initiated Logout 1.0 §3 ``post_logout_redirect_uris``: where
    # ``/logout`` may return (registered apart from ``redirect_uris``, §2).  Migration
    # 0016 copied the redirect URIs of the applications that existed before.
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSONList, default=list)
    confidential: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    secret_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    access_token_format: Mapped[str] = mapped_column(String(8), default="jwt")
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    # RFC 7591 §2 ``scope``: what the client credentials grant may issue to it.
    scopes: Mapped[list[str]] = mapped_column(JSONList, default=list)
    # Whether the code flow gives it refresh tokens whatever the scope; when False, only
    # for ``offline_access`` asked for and allowed (OIDC Core §11).  Migration 0011
    # set it True for the applications that existed before.
    refresh_tokens: Mapped[bool] = mapped_column(Boolean, default=True)
    # OpenID Connect Dynamic Client Registration 1.0 §2 ``id_token_signed_response_alg``:
    # ES256 or RS256; NULL is the server's ``signing_alg`` (what every application got
    # before migration 0012).  Its ID, JWT access and logout tokens are signed with it.
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # RFC 9126 §6 ``require_pushed_authorization_requests``: its authorization requests
    # must come through ``/oauth2/par`` (§4: any other is refused ``invalid_request``).
    # Migration 0013 set it False for the applications that existed before.
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether it may use the Device Authorization Grant (RFC 8628): off unless an
    # administrator switches it on, as Keycloak's per-client setting (migration 0014).
    device_grant: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which second factor its users must have used to be admitted (migration 0021):
    # "default" (the server's ``mfa_policy``), "optional", "mfa" or "passkey"
    # (:mod:`passport.services.factors`).
    mfa_policy: Mapped[str] = mapped_column(String(16), default="default")
    # Who may sign in to it (migration 0024; :mod:`passport.services.access` decides):
    # "anyone", "groups" (members of ``sign_in_group_rows``' groups) or "permission"
    # (holders of its permission named ``sign_in_permission``).
    sign_in_policy: Mapped[str] = mapped_column(String(16), default="anyone")
    sign_in_permission: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Forward-auth path rules, each "<path pattern> <permission>" (migration 0024).
    forward_auth_rules: Mapped[list[str]] = mapped_column(JSONList, default=list)
    sign_in_group_rows: Mapped[list[ApplicationSignInGroup]] = relationship(
        cascade="all, delete-orphan", lazy="select", passive_deletes=True
    )
    # The host names of the site it is, when Passport guards it at a reverse proxy.
    forward_auth_host_rows: Mapped[list[ForwardAuthHost]] = relationship(
        cascade="all, delete-orphan",
        lazy="select",
        order_by="ForwardAuthHost.host",
        passive_deletes=True,
    )
    # RFC 8707 §2 resource identifiers: the APIs this application serves as a resource
    # server (migration 0015), each unique across applications (one resource, one RS).
    # Loaded when read (not with every application: client authentication needs none).
    resource_rows: Mapped[list[ApplicationResource]] = relationship(
        cascade="all, delete-orphan",
        lazy="select",
        order_by="ApplicationResource.uri",
        passive_deletes=True,
    )

    # The client applications that may get client credentials tokens for its resource
    # identifiers (RFC 8707 §2: the authorization server "determines whether the client
    # is authorized to access the resource"; migration 0018).  None listed: none may.
    resource_client_rows: Mapped[list[ApplicationResourceClient]] = relationship(
        cascade="all, delete-orphan",
        lazy="select",
        foreign_keys="ApplicationResourceClient.api_id",
        passive_deletes=True,
    )

    @property
    def resources(self) -> list[str]:
        """Its RFC 8707 resource identifiers, sorted."""
        return sorted(row.uri for row in self.resource_rows)

    @property
    def sign_in_groups(self) -> list[str]:
        """The names of the groups whose members may sign in when its ``sign_in_policy``
        is "groups", sorted (:mod:`passport.services.access` decides)."""
        return sorted(row.group.name for row in self.sign_in_group_rows)

    @property
    def resource_clients(self) -> list[str]:
        """The ``client_id`` of each application that may get client credentials tokens
        for its resource identifiers, sorted."""
        return sorted(row.client.client_id or "" for row in self.resource_client_rows)


class ApplicationGeneration(Base):
    """One row whose ``value`` grows with every change to an application, its resource
    identifiers or its resource clients, in the transaction that makes the change
    (:func:`passport.storage.db.bump_application_generation`, migration 0020).

    It is what lets a process keep what a client authentication found
    (:class:`passport.services.clients.ClientCache`) without ever acting on a stale
    copy: the cache answers only while the value it read is still the value, so a
    disabled application, a rotated secret or a changed scope is seen by every process
    at its next request."""

    __tablename__ = "application_generation"
    __table_args__ = ({"sqlite_autoincrement": True},)  # as every integer key: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ApplicationResource(Base):
    """One RFC 8707 §2 resource identifier (an absolute URI without fragment) that an
    application serves.  The key is the SHA-256 of the URI: the URI itself is compared
    exactly, byte for byte, on every database — a MariaDB collation would otherwise
    fold case, and its index keys are too short for a long URI."""

    __tablename__ = "application_resources"

    uri_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    uri: Mapped[str] = mapped_column(Text)


class ApplicationSignInGroup(Base):
    """A group whose members may sign in to an application whose ``sign_in_policy`` is
    "groups".  Both sides cascade: no row outlives its group or application."""

    __tablename__ = "application_sign_in_groups"

    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # The group itself, for its name where the application is shown (API, CLI, console).
    group: Mapped[Group] = relationship(lazy="joined")


class ForwardAuthHost(Base):
    """A host name (lower case, ``host`` or ``host:port``) of a site Passport guards at a
    reverse proxy (forward-auth); one application each (the primary key), and the only
    hosts a forward-auth sign-in may return to."""

    __tablename__ = "forward_auth_hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )


class ApplicationResourceClient(Base):
    """A client application that may get client credentials tokens (RFC 6749 §4.4) for
    the resource identifiers of a resource server application (RFC 8707 §2) — the
    "client grant" of Auth0.  Both sides are foreign keys with ``ON DELETE CASCADE``:
    deleting either application deletes the row, so no grant outlives a client and a
    later application can never inherit one."""

    __tablename__ = "resource_clients"

    api_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    client_app_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    client: Mapped[Application] = relationship(foreign_keys=[client_app_id], lazy="joined")


def _username_skeleton(context: DefaultExecutionContext) -> str:
    parameters: dict[str, str] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return lookalike_key(parameters["username"])


class User(Base):
    """A person who signs in; the password is only ever kept as an argon2id hash."""

    __tablename__ = "users"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Equal for names that look alike (passport.lookalikes), so the unique index refuses
    # a look-alike of an existing name; ``<key>:<id>`` for look-alikes from before it.
    username_skeleton: Mapped[str] = mapped_column(
        String(80), unique=True, default=_username_skeleton
    )
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    email_key: Mapped[str | None] = mapped_column(String(254), unique=True, nullable=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The WebAuthn user handle (user.id of the ceremonies, WebAuthn L3 §5.4.3): random,
    # never the database id, made at the first passkey (migration 0021).
    webauthn_handle: Mapped[str | None] = mapped_column(
        String(64), nullable=True, unique=True, index=True
    )
    # The user proved that ``email`` reaches them (a verification, password reset or
    # invitation link sent there was used); false again when it changes (migration 0022).
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)


def new_sid() -> str:
    """A login session's OpenID Connect ``sid`` (Back-Channel Logout 1.0 §2.1, §2.4): 128
    random bits, unrelated to the cookie, so that relying parties can be told which
    session ended without learning anything that opens it."""
    return secrets.token_urlsafe(16)


class LoginSession(Base):
    """A server-side login session; the cookie value is kept only as its SHA-256.

    ``sid`` names the session to relying parties (in ID tokens and logout tokens); a
    sign-in of the same user that replaces the session keeps it (it is the same
    session at the OP, re-authenticated)."""

    __tablename__ = "login_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    idle_timeout: Mapped[int] = mapped_column(Integer)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    sid: Mapped[str] = mapped_column(String(32), default=new_sid)
    # How the user proved who they are (RFC 8176 values, space-separated: "pwd",
    # "pwd otp mfa", "hwk mfa"…), migration 0021.
    amr: Mapped[str] = mapped_column(String(64), default="pwd")


class ThrottleCounter(Base):
    """Failed credential attempts per key (``account:…``, ``ip:…``) in a window."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    last_failure: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what, when, from where, and how it ended; never a secret."""

    __tablename__ = "audit_events"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    username: Mapped[str] = mapped_column(String(64), default="")
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    application: Mapped[str] = mapped_column(String(100), default="")
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class Permission(Base):
    """A right that one application defines, e.g. ``wiki:edit``."""

    __tablename__ = "permissions"
    __table_args__ = (
        UniqueConstraint("application_id", "name_key"),
        # Look-alike permission names within one application collide (UTS #39 skeleton).
        UniqueConstraint(
            "application_id", "name_skeleton", name="uq_permissions_application_id_name_skeleton"
        ),
        {"sqlite_autoincrement": True},  # ids never reused: see Base
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))
    name_skeleton: Mapped[str] = mapped_column(String(80), default=_name_skeleton)
    description: Mapped[str] = mapped_column(Text, default="")


class Group(Base):
    """A set of users that receives permissions together."""

    __tablename__ = "groups"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    # Look-alike group names collide, as application names do (see Application).
    name_skeleton: Mapped[str] = mapped_column(String(80), unique=True, default=_name_skeleton)
    description: Mapped[str] = mapped_column(Text, default="")
    # Members must sign in with a second factor (migration 0021).
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class GroupPermission(Base):
    __tablename__ = "group_permissions"

    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class UserPermission(Base):
    __tablename__ = "user_permissions"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SigningKey(Base):
    """A token-signing key pair; the private half encrypted with the configured key."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    use_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuthorizationCode(Base):
    """An OAuth 2.0 authorization code (RFC 6749 4.1), single use, kept only as a hash."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(500))
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The login session it was issued in (Back-Channel Logout 1.0 §2.3: the OP remembers
    # which relying parties each session signed in to); None before migration 0010.
    sid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # RFC 8707 §2.1: the resources the authorization was for, space-separated (a
    # resource identifier has no space); None: none named (the client is the audience).
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The session's ``amr`` when the code was issued (ID token ``amr``/``acr``); NULL
    # before migration 0021, read as "pwd".
    amr: Mapped[str | None] = mapped_column(String(64), nullable=True)


class OAuthToken(Base):
    """An issued access or refresh token, by hash; ``family`` ties a refresh chain together."""

    __tablename__ = "oauth_tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    scope: Mapped[str] = mapped_column(String(500))
    family: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    successor: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The login session the family was issued in (its code's; kept by every refresh),
    # for the ID tokens' ``sid`` and for telling this application when that session
    # ends (Back-Channel Logout 1.0 §2.3).  None for client credentials, and for
    # families from before migration 0010.
    sid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # RFC 8707 §2: the token's audience, the resource identifiers it was issued for,
    # space-separated; None: the client itself (every token before migration 0015).
    # Kept here so that introspection and refresh never trust what a client says later.
    audience: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The ``amr`` of the sign-in the family came from (OIDC Core §12.2: a refreshed ID
    # token says the same); NULL for machine tokens and before migration 0021.
    amr: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Consent(Base):
    """The scopes a user allowed an application, remembered."""

    __tablename__ = "consents"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # RFC 8707 resource identifiers (the APIs) the user allowed it to reach, space-separated;
    # None: none (every consent before migration 0015).
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)


class LogoutNotification(Base):
    """A back-channel logout token waiting for (or done with) delivery: a durable outbox."""

    __tablename__ = "logout_notifications"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    logout_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(200), default="")


class PendingAuthorization(Base):
    """One ``/oauth2/authorize`` request between its pages (sign-in, consent), on the server.

    Whether the user signed in afresh and allowed the application is recorded here, never
    in a parameter the client or the browser could set.  The handle that the pages pass
    along is kept only as its SHA-256; it is bound to the browser that made the request
    (``browser_hash``, the hash of an HttpOnly cookie) and, once someone is signed in, to
    that login session (``session_hash``).  The row is deleted when the code is issued or
    the user refuses: a handle is good for one authorization only.
    """

    __tablename__ = "pending_authorizations"

    handle_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    session_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(500))
    state: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prompt: Mapped[str] = mapped_column(String(64), default="")
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    login_hint: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # How the answer goes back: "query" or "form_post" (OAuth 2.0 Form Post Response Mode).
    response_mode: Mapped[str] = mapped_column(String(16), default="query")
    # RFC 8707 §2.1 ``resource`` values asked for, space-separated; None when none.
    resource: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The ``sub`` an ``id_token_hint`` named (OIDC Core §3.1.2.1, migration 0017): only
    # that user may sign in and go on with this authorization.
    hinted_subject: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # OIDC Core §3.1.2.1 ``acr_values`` as asked (migration 0021): the step-up it needs
    # is decided when the request goes on (services/factors.py ``required_level``).
    acr_values: Mapped[str | None] = mapped_column(String(255), nullable=True)
    login_required: Mapped[bool] = mapped_column(Boolean, default=False)
    logged_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PushedAuthorizationRequest(Base):
    """An authorization request pushed to ``/oauth2/par`` (RFC 9126 §2), waiting for
    ``/oauth2/authorize`` to use it by its ``request_uri`` (§4).

    The ``request_uri`` is kept only as its SHA-256 (like every token); the row is bound
    to the client that pushed it, lives a minute, and is deleted when it is used: a
    ``request_uri`` starts one authorization only.  ``parameters`` are the pushed
    parameters as the client sent them (a JSON object of strings, client credentials
    left out): the authorization endpoint validates them again when they are used, so a
    change of the application in between (a redirect URI removed, the application made
    public) counts (§4: "MUST validate authorization requests arising from a pushed
    request as it would any other authorization request").
    """

    __tablename__ = "pushed_authorization_requests"

    request_uri_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    parameters: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Who pushed it (:func:`passport.services.throttle.address_of`: IPv6 as its /64), for
    # the cap per client and address; None on a row from before migration 0019.
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DeviceAuthorization(Base):
    """One Device Authorization Grant (RFC 8628 §3.1-3.5), from the device's request to
    the redemption of its ``device_code``.

    Both codes are kept only as their SHA-256 (the device code as every token is; the
    user code in its canonical form, RFC 8628 §6.1).  ``status`` is ``pending`` until the
    user decides on ``/device`` (``approved`` with the user, the login session's
    ``auth_time`` and ``sid``; or ``denied``); the row is deleted when the device code
    is redeemed, so it is redeemed once.  ``interval`` grows by 5 seconds at each
    ``slow_down`` (§3.5) and ``last_polled_at`` is the previous poll's time.
    """

    __tablename__ = "device_authorizations"

    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    application_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    auth_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The approving session's ``amr`` (migration 0021).
    amr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Who asked (:func:`passport.services.throttle.address_of`), for the cap per client
    # and address; None on a row from before migration 0019.
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebAuthnCredential(Base):
    """A passkey or security key of a user (WebAuthn L3 §6.1 credential record).

    ``credential_id`` (base64url, up to 1023 bytes) is looked up by its SHA-256
    (``credential_id_hash``, unique): a unique index on the long value would not fit
    MariaDB's key length.  ``sign_count`` detects a cloned authenticator (§6.1.3 step
    22); ``backup_eligible`` tells a synced passkey (RFC 8176 ``swk``) from one bound to
    its device (``hwk``)."""

    __tablename__ = "webauthn_credentials"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    credential_id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(255), default="")
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TotpCredential(Base):
    """A user's authenticator app (RFC 6238): the secret encrypted with the key-encryption
    key (AES-256-GCM), and the last time step accepted, so that a code is accepted once."""

    __tablename__ = "totp_credentials"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(Text)
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RecoveryCode(Base):
    """One single-use recovery code (NIST SP 800-63B §5.1.2 look-up secret), kept only as
    a keyed hash (:func:`passport.services.factors.recovery_digest`); deleted when used."""

    __tablename__ = "recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignInStep(Base):
    """A step of a sign-in or an enrolment in progress in one browser, kept on the server.

    ``purpose`` is ``second-factor`` (the password was right; a second factor or an
    enrolment is still owed before a session starts), ``passkey`` (a WebAuthn challenge
    for a sign-in), ``register`` (a WebAuthn challenge for a new passkey) or ``totp``
    (an authenticator-app secret shown but not yet confirmed).  The browser holds a
    random cookie; the row is keyed by the SHA-256 of purpose and cookie, lives minutes
    and is deleted when used (single use: a WebAuthn challenge is answered once)."""

    __tablename__ = "sign_in_steps"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payload: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Invitation(Base):
    """An administrator's invitation of a person, by email, to make an account.

    Live until ``expires_at`` unless accepted (``user_id`` is then the account made) or
    revoked; its link is an :class:`EmailLink` of purpose ``invite``."""

    __tablename__ = "invitations"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), index=True)
    invited_by: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # Who invited, as the audit log names them: ``user:<id>`` or ``cli:<os user>`` (the
    # operator, who has every right); ``invited_by`` is NULL for the operator and for a
    # user deleted since, whose invitations then die.
    inviter: Mapped[str] = mapped_column(String(100), default="")
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InvitationGroup(Base):
    """A group the invited person joins when they accept."""

    __tablename__ = "invitation_groups"

    invitation_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("invitations.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class EmailLink(Base):
    """A single-use link sent by mail: ``verify`` (an address), ``reset`` (a forgotten
    password) or ``invite`` (an invitation).

    Only the SHA-256 of the link's 256-bit token is kept.  ``address`` is the address the
    link was sent to, exactly: a verification counts only while the account still has
    that very address."""

    __tablename__ = "email_links"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    invitation_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("invitations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    address: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class MailMessage(Base):
    """A message in the durable mail outbox, written in the transaction of the operation
    that causes it and sent by the background worker (:mod:`passport.services.mail`).

    ``body`` (the text and HTML parts, which may hold a live link) is sealed with a key
    derived from the key-encryption key, and emptied once the message is sent or given
    up; ``last_error`` names the failure without a secret."""

    __tablename__ = "mail_outbox"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never reused: see Base

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    # The recipient's mailbox (accounts.email_key): how many messages one address was
    # sent lately, whatever caused them (Outbox.queue's cap).
    recipient_key: Mapped[str] = mapped_column(String(254), index=True, default="")
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(200), default="")
