"""Throttling of credential guessing, shared by every process (database or Redis).

Attempts are counted per key (``account:user:<id>`` for a known account,
``account:name:<sha256>`` for a name no account has, ``ip:<address>``) in a fixed
window.  An address is keyed as :func:`address_of` says: an IPv6 client by its /64,
which one subscriber is usually given whole (RFC 6177 §3, RFC 7421 §1), so that
moving within it does not bring a fresh counter.  Once a key reaches its limit, each
further attempt must wait ``base_delay * 2**(failures - limit)`` seconds (capped at
the window) after the last failure: a growing delay, never a permanent lock that an
attacker could use to keep a person out (NIST SP 800-63B 5.2.2).

An attempt is *reserved* before its password is checked: one atomic step decides
whether it may proceed and, if so, counts it as a failure (a row lock in the
database, a Lua script in Redis).  So N parallel attempts count N and at most the
limit of them ever reach the password check; a success then resets the account's
count and takes its own attempt back off the address's count.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
from sqlalchemy.exc import OperationalError

from passport.config import Settings
from passport.storage.db import Database
from passport.storage.models import ThrottleCounter


@dataclass(frozen=True)
class Count:
    failures: int
    window_start: datetime
    last_failure: datetime


@dataclass(frozen=True)
class Policy:
    """The rule every store applies when it reserves an attempt."""

    window: int
    base_delay: int

    def wait(self, count: Count, limit: int, now: datetime) -> int:
        """Seconds before the next attempt on a key with ``count`` may proceed (0 = now)."""
        if now - count.window_start >= timedelta(seconds=self.window):
            return 0
        over = count.failures - limit
        if over < 0:
            return 0
        delay = min(self.window, self.base_delay * 2 ** min(over, 20))
        remaining = (count.last_failure + timedelta(seconds=delay) - now).total_seconds()
        return max(0, math.ceil(remaining))


class ThrottleStore(Protocol):
    def hit(self, key: str, now: datetime, window: int) -> Count: ...

    def reserve(
        self, keys: list[str], limits: list[int], now: datetime, policy: Policy
    ) -> tuple[int, list[int]]:
        """Atomically: the wait when some key must wait (nothing counted), else
        ``(0, failures)`` with one more failure counted on every key."""
        ...

    def release(self, key: str) -> None:
        """Take one reserved attempt back off ``key`` (it was not a failure)."""
        ...

    def peek(self, key: str) -> Count | None: ...

    def reset(self, key: str) -> None: ...


def _is_deadlock(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "deadlock" in text or "lock wait timeout" in text


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

    def reserve(
        self, keys: list[str], limits: list[int], now: datetime, policy: Policy
    ) -> tuple[int, list[int]]:
        # One transaction holds the rows of every key (locked in key order, so two
        # reservations cannot deadlock; SQLite's BEGIN IMMEDIATE serialises them all)
        # from the decision to the increment.
        cutoff = now - timedelta(seconds=policy.window)
        limit_of = dict(zip(keys, limits, strict=True))
        for _ in range(5):
            try:
                with self.database.session(write=True) as db, db.begin():
                    rows = {
                        row.key: row
                        for row in db.scalars(
                            select(ThrottleCounter)
                            .where(ThrottleCounter.key.in_(sorted(keys)))
                            .order_by(ThrottleCounter.key)
                            .with_for_update()
                        )
                    }
                    wait = max(
                        [
                            policy.wait(
                                Count(row.failures, row.window_start, row.last_failure),
                                limit_of[key],
                                now,
                            )
                            for key, row in rows.items()
                        ],
                        default=0,
                    )
                    if wait:
                        return wait, []
                    failures = []
                    for key in keys:
                        row = rows.get(key)
                        if row is None:
                            row = ThrottleCounter(
                                key=key, failures=0, window_start=now, last_failure=now
                            )
                            db.add(row)
                        elif row.window_start <= cutoff:
                            row.failures, row.window_start = 0, now
                        row.failures += 1
                        row.last_failure = now
                        failures.append(row.failures)
                return 0, failures
            except IntegrityError:
                continue  # another attempt created a row first: lock it this time
            except OperationalError as exc:
                if not _is_deadlock(exc):
                    raise
        raise RuntimeError("throttle counters could not be reserved")

    def release(self, key: str) -> None:
        with self.database.session(write=True) as db, db.begin():
            db.execute(
                update(ThrottleCounter)
                .where(ThrottleCounter.key == key, ThrottleCounter.failures > 0)
                .values(failures=ThrottleCounter.failures - 1)
                .execution_options(synchronize_session=False)
            )

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


# KEYS: the counters; ARGV: now, window, base delay, then one limit per key.  The same
# rule as Policy.wait, decided and counted in one atomic step.
_RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'f', 'w', 'l')
  if v[1] and v[2] and v[3] then
    local over = tonumber(v[1]) - tonumber(ARGV[3 + i])
    if now - tonumber(v[2]) < window and over >= 0 then
      local delay = math.min(window, base * 2 ^ math.min(over, 20))
      local remaining = tonumber(v[3]) + delay - now
      if remaining > wait then wait = remaining end
    end
  end
end
if wait > 0 then
  return {tostring(wait)}
end
local out = {'0'}
for _, key in ipairs(KEYS) do
  local start = tonumber(redis.call('HGET', key, 'w') or '-1')
  if start < 0 or now - start >= window then
    redis.call('HSET', key, 'f', 0, 'w', ARGV[1])
  end
  table.insert(out, redis.call('HINCRBY', key, 'f', 1))
  redis.call('HSET', key, 'l', ARGV[1])
  redis.call('EXPIRE', key, window * 2)
end
return out
"""

