"""Housekeeping (``passport db purge`` and the background purge): what is past its end
goes, what a rule still reads stays, and the tables stay bounded over a long run."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy.event
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import get_code
from oidc_support import ids
from oidc_support import query
from oidc_support import seed
from oidc_support import token
from passport.cli import cli
from passport.oidc.backchannel import MAX_ATTEMPTS
from passport.oidc.backchannel import deliver_due
from passport.services import housekeeping
from passport.services.applications import find_by_name
from passport.services.housekeeping import Housekeeper
from passport.services.housekeeping import PurgeReport
from passport.services.housekeeping import Retention
from passport.services.housekeeping import purge_expired
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
from passport.storage.models import User

from conftest import BACKENDS
from support import Harness

TABLES = {
    "login_sessions": LoginSession,
    "oauth_codes": AuthorizationCode,
    "oauth_tokens": OAuthToken,
    "pending_authorizations": PendingAuthorization,
    "pushed_authorization_requests": PushedAuthorizationRequest,
    "device_authorizations": DeviceAuthorization,
    "logout_notifications": LogoutNotification,
    "throttle_counters": ThrottleCounter,
    "sign_in_steps": SignInStep,
    "email_links": EmailLink,
    "mail_outbox": MailMessage,
    "invitations": Invitation,
}
RETENTION = Retention(delivery_attempts=MAX_ATTEMPTS)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def provider(factory: Any, backend: str, **overrides: Any) -> Harness:
    """Passport on ``backend`` with the OpenID Connect test applications and user alice."""
    overrides = {
        "key_encryption_key": KEK,
        "key_rotation_delay": 0,
        "backchannel_allow_private": True,
    } | overrides
    harness: Harness = factory(backend, **overrides)
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


def database(h: Harness) -> Database:
    return h.app.services.db


def counts(h: Harness) -> dict[str, int]:
    with database(h).session() as db:
        return {
            table: int(db.scalar(select(func.count()).select_from(model)) or 0)
            for table, model in TABLES.items()
        }


def keys(h: Harness, model: Any) -> set[str]:
    """The rows left in ``model``'s table, by the ``note`` each test gives them."""
    key = {
        LoginSession: LoginSession.ip,
        AuthorizationCode: AuthorizationCode.code_hash,
        OAuthToken: OAuthToken.token_hash,
        PendingAuthorization: PendingAuthorization.handle_hash,
        PushedAuthorizationRequest: PushedAuthorizationRequest.request_uri_hash,
        DeviceAuthorization: DeviceAuthorization.device_code_hash,
        LogoutNotification: LogoutNotification.last_error,
        ThrottleCounter: ThrottleCounter.key,
        SignInStep: SignInStep.id_hash,
        EmailLink: EmailLink.id_hash,
        MailMessage: MailMessage.last_error,
        Invitation: Invitation.email,
    }[model]
    with database(h).session() as db:
        return set(db.scalars(select(key)))


# -- each table's rule, on rows written as they would be ------------------------------


