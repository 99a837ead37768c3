"""Throttling of credential guessing, shared by every process (database or Redis).

Failures are counted per key (``account:<sha256 of the canonical name>``,
``ip:<address>``) in a fixed window.  Once a key reaches its limit, each further
attempt must wait ``base_delay * 2**(failures - limit)`` seconds (capped at the
window) after the last failure: a growing delay, never a permanent lock that an
attacker could use to keep a person out (NIST SP 800-63B 5.2.2).  Increments are
atomic, so N parallel failures count N.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Protocol

import redis
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from passport.config import Settings
from passport.storage.db import Database
from passport.storage.models import ThrottleCounter


@dataclass(frozen=True)
class Count:
    failures: int
    window_start: datetime
    last_failure: datetime


class ThrottleStore(Protocol):
    def hit(self, key: str, now: datetime, window: int) -> Count: ...

    def peek(self, key: str) -> Count | None: ...

    def reset(self, key: str) -> None: ...


class DatabaseThrottleStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def hit(self, key: str, now: datetime, window: int) -> Count:
        cutoff = now - timedelta(seconds=window)
        for _ in range(3):
            with self.database.session(write=True) as db, db.begin():
                expired = ThrottleCounter.window_start <= cutoff
                # ``failures`` is assigned before ``window_start``: MariaDB evaluates
                # SET clauses left to right, so both read the old window_start.
                result = db.execute(
                    update(ThrottleCounter)
                    .where(ThrottleCounter.key == key)
                    .values(
                        failures=case((expired, 1), else_=ThrottleCounter.failures + 1),
                        window_start=case((expired, now), else_=ThrottleCounter.window_start),
                        last_failure=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0):
                    row = db.execute(
                        select(ThrottleCounter).where(ThrottleCounter.key == key)
                    ).scalar_one()
                    return Count(row.failures, row.window_start, row.last_failure)
            try:
                with self.database.session(write=True) as db, db.begin():
                    db.add(ThrottleCounter(key=key, failures=1, window_start=now, last_failure=now))
                return Count(1, now, now)
            except IntegrityError:
                continue  # another process inserted it first: update instead
        raise RuntimeError("throttle counter could not be updated")

    def peek(self, key: str) -> Count | None:
        with self.database.session() as db:
            row = db.get(ThrottleCounter, key)
            return None if row is None else Count(row.failures, row.window_start, row.last_failure)

    def reset(self, key: str) -> None:
        with self.database.session(write=True) as db, db.begin():
            db.execute(delete(ThrottleCounter).where(ThrottleCounter.key == key))


_HIT_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local start = tonumber(redis.call('HGET', KEYS[1], 'w') or '-1')
if start < 0 or now - start >= window then
  redis.call('HSET', KEYS[1], 'f', 0, 'w', now)
  start = now
end
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
redis.call('HSET', KEYS[1], 'l', now)
redis.call('EXPIRE', KEYS[1], window * 2)
return {failures, tostring(start)}
"""


class RedisThrottleStore:
    def __init__(self, client: redis.Redis, prefix: str = "passport:throttle:") -> None:
        self.client = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT_SCRIPT)

    def hit(self, key: str, now: datetime, window: int) -> Count:
        failures, start = self._hit(keys=[self.prefix + key], args=[now.timestamp(), window])
        return Count(int(failures), datetime.fromtimestamp(float(start), UTC), now)

    def peek(self, key: str) -> Count | None:
        raw = self.client.hgetall(self.prefix + key)
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]
        return Count(
            int(data["f"]),
            datetime.fromtimestamp(float(data["w"]), UTC),
            datetime.fromtimestamp(float(data["l"]), UTC),
        )

    def reset(self, key: str) -> None:
        self.client.delete(self.prefix + key)


def account_key(canonical_name: str) -> str:
    return "account:" + hashlib.sha256(canonical_name.encode("utf-8", "surrogatepass")).hexdigest()


def ip_key(ip: str) -> str:
    return "ip:" + ip[:64]


class Throttle:
    """Decides whether a credential attempt may proceed, and records failures."""

    def __init__(self, store: ThrottleStore, settings: Settings) -> None:
        self.store = store
        self.window = settings.throttle_window
        self.base_delay = settings.throttle_base_delay
        self.limits = {"account": settings.throttle_account_limit, "ip": settings.throttle_ip_limit}

    def _limit(self, key: str) -> int:
        return self.limits[key.split(":", 1)[0]]

    def _wait(self, key: str, count: Count, now: datetime) -> int:
        if now - count.window_start >= timedelta(seconds=self.window):
            return 0
        over = count.failures - self._limit(key)
        if over < 0:
            return 0
        delay = min(self.window, self.base_delay * 2 ** min(over, 20))
        remaining = (count.last_failure + timedelta(seconds=delay) - now).total_seconds()
        return max(0, math.ceil(remaining))

    def retry_after(self, keys: list[str], now: datetime) -> int:
        """Seconds to wait before another attempt may proceed (0 = go ahead)."""
        return self.check(keys, now)[0]

    def check(self, keys: list[str], now: datetime) -> tuple[int, set[str]]:
        """Seconds to wait (0 = go ahead), and which keys have a counter at all."""
        waits = [0]
        counted = set()
        for key in keys:
            count = self.store.peek(key)
            if count is not None:
                counted.add(key)
                waits.append(self._wait(key, count, now))
        return max(waits), counted

    def failure(self, keys: list[str], now: datetime) -> bool:
        """Count a failure on every key; True when one of them is now over its limit."""
        over = False
        for key in keys:
            count = self.store.hit(key, now, self.window)
            over = over or count.failures >= self._limit(key)
        return over

    def count_failure(self, keys: list[str], now: datetime) -> None:
        self.failure(keys, now)

    def success(self, key: str) -> None:
        self.store.reset(key)
