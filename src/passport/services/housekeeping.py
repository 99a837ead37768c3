"""Housekeeping: deleting the rows that no rule will ever read again, so tables stay bounded.

Every login, authorization, token refresh, logout and failed attempt writes rows that
have an end (``expires_at``, a throttle window, a delivered notification).  Past that
end a row only costs space and index depth; :func:`purge_expired` deletes it.  What
goes, and why it is safe:

* ``login_sessions`` past their absolute lifetime (``expires_at``): the database
  session store refuses them already.  With Redis the table stays empty and the
  delete finds nothing: Redis expires its own keys (their TTL is the deadline).
* ``oauth_codes`` once expired (60 s after they were made), used or not, unless a
  token issued from a used code is still live: a replayed code revokes the tokens it
  issued (RFC 6749 §4.1.2), so its row stays while there is something to revoke.
* ``oauth_tokens`` once expired, revoked or not, rotated or not.  Reuse detection
  (OAuth 2.0 Security BCP §4.14) is untouched: a rotated refresh token revokes its
  family when it is presented again *while unexpired*; the token endpoint checks
  expiry first, so an expired row and a missing one get the same answer
  (``invalid_grant``, nothing revoked).  A rotated refresh token that is still
  unexpired is kept — it is exactly what detects a replay — and so the rows of a live
  family stay until each of them expires.  Revoked tokens stay until they expire too:
  they still name the applications that must hear of the user's next logout.
* ``pending_authorizations`` past ``expires_at`` (ten minutes): abandoned sign-ins.
* ``sign_in_steps`` past ``expires_at`` (five minutes): a second step never finished,
  a WebAuthn challenge never answered, an authenticator app never confirmed; the
  pages refuse them already.
* ``pushed_authorization_requests`` past ``expires_at`` (a minute, RFC 9126 §2.2):
  pushed and never used; the authorization endpoint refuses them already.
* ``device_authorizations`` past ``expires_at`` (``device_code_lifetime``): the token
  endpoint answers ``expired_token`` for them until then, ``invalid_grant`` after (RFC
  8628 §3.5 lets the device start again either way); a redeemed one is deleted at once.
* ``logout_notifications`` delivered, or given up (``delivery_attempts`` reached),
  more than :attr:`Retention.notifications` ago (default 7 days: long enough for an
  administrator to look at ``Users/logoutNotifications`` after an incident; the
  logout token inside expired two minutes after it was made).
* ``email_links`` past ``expires_at`` (minutes to days): the pages refuse them already.
* ``mail_outbox`` sent, or given up, more than :attr:`Retention.notifications` ago
  (their bodies were emptied when that happened; the row tells the operator what went
  out and what failed).
* ``invitations`` (with their groups) 30 days past their expiry, accepted or not: the
  audit log keeps who invited whom.
* ``throttle_counters`` whose window has passed: the next attempt would start a new
  window anyway, so no row and an old row count the same.  With Redis the table stays
  empty; Redis expires its counters.

Every cut-off lies :attr:`Retention.margin` (5 minutes) further in the past than the
rule needs, so a process whose clock runs a little behind never finds a row gone that
it still considers live.

Audit records (``audit_events``) are never purged here: they are the record of who did
what, and how long to keep them is the operator's decision (archive or delete them
with the database's own tools).

The deletes go in batches (:func:`purge_expired` ``batch_size``), each in its own short
transaction, so the purge never holds a lock for long and never blocks the requests
that write the same tables.  The ids of a batch are selected first and then deleted by
id list, with the rule repeated in the DELETE (MariaDB refuses ``LIMIT`` in an ``IN``
subquery, and a row that came alive again in between is not deleted): the same
statements on SQLite, MariaDB and PostgreSQL.

This module sits below the protocols (``passport.oidc``): it works on the models of
:mod:`passport.storage.models` with plain SQLAlchemy, and what it needs of the
protocols' rules (how many delivery attempts mean "given up") it is given as data.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy import and_
from sqlalchemy import delete
from sqlalchemy import exists
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from passport.services.mail import MAX_ATTEMPTS as MAIL_MAX_ATTEMPTS
from passport.storage.db import Database
from passport.storage.models import AuthorizationCode
from passport.storage.models import DeviceAuthorization
from passport.storage.models import EmailLink
from passport.storage.models import Invitation
from passport.storage.models import LoginSession
from passport.storage.models import LogoutNotification
from passport.storage.models import MailMessage
from passport.storage.models import OAuthToken
from passport.storage.models import PendingAuthorization
from passport.storage.models import PushedAuthorizationRequest
from passport.storage.models import SignInStep
from passport.storage.models import ThrottleCounter

log = logging.getLogger("passport.housekeeping")

DEFAULT_BATCH_SIZE = 1000
DEFAULT_INTERVAL_SECONDS = 600  # the background purge: every 10 minutes
_FIRST_RUN_SPREAD_SECONDS = 60  # processes started together do not purge together


@dataclass(frozen=True)
class Retention:
    """How long rows are kept past the end of their use.

    ``delivery_attempts`` is the protocol's rule for "given up"
    (:data:`passport.oidc.backchannel.MAX_ATTEMPTS`), given as data because services do
    not import the protocols; ``None`` counts every undelivered notification older than
    ``notifications`` as abandoned (its logout token has long expired by then).
    """

    margin: timedelta = timedelta(minutes=5)
    notifications: timedelta = timedelta(days=7)
    delivery_attempts: int | None = None


INVITATIONS_KEPT = timedelta(days=30)


@dataclass
class PurgeReport:
    """How many rows :func:`purge_expired` deleted, per table."""

    login_sessions: int = 0
    oauth_codes: int = 0
    oauth_tokens: int = 0
    pending_authorizations: int = 0
    pushed_authorization_requests: int = 0
    device_authorizations: int = 0
    logout_notifications: int = 0
    throttle_counters: int = 0
    sign_in_steps: int = 0
    email_links: int = 0
    mail_outbox: int = 0
    invitations: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


def purge_expired(
    database: Database,
    now: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    retention: Retention | None = None,
) -> PurgeReport:
    """Delete every row past its end (see the module's docstring for each table's rule).

    Safe to run from several processes at once: each batch re-checks its rule in the
    DELETE, and a row deleted by another process is simply not counted twice.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    keep = retention or Retention()
    settings = database.settings
    cutoff = now - keep.margin
    # A token (or code) counts as live up to ``cutoff``: margin on the safe side.
    token_live = and_(OAuthToken.revoked_at.is_(None), OAuthToken.expires_at > cutoff)
    code_has_live_token = (
        exists()
        .where(OAuthToken.code_hash == AuthorizationCode.code_hash)
        .where(token_live)
        .correlate(AuthorizationCode)
    )
    notifications_cutoff = now - keep.notifications
    given_up: ColumnElement[bool] = and_(
        LogoutNotification.delivered_at.is_(None),
        LogoutNotification.created_at <= notifications_cutoff,
    )
    if keep.delivery_attempts is not None:
        given_up = and_(given_up, LogoutNotification.attempts >= keep.delivery_attempts)
    throttle_cutoff = cutoff - timedelta(seconds=settings.throttle_window)

    report = PurgeReport()
    report.login_sessions = _purge_table(
        database, LoginSession.id_hash, LoginSession.expires_at <= cutoff, batch_size
    )
    report.pending_authorizations = _purge_table(
        database,
        PendingAuthorization.handle_hash,
        PendingAuthorization.expires_at <= cutoff,
        batch_size,
    )
    report.sign_in_steps = _purge_table(
        database, SignInStep.id_hash, SignInStep.expires_at <= cutoff, batch_size
    )
    report.pushed_authorization_requests = _purge_table(
        database,
        PushedAuthorizationRequest.request_uri_hash,
        PushedAuthorizationRequest.expires_at <= cutoff,
        batch_size,
    )
    report.device_authorizations = _purge_table(
        database,
        DeviceAuthorization.device_code_hash,
        DeviceAuthorization.expires_at <= cutoff,
        batch_size,
    )
    # Tokens before codes: a code is kept while a token it issued lives, so the tokens
    # that expired are gone first and their codes can follow in the same run.
    report.oauth_tokens = _purge_table(
        database, OAuthToken.id, OAuthToken.expires_at <= cutoff, batch_size
    )
    report.oauth_codes = _purge_table(
        database,
        AuthorizationCode.code_hash,
        and_(AuthorizationCode.expires_at <= cutoff, ~code_has_live_token),
        batch_size,
    )
    report.logout_notifications = _purge_table(
        database,
        LogoutNotification.id,
        or_(LogoutNotification.delivered_at <= notifications_cutoff, given_up),
        batch_size,
    )
    report.email_links = _purge_table(
        database, EmailLink.id_hash, EmailLink.expires_at <= cutoff, batch_size
    )
    report.mail_outbox = _purge_table(
        database,
        MailMessage.id,
        or_(
            MailMessage.sent_at <= notifications_cutoff,
            and_(
                MailMessage.sent_at.is_(None),
                MailMessage.attempts >= MAIL_MAX_ATTEMPTS,
                MailMessage.created_at <= notifications_cutoff,
            ),
        ),
        batch_size,
    )
    report.invitations = _purge_table(
        database, Invitation.id, Invitation.expires_at <= cutoff - INVITATIONS_KEPT, batch_size
    )
    report.throttle_counters = _purge_table(
        database,
        ThrottleCounter.key,
        ThrottleCounter.window_start <= throttle_cutoff,
        batch_size,
    )
    return report


