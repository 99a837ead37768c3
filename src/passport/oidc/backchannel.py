"""OpenID Connect Back-Channel Logout 1.0, delivered from a durable outbox.

When a user's Passport session ends, every application that registered a
``backchannel_logout_uri`` and received tokens for that user in that session gets a
signed logout token (§2.4: ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``sub``,
``sid``, ``events``, never ``nonce``; ``typ: logout+jwt``).  The ``sid`` is the one
in the ID tokens of that session (:func:`enqueue` says who is told what; ending all a
user's sessions sends ``sub`` alone, :mod:`passport.services.signout`).

The tokens are written to the ``logout_notifications`` table in the same transaction
as the logout, so none is lost if a process dies; any process delivers due rows
(claimed with a conditional UPDATE, so two processes never send the same row at once)
and retries with growing delays (up to :data:`MAX_ATTEMPTS`) while an application
is down.  Administrators read what was delivered with ``Users/logoutNotifications``.

Passport sends only to public addresses (:mod:`passport.services.outbound`, unless the
operator sets ``backchannel_allow_private``): a URI whose host resolves to a loopback,
link-local or private address is not contacted, and the notification records why.
What is recorded of a failed delivery (``last_error``) is the HTTP status or the
name of the connection error, never a byte of the response.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from passport.oidc.tokens import Tokens
from passport.oidc.tokens import subject
from passport.services import outbound
from passport.storage.db import Database
from passport.storage.models import Application
from passport.storage.models import LogoutNotification
from passport.storage.models import OAuthToken
from passport.storage.models import User

log = logging.getLogger("passport.backchannel")
EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_ATTEMPTS = outbound.LOGOUT_MAX_ATTEMPTS
TIMEOUT_SECONDS = 5
POLL_SECONDS = 1.0


def enqueue(
    db: Session,
    tokens: Tokens,
    user: User,
    now: datetime,
    *,
    sid: str | None = None,
    application_id: int | None = None,
) -> int:
    """Queue one logout token for every application that must hear that ``user``'s
    session ``sid`` ended, or (``sid`` None) that all of their sessions did.

    Which applications (§2.3, "Remembering Logged-In RPs"): those with a
    ``backchannel_logout_uri`` that were issued tokens for the user — in session ``sid``
    when one session ends.  What they are told (§2.4): ``sub`` always, and ``sid`` when
    one session ends, so that an application ends only its own session made from that
    one, not the user's other sessions with it.  An application holding tokens from
    before sessions had a ``sid`` (migration 0010) cannot be told which of its sessions
    to end; it gets a token without ``sid`` (all its sessions of the user), as all get
    when all the user's sessions end.  One token per application whatever the number
    of its token families.  ``application_id``: only that application (the user's access
    to it alone ended).
    """
    held = select(OAuthToken.application_id, OAuthToken.sid).where(OAuthToken.user_id == user.id)
    if application_id is not None:
        held = held.where(OAuthToken.application_id == application_id)
    if sid is not None:
        held = held.where(or_(OAuthToken.sid == sid, OAuthToken.sid.is_(None)))
    named: dict[int, str | None] = {}
    for application_id, token_sid in db.execute(held.distinct()).all():
        if token_sid is None or sid is None:
            named[application_id] = None  # all of the user's sessions with it
        else:
            named.setdefault(application_id, sid)
    apps = (
        db.scalars(
            select(Application)
            .where(Application.backchannel_logout_uri.is_not(None), Application.id.in_(named))
            .order_by(Application.id)
        ).all()
        if named
        else []
    )
    for app in apps:
        claims: dict[str, Any] = {
            "iss": tokens.issuer,
            "aud": app.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=2)).timestamp()),
            "jti": secrets.token_urlsafe(16),
            "sub": subject(user),
            "events": {EVENT: {}},
        }
        if named[app.id] is not None:
            claims["sid"] = named[app.id]
        db.add(
            LogoutNotification(
                application_id=app.id,
                user_id=user.id,
                # §2.4: signed with the keys that sign ID tokens; §2.6: the RP validates it
                # as an ID token, its ``alg`` the registered id_token_signed_response_alg.
                logout_token=tokens.sign("logout+jwt", claims, now, tokens.signing_alg(app)),
                created_at=now,
                next_attempt_at=now,
                attempts=0,
                last_error="",
            )
        )
    return len(apps)


@dataclass(frozen=True)
class Backlog:
    """The logout notifications not delivered (yet): ``waiting`` will be tried again
    (``failing`` of them have failed at least once), ``given_up`` failed
    :data:`MAX_ATTEMPTS` times and will not be."""

    waiting: int
    failing: int
    given_up: int
    oldest_waiting: datetime | None


def backlog(db: Session) -> Backlog:
    """What :func:`deliver_due` still has to do, for the console's health screen."""

    def count(*where: Any) -> int:
        query = select(func.count()).select_from(LogoutNotification).where(*where)
        return int(db.scalar(query) or 0)

    undelivered = LogoutNotification.delivered_at.is_(None)
    waiting = undelivered & (LogoutNotification.attempts < MAX_ATTEMPTS)
    return Backlog(
        waiting=count(waiting),
        failing=count(waiting, LogoutNotification.attempts > 0),
        given_up=count(undelivered, LogoutNotification.attempts >= MAX_ATTEMPTS),
        oldest_waiting=db.scalar(select(func.min(LogoutNotification.created_at)).where(waiting)),
    )


