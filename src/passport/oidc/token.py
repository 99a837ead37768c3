"""The token endpoint, ``/oauth2/token`` (RFC 6749 §3.2, POST only), and its grants:

* ``authorization_code`` — RFC 6749 §4.1.3, PKCE RFC 7636 §4.6, OIDC Core §3.1.3
  (the ID token); a code used twice revokes what it issued (RFC 6749 §4.1.2);
* ``refresh_token`` — RFC 6749 §6 with rotation (RFC 9700 §4.14.2): a refresh token
  used again within ``refresh_grace_seconds`` of its rotation gets the *same* new pair
  (concurrent refreshes of one client do not log its user out) — for the same request
  only (the same ``scope`` and ``resource``; else ``invalid_grant``), and after the same
  checks as a first use (user, client, API still enabled); after the window the whole
  family is revoked (reuse detection);
* ``client_credentials`` — RFC 6749 §4.4, confidential clients only;
* ``urn:ietf:params:oauth:grant-type:device_code`` — RFC 8628 §3.4 (:mod:`.device`).

Each grant takes RFC 8707's ``resource`` (repeatable): the access token is then for
those resources (its ``aud``).  For a code or a refresh token it may only narrow what
the authorization named (§2.2), never add to it; for client credentials it may name a
resource of the server whose application lists the client
(:func:`passport.oidc.tokens.machine_resources`; else ``invalid_target``, as for an
unknown resource).  Without it a
code's or refresh token's token is for all the grant's resources, or, when the grant
named none, for the client itself, as before.

Who gets a refresh token (RFC 6749 §1.5: issuing one is the server's choice): an
application whose ``refresh_tokens`` setting is on, always (the default, and every
application from before it existed); any other only for a grant that holds
``offline_access`` — which the authorization endpoint lets through only with
``prompt=consent`` or for a first-party application (OIDC Core §11).  See
:func:`refresh_allowed`.

The grant runs in the request's transaction (:meth:`RequestContext.respond`): the
tokens it issues and the code or refresh token it uses up are committed together or
not at all.  A refused grant rolls back; revoking after a reuse is an after-action of
the scope, which runs once the rollback is done.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import select
from sqlalchemy import update
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import client_auth
from passport.oidc import device
from passport.oidc import params as oauth_params
from passport.oidc.authorization import MAX_SCOPE_LENGTH
from passport.oidc.authorization import PKCE_MAX
from passport.oidc.authorization import PKCE_MIN
from passport.oidc.authorization import SCOPES
from passport.oidc.base import Part
from passport.oidc.errors import InvalidGrant
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import InvalidScope
from passport.oidc.errors import NotAdmitted
from passport.oidc.errors import OAuthError
from passport.oidc.errors import ReusedGrant
from passport.oidc.errors import UnauthorizedClient
from passport.oidc.errors import UnsupportedGrantType
from passport.oidc.errors import json_response
from passport.oidc.errors import render
from passport.oidc.tokens import Grant
from passport.oidc.tokens import StaleSnapshot
from passport.oidc.tokens import digest
from passport.oidc.tokens import machine_resources
from passport.oidc.tokens import narrowed
from passport.oidc.tokens import resources_asked
from passport.oidc.tokens import split_resources
from passport.services import access
from passport.services.clients import Client
from passport.services.clients import Snapshot
from passport.storage.models import Application
from passport.storage.models import AuthorizationCode
from passport.storage.models import OAuthToken
from passport.storage.models import User
from passport.web.context import RequestContext

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token


class _LostRace(Exception):
    """Two refreshes of one token at once; the other one rotated it first."""

    def __init__(self, token_hash: str, asked: dict[str, Any]) -> None:
        super().__init__(token_hash)
        self.token_hash = token_hash
        self.asked = asked


def _asked(scope: str, audience: tuple[str, ...]) -> dict[str, Any]:
    """What a refresh request asked for, as kept with the pair it got (the grace window
    compares it): the scope and the audience it would get, in a canonical order."""
    return {"scope": sorted(set(scope.split())), "resource": sorted(audience)}


def refresh_allowed(app: Application, scope: str) -> bool:
    """Whether a grant of ``scope`` to ``app`` comes with a refresh token: the application's
    ``refresh_tokens`` setting, else OIDC Core §11 — ``offline_access`` granted (and so
    consented, :meth:`AuthorizationEndpoint.granted_scopes`)."""
    return app.refresh_tokens or "offline_access" in scope.split()


def _b64url_sha256(text: str) -> str:
    """RFC 7636 §4.6: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


