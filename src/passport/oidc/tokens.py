"""Issuing and checking tokens: ID tokens (OIDC Core 2), JWT access tokens (RFC 9068),
opaque access tokens and refresh tokens (RFC 6749 6, with rotation).

Every token is recorded by its SHA-256 (never in clear), so any of them can be
revoked and introspected; JWT access tokens are also verifiable offline with
the JWKS.  Refresh tokens rotate on every use.  A refresh token used again within
``refresh_grace_seconds`` of its rotation gets the *same* new pair (kept
encrypted for that window) — concurrent refreshes of one client do not log its
user out; used again after the window, the whole family is revoked (reuse
detection, OAuth 2.0 Security BCP 4.14).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import Connection
from sqlalchemy import bindparam
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.oidc.errors import InvalidTarget
from passport.oidc.keys import KeyRing
from passport.services import directory
from passport.services import permissions
from passport.services.clients import Snapshot
from passport.services.factors import acr_of
from passport.services.factors import amr_list
from passport.storage.db import APPLICATION_GENERATION
from passport.storage.models import Application
from passport.storage.models import ApplicationGeneration
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import OAuthToken
from passport.storage.models import User


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def half_hash(value: str) -> str:
    """``at_hash``: left half of the SHA-256 of the access token, base64url (OIDC Core 3.1.3.6)."""
    raw = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw[: len(raw) // 2]).decode().rstrip("=")


def subject(user: ClaimsUser) -> str:
    """Stable subject identifier: never the username, which can change."""
    return subject_of(user.id)


def subject_of(user_id: int) -> str:
    """The subject identifier of the user ``user_id`` (OIDC Core §2 ``sub``)."""
    return f"user-{user_id}"


_MAX_HEADER_CHARS = 1024  # base64url of a JOSE header (RFC 7515 §4); ours are ~100


class ClaimsUser(Protocol):
    """What the claims of a user are made from: a :class:`User`, or the
    :class:`UserView` of a live token."""

    @property
    def id(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def email_verified(self) -> bool: ...


class TokenClient(Protocol):
    """What issuing a token needs of its client: an :class:`Application` loaded in the
    request's transaction, or a :class:`passport.services.clients.Client` (the machine
    endpoints, from the client cache)."""

    @property
    def id(self) -> int: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def access_token_format(self) -> str: ...
    @property
    def id_token_signed_response_alg(self) -> str | None: ...


def resources_asked(snapshot: Snapshot, values: list[str]) -> tuple[str, ...]:
    """The ``resource`` values of a request (RFC 8707 §2), checked, in order, once each.

    Which client may ask for which resource: any client, any resource identifier that an
    **enabled** application registered (:func:`passport.services.directory.set_resources`)
    — the administrator who registered the API made it a resource of this server; the
    user's consent (authorization endpoint) decides the rest, as for scopes.  With no user
    to decide (client credentials), :func:`machine_resources` also asks the API's
    listing of its clients.  Each value must be an absolute URI
    without a fragment (§2) and registered; else ``invalid_target`` — the same answer for
    an unknown resource and a disabled application's, so that nobody learns which
    identifiers exist.  Empty values count as absent (RFC 6749 §3.1)."""
    wanted = list(dict.fromkeys(v for v in values if v))
    if len(wanted) > directory.MAX_RESOURCES:
        raise InvalidTarget(f"At most {directory.MAX_RESOURCES} resource values.")
    for value in wanted:
        problem = directory.resource_uri_problem(value)
        if problem is not None:
            raise InvalidTarget(f"resource must be an absolute URI ({problem}).")
        server = snapshot.resource_server(value)
        if server is None or not server.enabled:
            raise _not_a_resource(value)
    return tuple(wanted)


def _not_a_resource(value: str) -> InvalidTarget:
    """The one answer for a resource that is unknown, disabled, or not the client's to
    ask for: nobody learns from it which identifiers exist (RFC 8707 §2 ``invalid_target``)."""
    return InvalidTarget(f"'{value[:100]}' is not a resource of this server.")


def machine_resources(
    snapshot: Snapshot, client: TokenClient, resources: tuple[str, ...]
) -> tuple[str, ...]:
    """``resources`` (already checked by :func:`resources_asked`) if the application
    serving each lists ``client`` (:func:`passport.services.directory.set_resource_clients`);
    else ``invalid_target``, the answer for an unknown resource.

    RFC 8707 §2: the authorization server "determines whether the client is authorized to
    access the resource"; in the client credentials grant (RFC 6749 §4.4) no user
    consents, so the API's administrator decides, once, for each client — the "client
    grant" of Auth0 (RFC 9700 §2.3: privilege restriction; ASVS 5.0 V10.4.11).  None
    listed: no client gets a token for the API."""
    for value in resources:
        server = snapshot.resource_server(value)
        if server is None or client.id not in server.clients:
            raise _not_a_resource(value)
    return resources


def split_resources(stored: str | None) -> tuple[str, ...]:
    """A ``resource``/``audience`` column (space-separated identifiers) as a tuple."""
    return tuple(stored.split()) if stored else ()


def narrowed(asked: tuple[str, ...], granted: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 8707 §2.2: a token request may name a subset of the grant's resources, never
    one outside it (``invalid_target``); naming none means all of them."""
    if not asked:
        return granted
    if not set(asked) <= set(granted):
        raise InvalidTarget("A token request cannot add a resource the grant does not hold.")
    return asked


