"""Giving a user second factors in a test, through :class:`passport.services.factors.Factors`
as the account page would (the real ceremonies: a TOTP secret confirmed by its first code,
a passkey registered by the software authenticator and verified by the ``webauthn``
library, recovery codes issued), without the page's recent-sign-in check (no session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyotp

from passport.services import directory
from passport.services.audit import write as write_audit
from passport.services.factors import new_step_cookie
from webauthn_support import SoftAuthenticator

from support import Harness

IP = "192.0.2.1"


@dataclass
class Enrolled:
    """What the user holds after :func:`give_factors`."""

    totp_secret: str
    authenticator: SoftAuthenticator
    recovery_codes: list[str]


def _in_transaction(h: Harness, username: str, work: Any) -> Any:
    """``work(factors, user)`` in one write transaction, as a request runs it: the user
    read first, apart, so that the throttle's counters (their own transaction, before
    this one writes, and after it commits) do not wait on SQLite's write lock."""
    with h.app.services.db.session() as reader:
        user = directory.get_user(reader, username)
        reader.expunge(user)
    after: list[Any] = []
    with h.app.services.db.session(write=True) as db:  # begins at its first statement
        accounts = h.app.services.accounts(
            db,
            audit=lambda record, durable=False: write_audit(db, record),
            after=after.append,
        )
        result = work(accounts.factors(), user)
        db.commit()
    for action in after:  # as the request scope runs them: after the commit
        action()
    return result


def enrol_totp(h: Harness, username: str) -> str:
    """An authenticator app for ``username``; returns its secret (base32)."""
    cookie = new_step_cookie()
    now = h.clock()

    def start(factors: Any, user: Any) -> str:
        return str(factors.totp_start(cookie, user, None, now, via="account").secret)

    secret = _in_transaction(h, username, start)

    def confirm(factors: Any, user: Any) -> None:
        code = pyotp.TOTP(secret).at(now)
        factors.totp_confirm(
            cookie, user, code, via="account", session=None, ip=IP, user_agent="test", now=now
        )

    _in_transaction(h, username, confirm)
    return secret


def enrol_passkey(
    h: Harness, username: str, name: str = "Laptop", *, synced: bool = False
) -> SoftAuthenticator:
    """A passkey of ``username`` held by a software authenticator."""
    cookie = new_step_cookie()
    now = h.clock()
    origin = h.settings.relying_party_origins[0]
    authenticator = SoftAuthenticator(origin, backup_eligible=synced, counts=not synced)

    def options(factors: Any, user: Any) -> str:
        return str(factors.registration_options(cookie, user, now, via="account", session=None))

    created = authenticator.create(_in_transaction(h, username, options))

    def add(factors: Any, user: Any) -> None:
        factors.add_passkey(
            cookie,
            user,
            created,
            name,
            via="account",
            session=None,
            ip=IP,
            user_agent="test",
            now=now,
        )

    _in_transaction(h, username, add)
    return authenticator


def give_recovery_codes(h: Harness, username: str) -> list[str]:
    def issue(factors: Any, user: Any) -> list[str]:
        return list(
            factors.new_recovery_codes(user, ip=IP, user_agent="test", now=h.clock(), session=None)
        )

    codes: list[str] = _in_transaction(h, username, issue)
    return codes


def give_factors(h: Harness, username: str) -> Enrolled:
    """An authenticator app, a synced passkey and recovery codes."""
    secret = enrol_totp(h, username)
    authenticator = enrol_passkey(h, username, "Phone", synced=True)
    return Enrolled(secret, authenticator, give_recovery_codes(h, username))