backoff = outbound.logout_backoff


def refusal(uri: str) -> str:
    """Why Passport must not POST to ``uri`` (a non-public target), or "" when it may.

    Registration refused such hosts when written as addresses; a name is checked here,
    when resolved, so that one pointing at an internal address is never contacted
    (OpenID Connect Back-Channel Logout 1.0 §2.2: the RP's URI; §4: Passport's request).
    """
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname or "", parts.port
        sent_to = parse_url(uri)  # how the HTTP client will read it: both must agree
    except (ValueError, LocationParseError):
        return "refused, not contacted: not a URI"
    if (sent_to.host or "").strip("[]").lower() != host or (sent_to.port or None) != port:
        return "refused, not contacted: not a plain URI"
    if parts.scheme != "https":
        return "refused, not contacted: not https"
    problem = outbound.resolution_problem(host, port or 443)
    return f"refused, not contacted: {problem}" if problem else ""


def deliver_due(
    database: Database, now: datetime, post: Callable[..., object] = requests.post
) -> int:
    """Send every due notification once; returns how many were delivered."""
    delivered = 0
    with database.session() as db:
        due = db.execute(
            select(LogoutNotification.id, LogoutNotification.next_attempt_at)
            .where(
                LogoutNotification.delivered_at.is_(None),
                LogoutNotification.attempts < MAX_ATTEMPTS,
                LogoutNotification.next_attempt_at <= now,
            )
            .order_by(LogoutNotification.id)
            .limit(50)
        ).all()
    for row_id, planned in due:
        with database.session(write=True) as db, db.begin():
            claimed = db.execute(
                update(LogoutNotification)
                .where(
                    LogoutNotification.id == row_id,
                    LogoutNotification.next_attempt_at == planned,
                    LogoutNotification.delivered_at.is_(None),
                )
                .values(next_attempt_at=now + timedelta(seconds=60))
            )
            if not getattr(claimed, "rowcount", 0):
                continue  # another process has it
        with database.session() as db:
            note = db.get(LogoutNotification, row_id)
            app = db.get(Application, note.application_id) if note else None
            if note is None or app is None or not app.backchannel_logout_uri:
                continue
            uri, token, attempts = app.backchannel_logout_uri, note.logout_token, note.attempts
        error = "" if database.settings.backchannel_allow_private else refusal(uri)
        if not error:
            try:
                response = post(
                    uri,
                    data={"logout_token": token},
                    timeout=TIMEOUT_SECONDS,
                    allow_redirects=False,
                    stream=True,  # the body is never read: the status is all Passport keeps
                )
                status = getattr(response, "status_code", 0)
                close = getattr(response, "close", None)
                if callable(close):
                    close()
                if status not in (200, 204):
                    error = f"HTTP {status}"
            except requests.RequestException as exc:
                error = type(exc).__name__
        with database.session(write=True) as db, db.begin():
            values: dict[str, object] = {"attempts": attempts + 1, "last_error": error[:200]}
            if error:
                values["next_attempt_at"] = now + backoff(attempts + 1)
            else:
                values["delivered_at"] = now
                delivered += 1
            db.execute(
                update(LogoutNotification).where(LogoutNotification.id == row_id).values(**values)
            )
        if error:
            log.warning("back-channel logout to application %s failed: %s", app.id, error)
    return delivered


class Deliverer:
    """A daemon thread per process that delivers due notifications every second."""

    def __init__(self, database: Database, clock: Callable[[], datetime]) -> None:
        self.database = database
        self.clock = clock
        self._started = False
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        if self._started:
            return
        with self._lock:
            if not self._started:
                threading.Thread(target=self._run, name="passport-backchannel", daemon=True).start()
                self._started = True

    def _run(self) -> None:
        while True:
            try:
                deliver_due(self.database, self.clock())
            except Exception as exc:  # keep delivering; the database may be back soon
                log.warning("back-channel delivery round failed: %s", type(exc).__name__)
            time.sleep(POLL_SECONDS)
