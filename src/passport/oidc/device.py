"""The OAuth 2.0 Device Authorization Grant (RFC 8628), for devices that cannot show a
browser or are awkward to type on (TVs, command-line tools).

* ``POST /oauth2/device_authorization`` (§3.1-3.2, :class:`DeviceAuthorizationEndpoint`):
  the client authenticates as at the token endpoint (:mod:`.client_auth`; ``client_id``
  alone for a public client) and gets a ``device_code`` for itself and a ``user_code``
  for its user, who enters it on Passport's hosted ``/device`` page
  (:mod:`passport.pages.device`) — signed in there, seeing which application asks and
  for what, and allowing or denying;
* the token endpoint's grant ``urn:ietf:params:oauth:grant-type:device_code``
  (§3.4-3.5, :func:`redeem`): ``authorization_pending`` until the user decided,
  ``slow_down`` for a poll that came before ``interval`` was over (the interval then
  grows by 5 seconds, kept on the server), ``access_denied``, ``expired_token``; once
  allowed, the tokens, for one redemption only.

Only applications whose ``device_grant`` setting is on may use it (off by default, as
Keycloak's per-client switch); any other gets ``unauthorized_client`` (RFC 6749 §5.2).

A public client's ``client_id`` is no secret, so anyone may ask in its name, and each
answer is a row that lives ``device_code_lifetime``.  So (OWASP ASVS 5 §6.3.1
anti-automation): a request that does not prove a confidential client's secret is
counted per client address (:func:`passport.oidc.client_auth.authenticate_counted`),
a public client has at most ``max_live_requests_per_client_address`` pending from one
address, and any client at most ``max_device_authorizations_per_client`` pending at
once (a backstop one address cannot reach alone; ``authenticate_counted`` says why) —
no pending one is dropped for a new one.  Either refusal is ``invalid_request`` (§3.2
answers errors as the token endpoint, RFC 6749 §5.2) with status 429 and
``Retry-After`` (RFC 6585 §4): the device may try again later, where a 400 would tell
it its request was wrong.

The user code (§6.1): 8 characters of :data:`USER_CODE_ALPHABET` (20 consonants, no
vowels — no words — and no look-alike digits), about 34.6 bits, shown ``XXXX-XXXX``
and read in either case with dashes and spaces ignored (:func:`canonical`).  Guessing
one is throttled on ``/device`` (§5.1).  Both codes are kept only as their SHA-256
(:func:`passport.oidc.tokens.digest`), as every token.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import client_auth
from passport.oidc import params as oauth_params
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import Part
from passport.oidc.errors import AccessDenied
from passport.oidc.errors import InvalidGrant
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import InvalidTarget
from passport.oidc.errors import OAuthError
from passport.oidc.errors import UnauthorizedClient
from passport.oidc.errors import json_response
from passport.oidc.errors import render
from passport.oidc.tokens import Grant
from passport.oidc.tokens import digest
from passport.services.applications import lock_for_counting
from passport.services.throttle import address_of
from passport.storage.db import Database
from passport.storage.models import Application
from passport.storage.models import DeviceAuthorization
from passport.storage.models import User
from passport.web.context import RequestContext

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4
# RFC 8628 §6.1: "BCDFGHJKLMNPQRSTVWXZ" (base-20, no vowels), 8 characters.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
# The longest text read as a user code: 8 characters with their separators, generously.
_USER_CODE_INPUT_MAX = 32
INTERVAL = 5  # §3.2: "If no value is provided, clients MUST use 5 as the default."
SLOW_DOWN_STEP = 5  # §3.5: the client adds 5 seconds at each slow_down; so do we
VERIFICATION_PATH = "/device"


class AuthorizationPending(OAuthError):
    """RFC 8628 §3.5: the user has not decided yet."""

    error = "authorization_pending"


class SlowDown(OAuthError):
    """RFC 8628 §3.5: polled before the interval was over; it grows by 5 seconds."""

    error = "slow_down"


class ExpiredToken(OAuthError):
    """RFC 8628 §3.5: the device code has expired; the device must start again."""

    error = "expired_token"


def new_user_code() -> str:
    """A random user code in canonical form (§6.1), from ``secrets``."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display(code: str) -> str:
    """``BCDFGHJK`` as people read it: ``BCDF-GHJK`` (§6.1)."""
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def canonical(raw: str | None) -> str | None:
    """The user code that ``raw`` spells, or None: case does not count, nor do dashes
    and spaces (§6.1: "the user code SHOULD be case insensitive" and punctuation
    "SHOULD be ignored").  Only ASCII letters of the alphabet count: a look-alike from
    another script, or a character that changes length when upper-cased (``ß``), is
    not a code."""
    if not raw or len(raw) > _USER_CODE_INPUT_MAX:
        return None
    kept = "".join(c for c in raw if c not in "- \t")
    if len(kept) != USER_CODE_LENGTH or not kept.isascii():
        return None
    code = kept.upper()
    if any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code


