"""Is Passport ready to serve: the database reachable, its schema current, Redis (when
configured) answering.  One check for the readiness probe (``/readyz``,
:meth:`passport.app.PassportApp.readiness`) and the console's health screen
(``/admin/health``), so that they never disagree."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.exceptions
import sqlalchemy.exc
from sqlalchemy import text

from passport.storage import migrate
from passport.storage.db import Database

# A part that does not answer (as opposed to a bug): the probe answers 503, the health
# screen says "unreachable".
UNREACHABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

NOT_CONFIGURED = "not configured"
REACHABLE = "reachable"
UNREACHABLE_PART = "unreachable"


@dataclass(frozen=True)
class Readiness:
    """What :func:`readiness` found.  ``failure`` is the error of the first part that did
    not answer (for the log; never shown: it may name a host)."""

    database: str  # REACHABLE or UNREACHABLE_PART
    schema_current: bool | None  # None when the database did not answer
    redis: str  # NOT_CONFIGURED, REACHABLE or UNREACHABLE_PART
    failure: BaseException | None

    @property
    def ready(self) -> bool:
        return self.failure is None and bool(self.schema_current)


def readiness(database: Database, redis_client: redis.Redis | None) -> Readiness:
    """Ask each part once: ``SELECT 1`` and the schema's revision, then Redis's ``PING``
    (asked even when the database is down, for the health screen)."""
    failure: BaseException | None = None
    try:
        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current: bool | None = migrate.is_current(database.engine)
        reached = REACHABLE
    except UNREACHABLE as exc:
        failure, current, reached = exc, None, UNREACHABLE_PART
    cache = NOT_CONFIGURED
    if redis_client is not None:
        try:
            redis_client.ping()
            cache = REACHABLE
        except UNREACHABLE as exc:
            failure, cache = failure or exc, UNREACHABLE_PART
    return Readiness(reached, current, cache, failure)