_RELEASE_SCRIPT = """
if tonumber(redis.call('HGET', KEYS[1], 'f') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'f', -1)
end
return 0
"""


class RedisThrottleStore:
    def __init__(self, client: redis.Redis, prefix: str = "passport:throttle:") -> None:
        self.client = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT_SCRIPT)
        self._reserve = client.register_script(_RESERVE_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def hit(self, key: str, now: datetime, window: int) -> Count:
        failures, start = self._hit(keys=[self.prefix + key], args=[now.timestamp(), window])
        return Count(int(failures), datetime.fromtimestamp(float(start), UTC), now)

    def reserve(
        self, keys: list[str], limits: list[int], now: datetime, policy: Policy
    ) -> tuple[int, list[int]]:
        answer = self._reserve(
            keys=[self.prefix + key for key in keys],
            args=[repr(now.timestamp()), policy.window, policy.base_delay, *limits],
        )
        wait = float(answer[0].decode() if isinstance(answer[0], bytes) else answer[0])
        if wait > 0:
            return max(1, math.ceil(wait)), []
        return 0, [int(failures) for failures in answer[1:]]

    def release(self, key: str) -> None:
        self._release(keys=[self.prefix + key])

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
    """The counter of a name that no account has (``canonical_name``: its look-alike key)."""
    digest = hashlib.sha256(canonical_name.encode("utf-8", "surrogatepass")).hexdigest()
    return "account:name:" + digest


def user_account_key(user_id: int) -> str:
    """The counter of an account, however its user was named (username, email, look-alike)."""
    return f"account:user:{user_id}"


def address_of(ip: str) -> str:
    """The client address as every address counter keys it.

    An IPv6 address counts as its /64 (``2001:db8:1:2::/64``): a subscriber is usually
    given a whole /64 (RFC 6177 §3, RFC 7421 §1) and may pick any address in it, so a
    counter per address would give one client 2**64 fresh counters (OWASP ASVS 5
    §6.3.1 anti-automation).  An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, RFC 4291
    §2.5.5.2, what a dual-stack socket reports) counts as its IPv4 address.  Anything
    that is not an address (a proxy's odd value) is kept as it is, cut to 64 characters.
    """
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def ip_key(ip: str) -> str:
    """The counter of failed sign-ins and password checks from the client address."""
    return "ip:" + address_of(ip)


def device_code_keys(ip: str, user_id: int) -> tuple[str, str]:
    """The counters of wrong user codes entered on ``/device`` (RFC 8628 §5.1: guessing
    a user code must be rate-limited): per signed-in account, and per client address."""
    return f"device:user:{user_id}", "device:ip:" + address_of(ip)


def client_request_key(ip: str) -> str:
    """The counter of requests from the client address that create a row for a client
    anyone may name — a public client's pushed authorization requests (RFC 9126 §2) and
    device authorizations (RFC 8628 §3.1): every request counts."""
    return "request:ip:" + address_of(ip)


def challenge_key(ip: str) -> str:
    """The counter of WebAuthn challenges asked for from the client address: each is a
    row any anonymous page can make (``/webauthn/options``), so every request counts,
    under the same limit as other anonymous rows (``throttle_client_request_limit``)."""
    return "challenge:ip:" + address_of(ip)


def registration_key(ip: str) -> str:
    """The counter of self-registrations from the client address: every attempt counts
    (OWASP ASVS 5 §6.3.1 / §2.4.1 anti-automation: accounts are not free to mass-produce,
    and each account brings its own per-account guessing budget)."""
    return "register:ip:" + address_of(ip)


def mail_address_key(address_key: str) -> str:
    """The counter of mail asked for to one address (a password reset, a verification
    link): every request counts, whether or not an account has the address, so the
    counter says nothing about accounts; the address is kept as its SHA-256."""
    return "mail:" + hashlib.sha256(address_key.encode()).hexdigest()


def mail_ip_key(ip: str) -> str:
    """The counter of mail asked for from one client address (whatever the addresses)."""
    return "mailip:" + address_of(ip)


@dataclass(frozen=True)
class Attempt:
    """The outcome of :meth:`Throttle.reserve`."""

    wait: int  # seconds to wait; 0 = reserved and counted, go ahead
    over: bool  # this attempt reached a key's limit (the lockout starts with it)


class Throttle:
    """Decides whether a credential attempt may proceed, and records failures."""

    def __init__(self, store: ThrottleStore, settings: Settings) -> None:
        self.store = store
        self.window = settings.throttle_window
        self.base_delay = settings.throttle_base_delay
        self.policy = Policy(settings.throttle_window, settings.throttle_base_delay)
        self.limits = {
            "account": settings.throttle_account_limit,
            "ip": settings.throttle_ip_limit,
            "device": settings.throttle_device_code_limit,
            "request": settings.throttle_client_request_limit,
            "challenge": settings.throttle_client_request_limit,
            "register": settings.throttle_registration_limit,
            "mail": settings.throttle_mail_limit,
            "mailip": settings.throttle_mail_ip_limit,
        }

    def _limit(self, key: str) -> int:
        return self.limits[key.split(":", 1)[0]]

    def _wait(self, key: str, count: Count, now: datetime) -> int:
        return self.policy.wait(count, self._limit(key), now)

    def reserve(self, keys: list[str], now: datetime) -> Attempt:
        """Count an attempt on every key before its password is checked, unless one
        of them must wait: then nothing is counted and the wait is returned."""
        if not keys:
            return Attempt(0, False)
        limits = [self._limit(key) for key in keys]
        wait, failures = self.store.reserve(keys, limits, now, self.policy)
        if wait:
            return Attempt(wait, False)
        return Attempt(0, any(f >= limit for f, limit in zip(failures, limits, strict=True)))

    def release(self, keys: list[str]) -> None:
        """Take a reserved attempt back (its password was never checked)."""
        for key in keys:
            self.store.release(key)

    def succeeded(self, account: str, ip: str) -> None:
        """A correct password: the account's count starts again, and the address's
        reserved attempt is taken back (it was not a failure)."""
        self.store.reset(account)
        self.store.release(ip)

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