def _purge_table(
    database: Database,
    key: InstrumentedAttribute[Any],
    condition: ColumnElement[bool],
    batch_size: int,
) -> int:
    """Delete the rows of ``key``'s table that meet ``condition``, ``batch_size`` at a
    time, one short transaction per batch; returns how many went."""
    model = key.class_
    deleted = 0
    while True:
        with database.session(write=True) as db, db.begin():
            ids = list(db.scalars(select(key).where(condition).order_by(key).limit(batch_size)))
            if not ids:
                break
            result = db.execute(
                delete(model)
                .where(key.in_(ids), condition)
                .execution_options(synchronize_session=False)
            )
            count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        # A short batch was the last one; an empty delete means another process is
        # purging the same rows right now: it will finish them.
        if len(ids) < batch_size or count == 0:
            break
    return deleted


def describe(report: PurgeReport) -> str:
    """One log line: the count per table."""
    return " ".join(f"{table}={count}" for table, count in report.as_dict().items())


class Housekeeper:
    """Runs :func:`purge_expired` every ``interval`` seconds in a daemon thread.

    Started by :meth:`passport.composition.Services.start_background` in served
    processes; every process of a deployment may run one (the purge is safe to run
    concurrently).  The first run comes within a minute of the start (``first_delay``;
    by default spread at random, so processes started together do not purge together).
    Counts are logged at INFO, a failed run at WARNING with the error's class only (no
    SQL, no values, no traceback), and the next run tries again.
    """

    def __init__(
        self,
        database: Database,
        clock: Callable[[], datetime],
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        retention: Retention | None = None,
        first_delay: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.database = database
        self.clock = clock
        self.interval = interval
        self.batch_size = batch_size
        self.retention = retention or Retention()
        self.first_delay = first_delay
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def run_once(self) -> PurgeReport | None:
        """One purge, logged; None when it failed (logged, never raised)."""
        try:
            report = purge_expired(
                self.database, self.clock(), batch_size=self.batch_size, retention=self.retention
            )
        except Exception as exc:  # the database may be back at the next run
            log.warning("housekeeping purge failed: %s", type(exc).__name__)
            return None
        if report.total:
            log.info("housekeeping purge deleted %s", describe(report))
        else:
            log.debug("housekeeping purge: nothing to delete")
        return report

    def ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="passport-housekeeping", daemon=True
                )
                thread.start()
                self._thread = thread

    def stop(self, timeout: float | None = None) -> None:
        """End the thread once its current run is over, and wait for it (tests; a served
        process needs no stop: the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.first_delay
        if delay is None:
            delay = random.uniform(0, min(self.interval, _FIRST_RUN_SPREAD_SECONDS))
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.interval