def user_code_hash(code: str) -> str:
    return digest("user_code:" + code)


def find_pending(db: Session, code: str, now: datetime) -> DeviceAuthorization | None:
    """The device authorization that the canonical user ``code`` names, if the user may
    still decide it: pending, unexpired."""
    wanted = DeviceAuthorization.user_code_hash == user_code_hash(code)
    row = db.scalars(select(DeviceAuthorization).where(wanted)).first()
    if row is None or row.status != "pending" or row.expires_at <= now:
        return None
    return row


def pending_room(
    db: Session, application_id: int, now: datetime, limit: int, address: str | None = None
) -> int:
    """0 when ``application_id`` may start one more device authorization, else the
    seconds until its oldest pending one expires (``Retry-After``): at most ``limit``
    pending at once, since a public client's ``client_id`` is no secret — asked from
    ``address`` (:func:`passport.services.throttle.address_of`) when it is given, else
    from anywhere.  The client's row is locked first (:func:`lock_for_counting`), so
    requests arriving at once count one after another."""
    lock_for_counting(db, application_id)
    live = [
        DeviceAuthorization.application_id == application_id,
        DeviceAuthorization.status == "pending",
        DeviceAuthorization.expires_at > now,
    ]
    if address is not None:
        live.append(DeviceAuthorization.client_address == address)
    count, oldest = db.execute(
        select(func.count(), func.min(DeviceAuthorization.expires_at)).where(*live)
    ).one()
    if count < limit or oldest is None:
        return 0
    return max(1, math.ceil((oldest - now).total_seconds()))


def decide(
    db: Session,
    row: DeviceAuthorization,
    *,
    allow: bool,
    user_id: int,
    auth_time: datetime,
    sid: str | None,
    amr: str | None = None,
) -> bool:
    """Record the user's decision (§3.3); False when it was decided already (a second
    tab, a replayed form): one decision per code."""
    result = db.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.device_code_hash == row.device_code_hash,
            DeviceAuthorization.status == "pending",
        )
        .values(
            status="approved" if allow else "denied",
            user_id=user_id,
            auth_time=auth_time,
            sid=sid,
            amr=amr,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


class DeviceAuthorizationEndpoint(Part):
    def device_authorization(self, request: Request) -> Response:
        """``POST /oauth2/device_authorization`` (RFC 8628 §3.1)."""
        try:
            params = oauth_params.protocol(request, self.settings)
        except ClientError as exc:
            return render(InvalidRequest.of(exc))
        issuer = self.issuer()
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._start(request, ctx, params, issuer))

    def _start(
        self, request: Request, ctx: RequestContext, params: oauth_params.Params, issuer: str
    ) -> Response:
        now = ctx.now
        try:
            app = client_auth.authenticate_counted(
                ctx, request, params, "Too many device authorization requests"
            )
            db = ctx.db
            if not app.device_grant:
                raise UnauthorizedClient("This client may not use the device authorization grant.")
            if any(oauth_params.every(params, "resource")):
                # RFC 8707 §2: "invalid_target" for a resource the server will not grant.
                # The /device page does not show APIs for the user to allow (RFC 8628
                # §3.3), and silently dropping it would let the client believe its token
                # is audience-restricted; the device's token is for the client itself.
                raise InvalidTarget("resource is not supported for the device authorization grant.")
            address = address_of(ctx.client_ip)
            # RFC 8628 §5.2 / ASVS 5 §6.3.1: a public client's share per address first,
            # then the client-wide backstop (client_auth.authenticate_counted says why).
            if not app.confidential:
                share = self.settings.max_live_requests_per_client_address
                full = pending_room(db, app.id, now, share, address)
                if full:
                    raise client_auth.too_many(
                        "Too many pending device authorizations for this client from this address",
                        full,
                    )
            full = pending_room(db, app.id, now, self.settings.max_device_authorizations_per_client)
            if full:
                raise client_auth.too_many(
                    "This client has too many pending device authorizations", full
                )
            # As at authorize (RFC 6749 §3.3, OIDC Core §3.1.2.1: unknown scopes ignored).
            # ``offline_access`` counts as with prompt=consent (OIDC Core §11): the user
            # is shown every scope and asked on /device, every time.
            scopes = AuthorizationEndpoint.granted_scopes(app, params.get("scope", ""), {"consent"})
        except OAuthError as error:
            ctx.refuse()
            return render(error)
        device_code = secrets.token_urlsafe(32)
        user_code = new_user_code()
        # A code still in the table (live, or expired and not yet purged) is not given
        # again: 20^8 codes make this loop run once but for the rarest of draws.
        while db.scalars(
            select(DeviceAuthorization.device_code_hash).where(
                DeviceAuthorization.user_code_hash == user_code_hash(user_code)
            )
        ).first():
            user_code = new_user_code()
        lifetime = self.settings.device_code_lifetime
        db.add(
            DeviceAuthorization(
                device_code_hash=digest(device_code),
                user_code_hash=user_code_hash(user_code),
                application_id=app.id,
                scope=" ".join(scopes),
                status="pending",
                client_address=address,
                interval=INTERVAL,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
            )
        )
        shown = display(user_code)
        verification_uri = issuer + VERIFICATION_PATH
        return json_response(  # §3.2
            {
                "device_code": device_code,
                "user_code": shown,
                "verification_uri": verification_uri,
                "verification_uri_complete": verification_uri
                + "?"
                + urlencode({"user_code": shown}),
                "expires_in": lifetime,
                "interval": INTERVAL,
            }
        )