def _rows_of_every_kind(h: Harness, now: datetime) -> None:
    """Rows named after what the purge must do with them (``gone-*``, ``kept-*``)."""
    ago = lambda **delta: now - timedelta(**delta)  # noqa: E731
    ahead = lambda **delta: now + timedelta(**delta)  # noqa: E731
    with database(h).session(write=True) as db, db.begin():
        alice = db.scalars(select(User).where(User.username == "alice")).one()
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        user_id, app_id = alice.id, wiki.id

        def session(note: str, expires: datetime) -> None:
            db.add(
                LoginSession(
                    id_hash=note.ljust(64, "0"),
                    user_id=user_id,
                    created_at=ago(hours=13),
                    last_seen_at=ago(hours=1),
                    expires_at=expires,
                    idle_timeout=1800,
                    remember=False,
                    ip=note,
                    user_agent="",
                )
            )

        session("gone-expired", ago(minutes=10))
        session("kept-live", ahead(hours=1))
        session("kept-within-margin", ago(minutes=1))  # another process's clock may lag

        def code(name: str, expires: datetime, used: datetime | None = None) -> None:
            db.add(
                AuthorizationCode(
                    code_hash=name,
                    application_id=app_id,
                    user_id=user_id,
                    redirect_uri=REDIRECT,
                    scope="openid",
                    auth_time=ago(hours=1),
                    expires_at=expires,
                    used_at=used,
                )
            )

        code("gone-unused-expired", ago(minutes=10))
        code("kept-unused-live", ahead(seconds=30))
        code("kept-used-with-live-token", ago(minutes=10), used=ago(minutes=11))
        code("gone-used-tokens-dead", ago(minutes=10), used=ago(minutes=11))
        db.flush()

        def oauth_token(
            name: str,
            kind: str,
            expires: datetime,
            *,
            family: str = "f-other",
            code_hash: str | None = None,
            revoked: datetime | None = None,
            rotated: datetime | None = None,
        ) -> None:
            db.add(
                OAuthToken(
                    token_hash=name,
                    kind=kind,
                    application_id=app_id,
                    user_id=user_id,
                    scope="openid",
                    family=family,
                    code_hash=code_hash,
                    created_at=ago(days=1),
                    expires_at=expires,
                    revoked_at=revoked,
                    rotated_at=rotated,
                )
            )

        oauth_token("gone-access-expired", "access", ago(minutes=10))
        oauth_token("kept-access-live", "access", ahead(minutes=10))
        oauth_token("gone-refresh-revoked-expired", "refresh", ago(hours=1), revoked=ago(days=1))
        # Revoked but unexpired: kept (it still names an application to tell at logout).
        oauth_token("kept-refresh-revoked-live", "refresh", ahead(days=1), revoked=ago(hours=1))
        # A live family: its rotated, unexpired token is what detects a replay.
        oauth_token(
            "kept-family-rotated",
            "refresh",
            ahead(days=20),
            family="f-live",
            rotated=ago(days=1),
            code_hash="kept-used-with-live-token",
        )
        oauth_token("kept-family-newest", "refresh", ahead(days=29), family="f-live")
        # Expired, so the token endpoint refuses it before it looks at the rotation.
        oauth_token(
            "gone-family-rotated-expired",
            "refresh",
            ago(hours=2),
            family="f-live",
            rotated=ago(days=29),
        )
        # The used code whose tokens are all dead: expired, or revoked.
        oauth_token("gone-code-access", "access", ago(hours=1), code_hash="gone-used-tokens-dead")
        oauth_token(
            "kept-code-refresh-revoked",
            "refresh",
            ahead(days=1),
            code_hash="gone-used-tokens-dead",
            revoked=ago(hours=1),
        )

        def pending(name: str, expires: datetime) -> None:
            db.add(
                PendingAuthorization(
                    handle_hash=name,
                    browser_hash="b" * 64,
                    application_id=app_id,
                    redirect_uri=REDIRECT,
                    scope="openid",
                    created_at=expires - timedelta(minutes=10),
                    expires_at=expires,
                )
            )

        pending("gone-pending-expired", ago(minutes=10))
        pending("kept-pending-live", ahead(minutes=5))

        def step(name: str, expires: datetime) -> None:
            db.add(
                SignInStep(
                    id_hash=name,
                    purpose="second-factor",
                    user_id=user_id,
                    payload="{}",
                    created_at=expires - timedelta(minutes=5),
                    expires_at=expires,
                )
            )

        step("gone-step-expired", ago(minutes=10))
        step("kept-step-live", ahead(minutes=2))

        def link(name: str, expires: datetime) -> None:
            db.add(
                EmailLink(
                    id_hash=name,
                    purpose="reset",
                    user_id=user_id,
                    address="alice@example.com",
                    created_at=expires - timedelta(minutes=30),
                    expires_at=expires,
                )
            )

        link("gone-link-expired", ago(minutes=10))
        link("kept-link-live", ahead(minutes=2))

        def mail(name: str, created: datetime, sent: datetime | None, attempts: int) -> None:
            db.add(
                MailMessage(
                    purpose="password_reset",
                    user_id=user_id,
                    recipient="alice@example.com",
                    subject="s",
                    body="",
                    created_at=created,
                    next_attempt_at=created,
                    attempts=attempts,
                    sent_at=sent,
                    last_error=name,
                )
            )

        mail("gone-mail-sent-long-ago", ago(days=8), ago(days=8), 1)
        mail("gone-mail-given-up-long-ago", ago(days=8), None, MAIL_MAX_ATTEMPTS)
        mail("kept-mail-sent-recently", ago(days=1), ago(days=1), 1)
        mail("kept-mail-given-up-recently", ago(days=1), None, MAIL_MAX_ATTEMPTS)
        mail("kept-mail-still-trying", ago(days=8), None, 3)

        def invitation(name: str, expires: datetime) -> None:
            db.add(
                Invitation(
                    email=name,
                    email_key=name,
                    created_at=expires - timedelta(days=7),
                    sent_at=expires - timedelta(days=7),
                    expires_at=expires,
                )
            )

        invitation("gone-invitation-ended-31-days-ago", ago(days=31))
        invitation("kept-invitation-ended-29-days-ago", ago(days=29))

        def pushed(name: str, expires: datetime) -> None:
            db.add(
                PushedAuthorizationRequest(
                    request_uri_hash=name,
                    application_id=app_id,
                    parameters="{}",
                    created_at=expires - timedelta(minutes=1),
                    expires_at=expires,
                )
            )

        def device(name: str, expires: datetime) -> None:
            db.add(
                DeviceAuthorization(
                    device_code_hash=name,
                    user_code_hash="u" + name,
                    application_id=app_id,
                    scope="openid",
                    status="pending",
                    interval=5,
                    created_at=expires - timedelta(minutes=10),
                    expires_at=expires,
                )
            )

        pushed("gone-pushed-expired", ago(minutes=6))  # past the 5 minutes' margin
        pushed("kept-pushed-expired-within-margin", ago(minutes=1))
        pushed("kept-pushed-live", ahead(seconds=30))

        device("gone-device-expired", ago(minutes=10))
        device("kept-device-live", ahead(minutes=5))

        def notification(
            note: str, created: datetime, *, delivered: datetime | None, attempts: int
        ) -> None:
            db.add(
                LogoutNotification(
                    application_id=app_id,
                    user_id=user_id,
                    logout_token="x.y.z",
                    created_at=created,
                    next_attempt_at=created + timedelta(hours=2),
                    attempts=attempts,
                    delivered_at=delivered,
                    last_error=note,
                )
            )

        notification("gone-delivered-old", ago(days=8), delivered=ago(days=8), attempts=1)
        notification("kept-delivered-recent", ago(days=6), delivered=ago(days=6), attempts=1)
        notification("gone-given-up-old", ago(days=8), delivered=None, attempts=MAX_ATTEMPTS)
        notification("kept-given-up-recent", ago(days=6), delivered=None, attempts=MAX_ATTEMPTS)
        notification("kept-still-trying", ago(days=8), delivered=None, attempts=3)
        notification("kept-new", now, delivered=None, attempts=0)

        def counter(name: str, window_start: datetime) -> None:
            db.add(
                ThrottleCounter(
                    key=name, failures=3, window_start=window_start, last_failure=window_start
                )
            )

        window = h.settings.throttle_window
        counter("gone-window-passed", ago(seconds=window, minutes=10))
        counter("kept-window-open", ago(minutes=1))