@dataclass(frozen=True)
class Grant:
    """What a token response is for."""

    application: TokenClient
    scope: str
    user: User | None = None
    nonce: str | None = None
    auth_time: datetime | None = None
    family: str | None = None
    code_hash: str | None = None
    refresh: bool = False
    id_token: bool = False
    # The login session the grant comes from (its code's, kept by each refresh): the ID
    # token's ``sid`` (Back-Channel Logout 1.0 §2.1 ``backchannel_logout_session_supported``:
    # the OP that sends ``sid`` in logout tokens puts it in ID tokens too).
    sid: str | None = None
    # RFC 8707: the resources this access token is for (its ``aud``; empty: the client),
    # and those of the whole grant, which its refresh token keeps (§2.2: a later refresh
    # may ask for any of them); None: the same as ``audience``.
    audience: tuple[str, ...] = ()
    resources: tuple[str, ...] | None = None
    # How the user signed in (RFC 8176, the session's ``amr``): the ID token's ``amr``
    # and ``acr`` (OIDC Core §2), kept by the token family for refreshed ID tokens.
    amr: str | None = None


class Tokens:
    def __init__(self, settings: Settings, keys: KeyRing, issuer: str) -> None:
        self.settings = settings
        self.keys = keys
        self.issuer = issuer

    # -- claims -------------------------------------------------------------------------
    def user_claims(
        self, db: Session | Connection, user: ClaimsUser, app_id: int, scope: str
    ) -> dict[str, Any]:
        scopes = set(scope.split())
        claims: dict[str, Any] = {"sub": subject(user)}
        if "profile" in scopes:
            # No ``updated_at`` (Core §5.1: when the profile last changed): Passport keeps
            # no such time, and the password's change is not one.
            claims.update(
                name=user.display_name or user.username,
                preferred_username=user.username,
            )
        if "email" in scopes and user.email:
            # OIDC Core §5.1: true only once the address was proved to reach the user
            # (a link sent there was used: :mod:`passport.services.lifecycle`).
            claims.update(email=user.email, email_verified=bool(user.email_verified))
        if "groups" in scopes:
            claims["groups"] = list(
                db.scalars(
                    select(Group.name)
                    .join(GroupMember, GroupMember.group_id == Group.id)
                    .where(GroupMember.user_id == user.id)
                    .order_by(Group.name_key)
                )
            )
        if "permissions" in scopes:
            claims["permissions"] = permissions.effective(db, user.id, app_id)
        return claims

    # -- issuing ------------------------------------------------------------------------
    def signing_alg(self, app: TokenClient) -> str:
        """The JWS algorithm of ``app``'s tokens: its registered ``id_token_signed_response_alg``
        (OpenID Connect Dynamic Client Registration 1.0 §2; Core §3.1.3.7 step 7: the RP
        checks the ID token's ``alg`` against it), else the server's ``signing_alg``.

        The same algorithm signs the application's logout tokens (Back-Channel Logout 1.0
        §2.6: the RP validates one as an ID token, ``alg`` included) and its JWT access
        tokens (RFC 9068): their audience is the application itself (``aud`` is its
        ``client_id``), so the party that checks them is the one that chose the algorithm."""
        return app.id_token_signed_response_alg or self.settings.signing_alg

    def access_token_alg(self, grant: Grant) -> str:
        """The algorithm of a JWT access token: the application's (:meth:`signing_alg`),
        unless the token is for resources (RFC 8707), whose servers did not choose the
        client's algorithm — then the server's ``signing_alg``."""
        return self.settings.signing_alg if grant.audience else self.signing_alg(grant.application)

    def sign(
        self, header_typ: str, claims: dict[str, Any], now: datetime, alg: str | None = None
    ) -> str:
        """A JWS with the current key of ``alg`` (default: the server's ``signing_alg``);
        the header names the key (``kid``) and its algorithm (RFC 7515 §4.1.1, §4.1.4)."""
        key = self.keys.signing_key(now, alg)
        header = {"alg": key.alg, "kid": key.kid, "typ": header_typ}
        return jwt.encode(header, claims, key.private)

    def issue(
        self,
        db: Session | Connection,
        grant: Grant,
        now: datetime,
        *,
        generation: int | None = None,
    ) -> dict[str, Any]:
        """The token response (RFC 6749 5.1), its tokens recorded in ``db``: the request's
        transaction, or (client credentials: one row, nothing else to commit with it) a
        connection in autocommit.

        With ``generation`` (the client credentials grant, whose client and resources
        came from the client cache's snapshot of that generation), the row is written
        only if ``application_generation`` still has that value, in the same statement;
        else :class:`StaleSnapshot` and nothing is written."""
        app = grant.application
        family = grant.family or secrets.token_hex(16)
        lifetime = self.settings.access_token_lifetime
        expires = now + timedelta(seconds=lifetime)
        jti = secrets.token_urlsafe(16)
        if app.access_token_format == "jwt":
            payload: dict[str, Any] = {
                "iss": self.issuer,
                "sub": subject(grant.user) if grant.user else app.client_id,
                "aud": audience_claim(grant.audience, app.client_id or ""),
                "client_id": app.client_id,
                "iat": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "jti": jti,
                "scope": grant.scope,
            }
            if grant.user is not None:
                # RFC 9068 §2.2.1: how the user signed in, for a resource server that asks
                # a second factor of its callers (the ID token's auth_time, acr and amr).
                payload.update(
                    auth_time=int((grant.auth_time or now).timestamp()),
                    acr=acr_of(grant.amr),
                    amr=amr_list(grant.amr),
                )
            access = self.sign("at+jwt", payload, now, self.access_token_alg(grant))
        else:
            access = secrets.token_urlsafe(32)
        rows = [self._record(access, "access", grant, family, now, expires)]
        response: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": grant.scope,
        }
        if grant.refresh and grant.user is not None:
            refresh = secrets.token_urlsafe(32)
            rows.append(
                self._record(
                    refresh,
                    "refresh",
                    grant,
                    family,
                    now,
                    now + timedelta(seconds=self.settings.refresh_token_lifetime),
                )
            )
            response["refresh_token"] = refresh
        if generation is None:
            # One Core INSERT for the grant's rows: no unit of work for rows nothing
            # reads back.
            db.execute(insert(OAuthToken), rows)
        else:
            (row,) = rows  # a guarded grant is a machine's: one access token
            if not isinstance(db, Connection):
                raise TypeError("a guarded grant is written in autocommit")
            guarded = {f"v_{key}": value for key, value in row.items()}
            if db.execute(_GUARDED_INSERT, {**guarded, "generation": generation}).first() is None:
                raise StaleSnapshot()
        if grant.id_token and grant.user is not None:
            claims = self.user_claims(db, grant.user, app.id, grant.scope)
            claims.update(
                iss=self.issuer,
                aud=app.client_id,
                azp=app.client_id,
                iat=int(now.timestamp()),
                exp=int((now + timedelta(seconds=self.settings.id_token_lifetime)).timestamp()),
                auth_time=int((grant.auth_time or now).timestamp()),
                at_hash=half_hash(access),
                amr=amr_list(grant.amr),
                acr=acr_of(grant.amr),
            )
            if grant.nonce:
                claims["nonce"] = grant.nonce
            if grant.sid:
                claims["sid"] = grant.sid
            response["id_token"] = self.sign("JWT", claims, now, self.signing_alg(app))
        return response

    @staticmethod
    def _record(
        token: str,
        kind: str,
        grant: Grant,
        family: str,
        now: datetime,
        expires: datetime,
    ) -> dict[str, Any]:
        """The ``oauth_tokens`` row of ``token`` (its hash, never the token)."""
        # An access token keeps its own audience; a refresh token the grant's resources.
        grant_resources = grant.audience if grant.resources is None else grant.resources
        audience = grant.audience if kind == "access" else grant_resources
        return {
            "token_hash": digest(token),
            "kind": kind,
            "application_id": grant.application.id,
            "user_id": grant.user.id if grant.user else None,
            "scope": grant.scope,
            "family": family,
            "code_hash": grant.code_hash,
            "auth_time": grant.auth_time,
            "sid": grant.sid,
            "audience": " ".join(audience) or None,
            "amr": grant.amr if grant.user is not None else None,
            "created_at": now,
            "expires_at": expires,
            "revoked_at": None,
            "rotated_at": None,
            "successor": None,
        }

    # -- refresh rotation -----------------------------------------------------------------
    def _aead(self) -> AESGCM:
        return self.keys.aead()

    def seal(self, response: dict[str, Any], token_hash: str) -> str:
        nonce = os.urandom(12)
        data = json.dumps(response).encode()
        return base64.b64encode(
            nonce + self._aead().encrypt(nonce, data, token_hash.encode())
        ).decode()

    def unseal(self, sealed: str, token_hash: str) -> dict[str, Any]:
        blob = base64.b64decode(sealed)
        data = self._aead().decrypt(blob[:12], blob[12:], token_hash.encode())
        return dict(json.loads(data))

    def revoke_family(self, db: Session, family: str, now: datetime) -> None:
        db.execute(
            update(OAuthToken)
            .where(OAuthToken.family == family, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    # -- checking ----------------------------------------------------------------------------
    def live(self, conn: Connection, token: str, now: datetime) -> LiveToken | None:
        """A token that still stands for something: recorded, unexpired and unrevoked
        (revoked too when its user's sessions were ended), not rotated away, of an
        application that is still enabled, and of a user (if any) who still exists and is
        enabled; a JWT also verifies with one of our keys.  Userinfo and introspection ask
        this one question, in one statement that reads the token with its application and
        user, never from a cache: a revocation or a disabling is seen at once."""
        if not token or len(token) > 4096:
            return None
        found = conn.execute(_LIVE, {"token_hash": digest(token)}).first()
        return None if found is None else self._live(token, tuple(found), now)

    def live_under(
        self, conn: Connection, token: str, now: datetime
    ) -> tuple[int | None, LiveToken | None]:
        """:meth:`live`, with the ``application_generation`` read in the same statement
        (None without its row): introspection checks with it that the caller it
        authenticated from the client cache was still current."""
        if not token or len(token) > 4096:
            return self.generation_only(conn), None
        found = conn.execute(_LIVE_UNDER, {"token_hash": digest(token)}).first()
        if found is None:
            return None, self.live(conn, token, now)
        generation, *columns = found
        if columns[0] is None:  # no such token
            return int(generation), None
        return int(generation), self._live(token, tuple(columns), now)

    @staticmethod
    def generation_only(conn: Connection) -> int | None:
        value = conn.execute(APPLICATION_GENERATION).scalar()
        return None if value is None else int(value)

    def _live(self, token: str, found: tuple[Any, ...], now: datetime) -> LiveToken | None:
        (
            kind,
            scope,
            audience,
            expires_at,
            created_at,
            revoked_at,
            rotated_at,
            user_id,
            application_id,
            client_id,
            enabled,
            username,
            display_name,
            email,
            email_verified,
            disabled,
        ) = found
        if revoked_at is not None or rotated_at is not None or expires_at <= now:
            return None
        if not enabled or (user_id is not None and (username is None or disabled)):
            return None
        if kind == "access" and token.count(".") == 2 and self._decode(token) is None:
            return None
        return LiveToken(
            TokenRecord(kind, scope, audience, expires_at, created_at, user_id),
            TokenHolder(application_id, client_id or ""),
            None
            if user_id is None
            else UserView(user_id, username, display_name, email, bool(email_verified)),
        )

    def id_token_hint_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token that Passport issued, or None (RP-Initiated Logout 1.0
        §2 ``id_token_hint``): signed by one of our keys, with our issuer, one audience and a
        subject.  An expired one is still a good hint (ibid.: the OP need not check ``exp``)."""
        if not token or len(token) > 8192:
            return None
        decoded = self._decode(token)
        if decoded is None:
            return None
        header, claims = decoded
        if (
            header.get("typ") != "JWT"  # not an access token (at+jwt) or a logout token
            or claims.get("iss") != self.issuer
            or not isinstance(claims.get("aud"), str)
            or not isinstance(claims.get("sub"), str)
        ):
            return None
        return claims

    def _decode(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Header and claims of a JWT we signed: by one of our keys, of either algorithm,
        each only with its own algorithm — the header's ``alg`` must be the one of the key
        its ``kid`` names (RFC 8725 §2.1, §3.1: an RS256 header naming an EC key, ``none``,
        or a MAC keyed with a public key is refused before any verification)."""
        encoded_header = token.split(".")[0]
        # Our headers are a few dozen bytes; a long one is not ours, and a deeply nested
        # one must never reach the JSON parser's recursion (a 500 for an anonymous client).
        if token.count(".") != 2 or len(encoded_header) > _MAX_HEADER_CHARS:
            return None
        try:
            header = json.loads(base64.urlsafe_b64decode(encoded_header + "=="))
        except (ValueError, RecursionError):
            return None
        if not isinstance(header, dict):
            return None
        key = next((k for k in self.keys.keys() if k.kid == header.get("kid")), None)
        if key is None or header.get("alg") != key.alg:
            return None
        try:
            decoded = jwt.decode(token, key.private, algorithms=[key.alg])
        except (JoseError, ValueError):
            return None
        return header, dict(decoded.claims)


def audience_claim(resources: tuple[str, ...], client_id: str) -> str | list[str]:
    """``aud`` of an access token (RFC 9068 §3, RFC 7662 §2.2): its resource identifier
    (RFC 8707 §2), a list of them when several, else the client's ``client_id``."""
    if len(resources) == 1:
        return resources[0]
    return list(resources) if resources else client_id


@dataclass(frozen=True)
class TokenRecord:
    """What ``oauth_tokens`` says of a live token."""

    kind: str
    scope: str
    audience: str | None
    expires_at: datetime
    created_at: datetime
    user_id: int | None


@dataclass(frozen=True)
class TokenHolder:
    """The application a token was issued to."""

    id: int
    client_id: str


@dataclass(frozen=True)
class UserView:
    """The user of a live token, as far as claims need them."""

    id: int
    username: str
    display_name: str
    email: str | None
    email_verified: bool


@dataclass(frozen=True)
class LiveToken:
    """A usable token with its application and user (None for client credentials)."""

    row: TokenRecord
    application: TokenHolder
    user: UserView | None


class StaleSnapshot(Exception):
    """``application_generation`` moved since the client cache's snapshot that a
    guarded statement relied on: the caller takes a fresh snapshot and starts again."""


_TOKEN_COLUMNS = [column for column in OAuthToken.__table__.columns if column.key != "id"]


# ``INSERT INTO oauth_tokens (...) SELECT :values FROM application_generation WHERE id = 1
# AND value = :generation FOR SHARE RETURNING id``: a row written only under that generation
# (``RETURNING`` tells whether it was: drivers' ``rowcount`` for ``INSERT ... SELECT`` is
# not reliable — psycopg's is -1).  Built once; each grant binds its values.
_GUARDED_INSERT = (
    insert(OAuthToken)
    .from_select(
        [c.key for c in _TOKEN_COLUMNS],
        select(*(bindparam(f"v_{c.key}", type_=c.type) for c in _TOKEN_COLUMNS))
        .where(
            ApplicationGeneration.id == 1,
            ApplicationGeneration.value == bindparam("generation"),
        )
        # FOR SHARE (PostgreSQL) / LOCK IN SHARE MODE (MariaDB): a change to the
        # applications that has bumped the generation but not committed yet makes this
        # wait, then see its value and write nothing — else, under READ COMMITTED, the
        # token would be written beside the change, after the change's own revocation
        # of the application's tokens had run (found by an outside review: hundreds of
        # tokens outlived a disable under load).  SQLite's single writer needs none.
        .with_for_update(read=True),
    )
    .returning(OAuthToken.id)
)


_LIVE_COLUMNS = (
    OAuthToken.kind,
    OAuthToken.scope,
    OAuthToken.audience,
    OAuthToken.expires_at,
    OAuthToken.created_at,
    OAuthToken.revoked_at,
    OAuthToken.rotated_at,
    OAuthToken.user_id,
    OAuthToken.application_id,
    Application.client_id,
    Application.enabled,
    User.username,
    User.display_name,
    User.email,
    User.email_verified,
    User.disabled,
)
# The token with its application and user, in one statement (Tokens.live).
_LIVE = (
    select(*_LIVE_COLUMNS)
    .join(Application, Application.id == OAuthToken.application_id)
    .outerjoin(User, User.id == OAuthToken.user_id)
    .where(OAuthToken.token_hash == bindparam("token_hash"))
)
# The same, with the application generation it was read under (Tokens.live_under): one
# row always, the token's columns NULL when there is no such token.
_LIVE_UNDER = (
    select(ApplicationGeneration.value, *_LIVE_COLUMNS)
    .select_from(ApplicationGeneration)
    .outerjoin(OAuthToken, OAuthToken.token_hash == bindparam("token_hash"))
    .outerjoin(Application, Application.id == OAuthToken.application_id)
    .outerjoin(User, User.id == OAuthToken.user_id)
    .where(ApplicationGeneration.id == 1)
)