def redeem(
    ctx: RequestContext,
    app: Application,
    params: dict[str, str],
    refresh_allowed: Callable[[Application, str], bool],
) -> Grant:
    """The token request of the device grant (RFC 8628 §3.4-3.5): the :class:`Grant` to
    issue through the token endpoint's one path, or the error that answers the poll.

    The row is locked, and deleted when the tokens are issued (a conditional delete
    only one request can win): the device code is redeemed once, and a concurrent
    second redemption is ``invalid_grant``.  A poll's time and a grown interval are
    written by an after-action of the request scope, in a transaction of their own:
    the poll is answered with an error, which rolls the request's transaction back."""
    db, now = ctx.db, ctx.now
    if not app.device_grant:  # also when switched off since the device asked
        raise UnauthorizedClient("This client may not use the device authorization grant.")
    device_code = params.get("device_code")
    if not device_code:
        raise InvalidRequest("device_code is required.")
    code_hash = digest(device_code)
    row = db.get(DeviceAuthorization, code_hash, with_for_update=True)
    if row is None or row.application_id != app.id:
        raise InvalidGrant("The device code is not valid.")
    if row.expires_at <= now:
        raise ExpiredToken("The device code has expired.")
    if row.status == "denied":
        raise AccessDenied("The user denied the authorization.")
    if row.status != "approved":
        too_soon = row.last_polled_at is not None and now - row.last_polled_at < timedelta(
            seconds=row.interval
        )
        database = ctx.services.db
        ctx.after(lambda: _record_poll(database, code_hash, now, slow_down=too_soon))
        if too_soon:
            raise SlowDown(f"Poll every {row.interval + SLOW_DOWN_STEP} seconds at most.")
        raise AuthorizationPending("The user has not decided yet.")
    scope, user_id, auth_time, sid, amr = row.scope, row.user_id, row.auth_time, row.sid, row.amr
    used = db.execute(
        delete(DeviceAuthorization)
        .where(
            DeviceAuthorization.device_code_hash == code_hash,
            DeviceAuthorization.status == "approved",
        )
        .execution_options(synchronize_session=False)
    )
    db.expunge(row)
    if getattr(used, "rowcount", 0) != 1:
        raise InvalidGrant("The device code was already used.")
    user = db.get(User, user_id) if user_id is not None else None
    if user is None or user.disabled:
        raise InvalidGrant("The user can no longer sign in.")
    return Grant(
        application=app,
        scope=scope,
        user=user,
        auth_time=auth_time,
        refresh=refresh_allowed(app, scope),
        id_token="openid" in scope.split(),
        sid=sid,
        amr=amr,
    )


def _record_poll(database: Database, code_hash: str, now: datetime, *, slow_down: bool) -> None:
    """Keep the time of a poll, and the interval grown by a ``slow_down`` (§3.5)."""
    step = SLOW_DOWN_STEP if slow_down else 0
    with database.session(write=True) as db, db.begin():
        db.execute(
            update(DeviceAuthorization)
            .where(DeviceAuthorization.device_code_hash == code_hash)
            .values(last_polled_at=now, interval=DeviceAuthorization.interval + step)
            .execution_options(synchronize_session=False)
        )