def test_each_kind_of_expired_row_goes_and_live_rows_stay(backend: str, factory: Any) -> None:
    h = provider(factory, backend)
    now = h.clock()
    _rows_of_every_kind(h, now)
    before = counts(h)

    report = purge_expired(database(h), now, retention=RETENTION)

    assert report == PurgeReport(
        login_sessions=1,
        oauth_codes=2,
        oauth_tokens=4,
        pending_authorizations=1,
        pushed_authorization_requests=1,
        device_authorizations=1,
        logout_notifications=2,
        throttle_counters=1,
        sign_in_steps=1,
        email_links=1,
        mail_outbox=2,
        invitations=1,
    )
    assert {table: before[table] - n for table, n in report.as_dict().items()} == counts(h)
    for model in TABLES.values():
        left = keys(h, model)
        assert not {k for k in left if k.startswith("gone-")}, (model, left)
        assert all(k.startswith("kept-") for k in left), (model, left)
    assert keys(h, OAuthToken) == {
        "kept-access-live",
        "kept-refresh-revoked-live",
        "kept-family-rotated",
        "kept-family-newest",
        "kept-code-refresh-revoked",
    }
    assert keys(h, AuthorizationCode) == {"kept-unused-live", "kept-used-with-live-token"}
    assert keys(h, LoginSession) == {"kept-live", "kept-within-margin"}
    assert keys(h, ThrottleCounter) == {"kept-window-open"}
    assert purge_expired(database(h), now, retention=RETENTION) == PurgeReport()  # idempotent