class TokenEndpoint(Part):
    def token(self, request: Request) -> Response:
        self.services.keys.require()
        if request.method != "POST":  # RFC 6749 §3.2
            return render(InvalidRequest("Use POST.", status=405, headers={"Allow": "POST"}))
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        # The signing keys (one per algorithm: the client's decides) are loaded or made
        # before the write transaction: on SQLite a second writer inside it would wait for
        # our own lock.
        self.services.keys.ensure(self.services.clock())
        ctx = self.context(request, write=True)
        try:
            return ctx.respond(lambda: self._grant(request, ctx, params))
        except _LostRace as race:
            # The rollback is done; the winner's answer is committed: answer as it did.
            with self.services.db.session() as db:
                row = db.scalars(
                    select(OAuthToken).where(OAuthToken.token_hash == race.token_hash)
                ).first()
                if row is not None and row.successor:
                    try:
                        answer = self._same_answer(row.successor, race.token_hash, race.asked)
                    except OAuthError as error:
                        return render(error)
                    return json_response(answer)
            return render(InvalidGrant("The refresh token was used."))

    def _grant(
        self, request: Request, ctx: RequestContext, params: oauth_params.Params
    ) -> Response:
        grant_type = params.get("grant_type")
        try:
            if grant_type == "client_credentials":
                return json_response(self._machine_grant(request, ctx, params))
            snapshot = self.services.client_cache.current()
            db = ctx.db
            app = client_auth.authenticate(db, request, params, ctx.now)
            resources = resources_asked(snapshot, oauth_params.every(params, "resource"))
            if not grant_type:
                # RFC 6749 §5.2 invalid_request: "The request is missing a required
                # parameter"; unsupported_grant_type is for a grant_type that is given
                # but not one this server knows.
                raise InvalidRequest("grant_type is required.")
            if grant_type == "authorization_code":
                body = self._code_grant(ctx, app, params, resources)
            elif grant_type == "refresh_token":
                body = self._refresh_grant(ctx, app, params, resources)
            elif grant_type == device.GRANT_TYPE:
                # A device authorization names no resource (RFC 8628 §3.1 has none here):
                # asking for one at its token request would widen it (RFC 8707 §2.2).
                narrowed(resources, ())
                grant = device.redeem(ctx, app, params, refresh_allowed)
                assert grant.user is not None  # device.redeem: a user approved it
                self._admit(ctx, app, grant.user, "device")
                body = self.tokens().issue(db, grant, ctx.now)
            else:
                raise UnsupportedGrantType("Unsupported grant_type.")  # RFC 6749 §5.2
        except OAuthError as error:
            ctx.refuse()
            if isinstance(error, ReusedGrant):
                family, code_hash = error.family, error.code_hash
                ctx.after(lambda: self._revoke_after_reuse(family, code_hash))
            if isinstance(error, NotAdmitted):
                ctx.audit(error.record, durable=True)
                if error.family is not None:
                    refused_family = error.family
                    ctx.after(lambda: self._revoke_after_reuse(refused_family, None))
            return render(error)
        return json_response(body)

    @staticmethod
    def _admit(
        ctx: RequestContext,
        app: Application,
        user: User,
        door: str,
        family: str | None = None,
    ) -> None:
        """May ``user`` still sign in to ``app`` (:func:`passport.services.access.admission`,
        read now: a group left, a permission revoked since the code, the device's approval
        or the last refresh counts)?  Else ``invalid_grant`` (RFC 6749 §5.2), audited, and
        the refresh token's ``family`` revoked, as when a user is disabled: a user who may
        no longer sign in keeps nothing there."""
        admitted = access.admission(ctx.db, app, user)
        if admitted.allowed:
            return
        raise NotAdmitted(
            "The user may not sign in to this application.",
            record=access.refusal_record(
                app,
                user,
                admitted,
                door=door,
                at=ctx.now,
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
            ),
            family=family,
        )

    def _revoke_after_reuse(self, family: str | None, code_hash: str | None) -> None:
        """Revoke the tokens of a reused code or refresh-token family, in a transaction of
        its own: the request's own was rolled back with its refusal."""
        now = self.services.clock()
        with self.services.db.session(write=True) as db, db.begin():
            condition = (
                (OAuthToken.family == family) if family else (OAuthToken.code_hash == code_hash)
            )
            db.execute(
                update(OAuthToken)
                .where(condition, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def _code_grant(
        self,
        ctx: RequestContext,
        app: Application,
        params: dict[str, str],
        resources: tuple[str, ...],
    ) -> dict[str, Any]:
        """RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3.2; ``resources`` narrow the
        code's (RFC 8707 §2.2).  The user must still be admitted to the application
        (:meth:`_admit`: a group may have been left since the code was issued)."""
        db = ctx.db
        now = self.services.clock()
        code_hash = digest(params.get("code", ""))
        code = db.get(AuthorizationCode, code_hash, with_for_update=True)
        if code is None or code.application_id != app.id:
            raise InvalidGrant("The code is not valid.")
        if code.used_at is not None:
            # RFC 6749 §4.1.2: used twice, "SHOULD revoke ... all tokens previously issued".
            raise ReusedGrant("The code was already used.", code_hash=code_hash)
        if code.expires_at <= now:
            raise InvalidGrant("The code has expired.")
        if params.get("redirect_uri") != code.redirect_uri:  # RFC 6749 §4.1.3
            raise InvalidGrant("redirect_uri does not match the authorization.")
        if code.code_challenge:
            verifier = params.get("code_verifier", "")
            if not (PKCE_MIN <= len(verifier) <= PKCE_MAX) or not hmac.compare_digest(
                _b64url_sha256(verifier), code.code_challenge
            ):
                raise InvalidGrant("code_verifier does not match.")
        elif params.get("code_verifier"):
            # RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
            raise InvalidGrant("No code_challenge was given for this code.")
        granted = split_resources(code.resource)
        audience = narrowed(resources, granted)
        # The code's own resources, not only those the token request names: each must
        # still be an enabled application's (RFC 8707 §2), the API may have been disabled
        # since the user allowed it.
        resources_asked(self.services.client_cache.current(), list(granted))
        code.used_at = now
        user = db.get(User, code.user_id)
        if user is None or user.disabled:
            raise InvalidGrant("The user can no longer sign in.")
        self._admit(ctx, app, user, "token")
        scopes = code.scope.split()
        grant = Grant(
            application=app,
            scope=code.scope,
            user=user,
            nonce=code.nonce,
            auth_time=code.auth_time,
            code_hash=code_hash,
            refresh=refresh_allowed(app, code.scope),
            id_token="openid" in scopes,
            sid=code.sid,
            audience=audience,
            resources=granted,
            amr=code.amr,
        )
        return self.tokens().issue(db, grant, now)

    def _refresh_grant(
        self,
        ctx: RequestContext,
        app: Application,
        params: dict[str, str],
        resources: tuple[str, ...],
    ) -> dict[str, Any]:
        """RFC 6749 §6, rotation and reuse detection of RFC 9700 §4.14.2; ``resources``
        narrow the grant's, which the refresh token keeps (RFC 8707 §2.2), and the ones
        used must still be registered by an enabled application.  A user no longer
        admitted to the application (:meth:`_admit`) gets ``invalid_grant`` and the
        family is revoked."""
        db = ctx.db
        now = self.services.clock()
        tokens = self.tokens()
        token_hash = digest(params.get("refresh_token", ""))
        row = db.scalars(
            select(OAuthToken).where(
                OAuthToken.token_hash == token_hash, OAuthToken.kind == "refresh"
            )
        ).first()
        if (
            row is None
            or row.application_id != app.id
            or row.revoked_at is not None
            or row.expires_at <= now
        ):
            raise InvalidGrant("The refresh token is not valid.")
        grace = timedelta(seconds=self.settings.refresh_grace_seconds)
        if row.rotated_at is not None and not (row.successor and now - row.rotated_at <= grace):
            raise ReusedGrant("The refresh token was already used.", family=row.family)
        # Inside the grace window as for a first use: the same checks, so a user or client
        # disabled, or an API disabled, since the rotation gets no tokens from a replay.
        user = db.get(User, row.user_id) if row.user_id else None
        if user is None or user.disabled or not app.enabled:
            raise InvalidGrant("The user can no longer sign in.")
        self._admit(ctx, app, user, "refresh", family=row.family)
        if not refresh_allowed(app, row.scope):
            # Issued while the application's setting was on; switching it off ends them,
            # as an administrator who switches it off means (OIDC Core §11 is the rule now).
            raise InvalidGrant("This application no longer receives refresh tokens.")
        scope = row.scope
        wanted = params.get("scope")
        if wanted:
            # RFC 6749 §6: the scope "MUST NOT include any scope not originally granted".
            if not set(wanted.split()) <= set(scope.split()):
                raise InvalidScope("A refresh cannot widen the scope.")
            scope = " ".join(wanted.split())
        granted = split_resources(row.audience)
        audience = narrowed(resources, granted)
        # Still the resources of an enabled application (one may have been disabled or
        # have given the identifier up since the grant): RFC 8707 §2, checked again.
        resources_asked(self.services.client_cache.current(), list(audience))
        asked = _asked(scope, audience)
        if row.rotated_at is not None:
            assert row.successor is not None
            return self._same_answer(row.successor, token_hash, asked)
        grant = Grant(
            application=app,
            scope=scope,
            user=user,
            auth_time=row.auth_time,
            family=row.family,
            # A narrower scope without offline_access (RFC 6749 §6) ends the family here
            # for an application that has refresh tokens only by OIDC Core §11.
            refresh=refresh_allowed(app, scope),
            id_token="openid" in scope.split(),
            sid=row.sid,  # OIDC Core §12.2: the refreshed ID token is of the same session
            amr=row.amr,  # ... and says how that session signed in
            audience=audience,
            resources=granted,
        )
        body = tokens.issue(db, grant, now)
        claimed = db.execute(
            update(OAuthToken)
            .where(OAuthToken.id == row.id, OAuthToken.rotated_at.is_(None))
            .values(
                rotated_at=now,
                successor=tokens.seal({"body": body, "asked": asked}, token_hash),
            )
        )
        if not getattr(claimed, "rowcount", 0):
            raise _LostRace(token_hash, asked)  # a concurrent refresh won: answer as it did
        return body

    def _same_answer(
        self, successor: str, token_hash: str, asked: dict[str, Any]
    ) -> dict[str, Any]:
        """The pair that the rotation of this refresh token answered, for a request that
        asks for the same (RFC 9700 §4.14.2's grace for a retry, not a second grant): a
        different ``scope`` or ``resource`` (RFC 6749 §6, RFC 8707 §2.2) would get the first
        request's tokens under the second's name, so it is ``invalid_grant``."""
        sealed = self.tokens().unseal(successor, token_hash)
        if "body" not in sealed:
            return sealed  # sealed before the request was kept with it: a retry's seconds
        if sealed.get("asked") != asked:
            raise InvalidGrant("The refresh token was already used for another request.")
        return dict(sealed["body"])

    def _machine_grant(
        self, request: Request, ctx: RequestContext, params: oauth_params.Params
    ) -> dict[str, Any]:
        """The client credentials grant: its client and resources from the client
        cache's latest snapshot, its one row written in autocommit under that snapshot's
        generation (:meth:`Tokens.issue`) — when the generation moved, a fresh snapshot
        and again, so nothing decided on a stale snapshot is ever written.  A refusal
        is checked the same way: given only if the snapshot that decided it is current
        (a resource registered a moment ago must not be refused from an older one).
        After two stale snapshots (the applications are changing fast), the grant is
        decided and written in one transaction that holds the generation share-locked
        (:meth:`ClientCache.locked`): it waits for a change in flight, never fails."""
        cache = self.services.client_cache
        snapshot, checked = cache.latest(), False
        for _attempt in range(2):
            try:
                with self.services.db.session() as read:
                    client = client_auth.authenticate_client(
                        snapshot, read, request, params, ctx.now
                    )
                resources = resources_asked(snapshot, oauth_params.every(params, "resource"))
                return self._client_credentials(snapshot, client, params, resources)
            except StaleSnapshot:
                snapshot, checked = cache.current(), True
            except OAuthError:
                if checked:
                    raise
                current, checked = cache.current(), True
                if current is snapshot:
                    raise
                snapshot = current
        with cache.locked() as (conn, session, locked):
            client = client_auth.authenticate_client(locked, session, request, params, ctx.now)
            resources = resources_asked(locked, oauth_params.every(params, "resource"))
            return self._client_credentials(locked, client, params, resources, conn)

    def _client_credentials(
        self,
        snapshot: Snapshot,
        app: Client,
        params: dict[str, str],
        resources: tuple[str, ...],
        conn: Connection | None = None,
    ) -> dict[str, Any]:
        """RFC 6749 §4.4: only scopes the application was registered for (RFC 7591 §2
        ``scope``); without ``scope``, all of them (the "pre-defined default" of §3.3).
        ``resources`` (RFC 8707 §2, already checked) are the token's audience, each only
        if its API lists this client (:func:`passport.oidc.tokens.machine_resources`).
        The scopes are the client's registered ones, whatever the audience: the API
        decides what a scope lets a client do (docs/oauth-design.md)."""
        if not app.confidential:  # RFC 6749 §4.4: "MUST only be used by confidential clients"
            raise UnauthorizedClient("Public clients cannot use this grant.")
        resources = machine_resources(snapshot, app, resources)
        registered = list(dict.fromkeys(app.scopes))
        requested = params.get("scope")
        if requested is None or not requested.strip():
            wanted = registered
        else:
            if len(requested) > MAX_SCOPE_LENGTH:
                raise InvalidScope(f"scope is longer than {MAX_SCOPE_LENGTH}.")
            wanted = list(dict.fromkeys(requested.split()))
            for item in wanted:
                if not _SCOPE_TOKEN.fullmatch(item) or item not in registered or item in SCOPES:
                    raise InvalidScope(
                        f"The scope '{item[:50]}' is not registered for this client."
                    )
        scope = " ".join(s for s in wanted if s not in SCOPES)
        if len(scope) > MAX_SCOPE_LENGTH:
            raise InvalidScope(f"scope is longer than {MAX_SCOPE_LENGTH}.")
        grant = Grant(application=app, scope=scope, audience=resources)
        now = self.services.clock()
        if conn is not None:  # the locked transaction (_machine_grant)
            return self.tokens().issue(conn, grant, now, generation=snapshot.generation)
        with self.services.db.autocommit() as hot:
            return self.tokens().issue(hot, grant, now, generation=snapshot.generation)
