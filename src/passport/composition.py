"""The composition root: every long-lived part of a Passport process, built from Settings.

The web application (:mod:`passport.app`), the command line (:mod:`passport.cli`)
and the background worker all start from one :class:`Services`: they never build
a database, a session store or a key ring of their own, so a command run by an
operator and a request served to an administrator use the same parts with the
same configuration — the issuer included, which comes from the settings and
never from a request, so code without a request (the CLI) can sign back-channel
logout tokens too.

Parts are built on first use (``cached_property``): ``passport user list`` opens
a database and nothing else, and no part starts a thread until asked
(:meth:`Services.start_background`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from passport.config import Settings
from passport.oidc.keys import KeyRing
from passport.oidc.tokens import Tokens
from passport.services.accounts import Accounts
from passport.services.clients import ClientCache
from passport.services.kek import KeyConfigurationError
from passport.services.mail import MailSender
from passport.services.mail import Outbox
from passport.services.passwords import Passwords
from passport.services.sessions import DatabaseSessionStore
from passport.services.sessions import RedisSessionStore
from passport.services.sessions import SessionStore
from passport.services.throttle import DatabaseThrottleStore
from passport.services.throttle import RedisThrottleStore
from passport.services.throttle import Throttle
from passport.storage.db import Database
from passport.storage.models import User

if TYPE_CHECKING:
    import redis

    from passport.oidc.backchannel import Deliverer
    from passport.services.housekeeping import Housekeeper

Clock = Callable[[], datetime]
AuditSink = Callable[..., None]
AfterSink = Callable[[Callable[[], None]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Services:
    """One per process, shared by every thread; each part is built once, on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        redis_client: redis.Redis | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._redis = redis_client
        if passwords is not None:
            self.__dict__["passwords"] = passwords

    # -- storage ---------------------------------------------------------------------
    @cached_property
    def db(self) -> Database:
        return Database(self.settings)

    @cached_property
    def redis(self) -> redis.Redis | None:
        """Redis, when configured: sessions and throttle counters live there."""
        if self._redis is None and self.settings.redis_url:
            import redis as redis_module

            self._redis = redis_module.Redis.from_url(
                self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5
            )
        return self._redis

    @cached_property
    def sessions(self) -> SessionStore:
        if self.redis is not None:
            return RedisSessionStore(self.redis)
        return DatabaseSessionStore(self.db)

    @cached_property
    def throttle(self) -> Throttle:
        if self.redis is not None:
            return Throttle(RedisThrottleStore(self.redis), self.settings)
        return Throttle(DatabaseThrottleStore(self.db), self.settings)

    @cached_property
    def client_cache(self) -> ClientCache:
        """Client authentications kept per process, for as long as no application
        changes (:class:`passport.services.clients.ClientCache`)."""
        return ClientCache(self.db)

    @cached_property
    def passwords(self) -> Passwords:
        return Passwords(self.settings)

    # -- OpenID Connect ---------------------------------------------------------------
    @cached_property
    def keys(self) -> KeyRing:
        return KeyRing(self.db, self.settings)

    @property
    def issuer(self) -> str:
        """The configured issuer (``Settings.issuer``); never a request's ``Host``."""
        issuer = self.settings.issuer
        if not issuer:
            raise KeyConfigurationError(
                "OpenID Connect needs PASSPORT_PUBLIC_URL (the issuer) outside SQLite"
            )
        return issuer

    def tokens(self) -> Tokens:
        return Tokens(self.settings, self.keys, self.issuer)

    @cached_property
    def deliverer(self) -> Deliverer:
        from passport.oidc.backchannel import Deliverer

        return Deliverer(self.db, self.clock)

    @cached_property
    def housekeeper(self) -> Housekeeper:
        """The background purge of expired rows (:mod:`passport.services.housekeeping`),
        with the back-channel outbox's rule for "given up" (its attempt limit)."""
        from passport.oidc.backchannel import MAX_ATTEMPTS
        from passport.services.housekeeping import Housekeeper
        from passport.services.housekeeping import Retention

        return Housekeeper(self.db, self.clock, retention=Retention(delivery_attempts=MAX_ATTEMPTS))

    def notify_logout(
        self, db: Session, user: User, sid: str | None, *, application_id: int | None = None
    ) -> None:
        """Queue back-channel logout tokens for ``user``'s session ``sid`` (None: all of
        their sessions) in ``db``'s transaction (the durable outbox of
        :mod:`passport.oidc.backchannel`), for every application concerned or only
        ``application_id``; a background worker sends them.  Without signing keys or an
        issuer there is nothing to sign with."""
        if self.keys.configured and self.settings.issuer:
            from passport.oidc.backchannel import enqueue

            enqueue(db, self.tokens(), user, self.clock(), sid=sid, application_id=application_id)

    # -- operations ---------------------------------------------------------------------
    def accounts(
        self,
        db: Session,
        *,
        audit: AuditSink,
        after: AfterSink,
    ) -> Accounts:
        """The account rules over ``db``'s transaction; audit records and after-actions go
        to the caller's scope (a request's, or a CLI command's)."""
        return Accounts(
            self.settings,
            self.passwords,
            self.sessions,
            self.throttle,
            db,
            audit,
            self.db.session(),
            after,
            self.notify_logout,
            self.outbox,
        )

    # -- mail -------------------------------------------------------------------------
    @cached_property
    def outbox(self) -> Outbox:
        """The durable mail outbox (:mod:`passport.services.mail`), its messages worded
        by the templates of :mod:`passport.pages.mail`."""
        from passport.pages.mail import MailComposer

        return Outbox(self.settings, MailComposer(self.settings))

    @cached_property
    def mail_sender(self) -> MailSender:
        return MailSender(self.db, self.settings, self.clock)

    def start_background(self) -> None:
        """Start the workers that deliver back-channel logout notifications and mail, and
        keep the tables bounded (served processes only; the CLI runs nothing in the
        background)."""
        self.deliverer.ensure_started()
        self.mail_sender.ensure_started()
        self.housekeeper.ensure_started()

    def close(self) -> None:
        """Release connections (the CLI, at the end of a command)."""
        if "db" in self.__dict__:
            self.db.dispose()