def test_without_an_attempt_limit_old_undelivered_notifications_are_abandoned(
    backend: str, factory: Any
) -> None:
    h = provider(factory, backend)
    now = h.clock()
    _rows_of_every_kind(h, now)
    report = purge_expired(database(h), now)  # Retention(): no attempt limit given
    assert report.logout_notifications == 3
    assert keys(h, LogoutNotification) == {
        "kept-delivered-recent",
        "kept-given-up-recent",
        "kept-new",
    }
    shorter = Retention(notifications=timedelta(days=1), delivery_attempts=MAX_ATTEMPTS)
    assert purge_expired(database(h), now, retention=shorter).logout_notifications == 2
    assert keys(h, LogoutNotification) == {"kept-new"}


# -- the protocol's own rows: reuse detection and code replay survive a purge -------------


def test_reuse_of_a_rotated_refresh_token_is_still_detected_after_a_purge(
    backend: str, factory: Any
) -> None:
    h = provider(factory, backend)
    first = body(exchange(h, get_code(h)))
    second = body(token(h, grant_type="refresh_token", refresh_token=first["refresh_token"]))
    assert "refresh_token" in second
    h.clock.advance(hours=1)  # both access tokens and the code expired; the refresh tokens not

    report = purge_expired(database(h), h.clock(), retention=RETENTION)
    assert report.oauth_tokens == 2 and report.oauth_codes == 0  # the code issued live tokens
    assert counts(h)["oauth_tokens"] == 2

    reuse = token(h, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert body(reuse)["error"] == "invalid_grant"
    revoked = token(h, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert body(revoked)["error"] == "invalid_grant"  # the family went with the replay


def test_a_replayed_code_still_revokes_its_tokens_after_a_purge(backend: str, factory: Any) -> None:
    h = provider(factory, backend)
    code = get_code(h)
    first = body(exchange(h, code))
    h.clock.advance(minutes=10)  # the code expired long ago; its tokens live

    purge_expired(database(h), h.clock(), retention=RETENTION)
    assert counts(h)["oauth_codes"] == 1

    assert body(exchange(h, code))["error"] == "invalid_grant"
    refresh = token(h, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert body(refresh)["error"] == "invalid_grant"  # revoked by the replay


def test_a_family_goes_once_all_of_it_expired(backend: str, factory: Any) -> None:
    h = provider(factory, backend, refresh_token_lifetime=3600)
    first = body(exchange(h, get_code(h)))
    second = body(token(h, grant_type="refresh_token", refresh_token=first["refresh_token"]))
    h.clock.advance(minutes=30)
    body(token(h, grant_type="refresh_token", refresh_token=second["refresh_token"]))
    h.clock.advance(minutes=40)  # the first two refresh tokens expired, the third lives
    report = purge_expired(database(h), h.clock(), retention=RETENTION)
    # The code goes with the tokens it issued: nothing is left for a replay to revoke.
    assert report.oauth_tokens == 5 and report.oauth_codes == 1
    assert counts(h)["oauth_tokens"] == 1 and counts(h)["oauth_codes"] == 0
    h.clock.advance(hours=1)
    assert purge_expired(database(h), h.clock(), retention=RETENTION).oauth_tokens == 1
    assert counts(h)["oauth_tokens"] == 0


# -- batches ---------------------------------------------------------------------------------


def test_batches_delete_everything_a_few_rows_at_a_time(backend: str, factory: Any) -> None:
    h = provider(factory, backend)
    now = h.clock()
    with database(h).session(write=True) as db, db.begin():
        user_id = db.scalars(select(User.id).where(User.username == "alice")).one()
        rows = [
            {
                "id_hash": f"{n:064d}",
                "user_id": user_id,
                "created_at": now - timedelta(days=2),
                "last_seen_at": now - timedelta(days=2),
                "expires_at": now - timedelta(days=1) + timedelta(seconds=n),
                "idle_timeout": 1800,
                "remember": False,
                "ip": "",
                "user_agent": "",
            }
            for n in range(253)
        ]
        rows += [
            rows[n] | {"id_hash": f"live{n}".ljust(64, "0"), "expires_at": now + timedelta(hours=1)}
            for n in range(3)
        ]
        db.execute(insert(LoginSession), rows)
    deletes: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM LOGIN_SESSIONS"):
            deletes.append((statement, parameters))

    engine = database(h).engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", seen)
    try:
        report = purge_expired(database(h), now, batch_size=100, retention=RETENTION)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", seen)

    assert report.login_sessions == 253
    assert len(deletes) == 3  # 100 + 100 + 53, each its own statement (and transaction)
    for _, parameters in deletes:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        assert sum(1 for v in values if isinstance(v, str) and len(v) == 64) <= 100
    with database(h).session() as db:
        left = set(db.scalars(select(LoginSession.id_hash)))
    assert left == {f"live{n}".ljust(64, "0") for n in range(3)}


# -- the long run ------------------------------------------------------------------------------


BOUNDS = {
    "login_sessions": 6,  # one abandoned every 4 h, 12 h lifetime
    "oauth_codes": 8,  # used codes while their refresh tokens (6 h) live, one unused
    "oauth_tokens": 12,  # two refresh tokens every 2 h, 6 h lifetime
    "pending_authorizations": 3,  # one abandoned every 2 h, 10 min lifetime
    "pushed_authorization_requests": 0,  # none pushed here (tests/oidc/test_par.py)
    "device_authorizations": 0,  # none made in the long run
    "logout_notifications": 10,  # one every 4 h: 24 h of retries, 12 h retention
    "throttle_counters": 4,  # one unknown name every 2 h, 15 min window
    "sign_in_steps": 0,  # none made in the long run
    "email_links": 0,  # no mail in the long run (tests/services/test_lifecycle.py)
    "mail_outbox": 0,
    "invitations": 0,
}


@pytest.mark.slow
def test_tables_stay_bounded_over_200_simulated_hours(backend: str, factory: Any) -> None:
    """Every 2 simulated hours: a sign-in, a code exchanged and its refresh token used, a
    code never exchanged, a sign-in never finished, a failed login; every other time a
    logout (an application down for the first 50 hours: those notifications are given
    up), else an abandoned session; then the purge.  Without it each table would grow
    with every step (the pending authorizations also shrink as new ones start)."""
    h = provider(factory, backend, refresh_token_lifetime=6 * 3600)
    first_party(h)
    with database(h).session(write=True) as db, db.begin():
        wiki = find_by_name(db, "Wiki")
        assert wiki is not None
        wiki.backchannel_logout_uri = "https://wiki.example/backchannel"
    retention = Retention(notifications=timedelta(hours=12), delivery_attempts=MAX_ATTEMPTS)
    down_until = h.clock() + timedelta(hours=50)

    def post(uri: str, **_: Any) -> object:
        return SimpleNamespace(status_code=503 if h.clock() < down_until else 200)

    wiki_request = {
        "client_id": ids(h)["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid",
    }
    steps = 100  # of 2 hours
    deleted = PurgeReport()
    peaks = dict.fromkeys(TABLES, 0)
    peaked_at = dict.fromkeys(TABLES, -1)
    for step in range(steps):
        browser = h.new_client()
        login = {"username": "alice", "password": PASSWORD}
        assert browser.post("/Account/login", data=login).status_code == 200
        code = query(authorize(h, browser, **wiki_request, state=f"s{step}"))["code"]
        issued = body(exchange(h, code))
        refreshed = token(h, grant_type="refresh_token", refresh_token=issued["refresh_token"])
        assert refreshed.status_code == 200
        authorize(h, browser, **wiki_request)  # a code that is never exchanged
        authorize(h, h.new_client(), **wiki_request)  # a sign-in never finished
        h.new_client().post("/Account/login", data={"username": f"ghost{step}", "password": "x"})
        if step % 2 == 0:
            assert browser.post("/Account/logout").status_code == 200  # else: abandoned
        deliver_due(database(h), h.clock(), post=post)
        report = purge_expired(database(h), h.clock(), batch_size=3, retention=retention)
        for table, n in report.as_dict().items():
            setattr(deleted, table, getattr(deleted, table) + n)
        if step >= 12:  # past the first day: the steady state
            for table, n in counts(h).items():
                if n > peaks[table]:
                    peaks[table], peaked_at[table] = n, step
        h.clock.advance(hours=2)

    over = {
        t: (peaks[t], BOUNDS[t], f"step {peaked_at[t]}") for t in TABLES if peaks[t] > BOUNDS[t]
    }
    assert not over, f"(peak, bound, when) of the tables over their bound: {over}; all: {peaks}"
    # The run wrote (and purged) far more than the bounds: growth would have shown.
    assert deleted.oauth_tokens >= 4 * steps - BOUNDS["oauth_tokens"]
    # (The unexchanged code of a session that signs out goes at the sign-out, not here.)
    assert deleted.oauth_codes >= 2 * steps - steps // 2 - BOUNDS["oauth_codes"]
    assert deleted.login_sessions >= steps // 2 - BOUNDS["login_sessions"]
    assert deleted.logout_notifications >= steps // 2 - BOUNDS["logout_notifications"]
    assert deleted.throttle_counters >= steps - BOUNDS["throttle_counters"]
    # A quiet day later, nothing is left: every row had an end, and the purge found it.
    h.clock.advance(hours=24)
    purge_expired(database(h), h.clock(), retention=retention)
    assert counts(h) == dict.fromkeys(TABLES, 0)


# -- the background run ---------------------------------------------------------------------


def _expired_session(h: Harness, now: datetime) -> None:
    with database(h).session(write=True) as db, db.begin():
        user_id = db.scalars(select(User.id).where(User.username == "alice")).one()
        db.add(
            LoginSession(
                id_hash="e" * 64,
                user_id=user_id,
                created_at=now - timedelta(days=2),
                last_seen_at=now - timedelta(days=2),
                expires_at=now - timedelta(days=1),
                idle_timeout=1800,
                remember=False,
            )
        )


def test_the_housekeeper_purges_in_the_background_and_logs_counts(
    factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h = provider(factory, "sqlite")
    _expired_session(h, h.clock())
    keeper = Housekeeper(database(h), h.clock, interval=0.05, first_delay=0)
    caplog.set_level(logging.INFO, logger="passport.housekeeping")
    try:
        keeper.ensure_started()
        keeper.ensure_started()  # one thread, however often asked
        deadline = time.monotonic() + 10
        while counts(h)["login_sessions"] and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        keeper.stop(timeout=10)  # the run that deleted the row has logged it
    assert counts(h)["login_sessions"] == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("login_sessions=1" in line for line in lines), lines


def test_a_failed_run_is_one_warning_without_details(
    factory: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = provider(factory, "sqlite")

    def broken(*args: Any, **kwargs: Any) -> PurgeReport:
        raise RuntimeError("password=hunter2 in some SQL")

    monkeypatch.setattr(housekeeping, "purge_expired", broken)
    caplog.set_level(logging.INFO, logger="passport.housekeeping")
    assert Housekeeper(database(h), h.clock).run_once() is None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "RuntimeError" in record.getMessage() and "hunter2" not in record.getMessage()


def test_served_processes_get_a_housekeeper_with_the_outbox_rule(factory: Any) -> None:
    h = provider(factory, "sqlite")
    keeper = h.app.services.housekeeper
    assert isinstance(keeper, Housekeeper)
    assert keeper is h.app.services.housekeeper
    assert keeper.retention.delivery_attempts == MAX_ATTEMPTS
    assert keeper.interval == 600


# -- passport db purge -------------------------------------------------------------------------


def _cli(h: Harness, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["db", "purge", *args, "--database-url", h.settings.database_url]
    )


@pytest.fixture
def cli_database(backend: str, factory: Any) -> Iterator[Harness]:
    h = provider(factory, backend)
    real_now = datetime.now(UTC)
    _rows_of_every_kind(h, real_now)  # the command purges at the real time
    yield h


def test_passport_db_purge_prints_the_counts(cli_database: Harness) -> None:
    result = _cli(cli_database)
    assert result.exit_code == 0, result.output
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines == {
        "login_sessions": "1",
        "oauth_codes": "2",
        "oauth_tokens": "4",
        "pending_authorizations": "1",
        "pushed_authorization_requests": "1",
        "device_authorizations": "1",
        "logout_notifications": "2",
        "throttle_counters": "1",
        "sign_in_steps": "1",
        "email_links": "1",
        "mail_outbox": "2",
        "invitations": "1",
        "total": "18",
    }
    again = _cli(cli_database, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == dict.fromkeys(TABLES, 0)


def test_passport_db_purge_json_and_retention(cli_database: Harness) -> None:
    result = _cli(cli_database, "--json", "--keep-notifications", "1", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "login_sessions": 1,
        "oauth_codes": 2,
        "oauth_tokens": 4,
        "pending_authorizations": 1,
        "pushed_authorization_requests": 1,
        "device_authorizations": 1,
        "logout_notifications": 4,  # the recent delivered and given-up ones too
        "throttle_counters": 1,
        "sign_in_steps": 1,
        "email_links": 1,
        "mail_outbox": 4,  # the recent sent and given-up ones too
        "invitations": 1,
    }


def test_passport_db_purge_without_a_database_is_one_line() -> None:
    result = CliRunner().invoke(
        cli,
        ["db", "purge", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
    )
    assert result.exit_code != 0
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.output
    assert "SELECT" not in result.output + result.stderr
