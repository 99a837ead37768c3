"""Server-side login sessions, in the database or in Redis.

The cookie carries 256 random bits; the store only ever sees their SHA-256,
so a leaked table or Redis dump cannot be replayed as cookies.  Both stores
enforce the same rules with the caller's clock (UTC):

* absolute lifetime (``expires_at``) and idle timeout (``last_seen_at``);
* ``last_seen_at`` is refreshed at most once per :data:`TOUCH_INTERVAL`
  seconds, which keeps the hot "who is this?" path to one read;
* a user lists and ends their own sessions; a password change ends all others.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

import redis
from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.services.identity import Identity
from passport.storage.db import Database
from passport.storage.models import LoginSession
from passport.storage.models import User
from passport.storage.models import new_sid

TOUCH_INTERVAL = 60


def new_token() -> str:
    """256 bits from the OS CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def legacy_sid(id_hash: str) -> str:
    """The ``sid`` of a Redis-held session from before sessions had one: the same at every
    read, and one-way (a SHA-256 of the hash, with a label), so that it reveals neither
    the cookie nor the hash that the account page shows a prefix of."""
    raw = hashlib.sha256(b"passport-sid:" + id_hash.encode()).digest()[:16]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class LoginSessionInfo:
    id_hash: str
    user_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    idle_timeout: int
    remember: bool
    ip: str
    user_agent: str
    # What relying parties know the session by (OpenID Connect ``sid``): random, never
    # derived from the cookie (:func:`passport.storage.models.new_sid`).
    sid: str
    # How the user proved who they are (RFC 8176 values, :mod:`passport.services.factors`).
    amr: str = "pwd"

    def alive(self, now: datetime) -> bool:
        return now < self.expires_at and now < self.last_seen_at + timedelta(
            seconds=self.idle_timeout
        )

    def needs_touch(self, now: datetime) -> bool:
        interval = min(TOUCH_INTERVAL, max(1, self.idle_timeout // 10))
        return now - self.last_seen_at >= timedelta(seconds=interval)

    @property
    def cookie_max_age(self) -> int | None:
        """Persistent cookie only for "remember me"; otherwise a browser-session cookie."""
        if not self.remember:
            return None
        return max(0, int((self.expires_at - self.last_seen_at).total_seconds()))


def new_session_info(
    settings: Settings,
    user_id: int,
    now: datetime,
    *,
    remember: bool,
    ip: str,
    user_agent: str,
    sid: str | None = None,
    amr: str = "pwd",
) -> tuple[str, LoginSessionInfo]:
    """A new session and its cookie value.  ``sid``: the OpenID Connect session id to
    keep, when this sign-in re-authenticates the same user in the same browser (the
    session at the OP goes on: relying parties that know its ``sid`` are still told when
    it ends); otherwise a new one."""
    token = new_token()
    lifetime = settings.remember_me_lifetime if remember else settings.session_absolute_lifetime
    idle = settings.remember_me_lifetime if remember else settings.session_idle_timeout
    info = LoginSessionInfo(
        id_hash=hash_token(token),
        user_id=user_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        idle_timeout=idle,
        remember=remember,
        ip=ip[:45],
        user_agent=user_agent[:255],
        sid=sid or new_sid(),
        amr=amr,
    )
    return token, info


class SessionStore(Protocol):
    """Where sessions live.  ``db`` is the request's transaction (DB store only)."""

    def add(self, info: LoginSessionInfo, db: Session, identity: Identity | None = None) -> None:
        """Store a new session (``identity``: who it is, for stores that keep it)."""

    def refresh_identity(self, identity: Identity) -> None:
        """A user's name or email changed: stores that copy them update their copies."""

    def get(self, token: str, now: datetime) -> LoginSessionInfo | None: ...

    def lookup(self, token: str, now: datetime) -> tuple[LoginSessionInfo, Identity | None] | None:
        """The live session, and its enabled user when the store can tell in the same trip."""

    def touch(self, info: LoginSessionInfo, now: datetime) -> None: ...

    def remove(self, id_hash: str, db: Session) -> None: ...

    def remove_for_user(self, user_id: int, db: Session, *, keep: str | None = None) -> int: ...

    def list_for_user(self, user_id: int, now: datetime) -> list[LoginSessionInfo]: ...

    def count_active(self, now: datetime) -> int: ...


def _from_row(row: LoginSession) -> LoginSessionInfo:
    return LoginSessionInfo(
        id_hash=row.id_hash,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        idle_timeout=row.idle_timeout,
        remember=row.remember,
        ip=row.ip,
        user_agent=row.user_agent,
        sid=row.sid,
        amr=row.amr,
    )


class DatabaseSessionStore:
    """Sessions in the ``login_sessions`` table: the default, no extra service."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, info: LoginSessionInfo, db: Session, identity: Identity | None = None) -> None:
        db.add(LoginSession(**asdict(info)))
        db.flush()

    def refresh_identity(self, identity: Identity) -> None:
        """Nothing to do: the identity is joined from ``users`` at every lookup."""

    _COLUMNS = tuple(LoginSession.__table__.columns)
    _BY_HASH = select(*_COLUMNS).where(LoginSession.__table__.c.id_hash == bindparam("id_hash"))
    _WITH_USER = (
        select(*_COLUMNS, User.username, User.email, User.display_name, User.email_verified)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.id_hash == bindparam("id_hash"), User.disabled.is_(False))
    )

    def get(self, token: str, now: datetime) -> LoginSessionInfo | None:
        with self.database.reader.connect() as conn:
            row = conn.execute(self._BY_HASH, {"id_hash": hash_token(token)}).first()
        if row is None:
            return None
        info = LoginSessionInfo(**row._asdict())
        return info if info.alive(now) else None

    def lookup(self, token: str, now: datetime) -> tuple[LoginSessionInfo, Identity | None] | None:
        # The hot path of every "who is this?": one Core SELECT joining session and user.
        with self.database.hot_read() as conn:
            row = conn.execute(self._WITH_USER, {"id_hash": hash_token(token)}).first()
        if row is None:
            return None
        values = row._asdict()
        identity = Identity(
            values["user_id"],
            values.pop("username"),
            values.pop("email"),
            values.pop("display_name"),
            bool(values.pop("email_verified")),
        )
        info = LoginSessionInfo(**values)
        return (info, identity) if info.alive(now) else None

    def touch(self, info: LoginSessionInfo, now: datetime) -> None:
        with self.database.session(write=True) as db, db.begin():
            db.execute(
                update(LoginSession)
                .where(LoginSession.id_hash == info.id_hash)
                .values(last_seen_at=now)
            )

    def remove(self, id_hash: str, db: Session) -> None:
        db.execute(delete(LoginSession).where(LoginSession.id_hash == id_hash))

    def remove_for_user(self, user_id: int, db: Session, *, keep: str | None = None) -> int:
        stmt = delete(LoginSession).where(LoginSession.user_id == user_id)
        if keep is not None:
            stmt = stmt.where(LoginSession.id_hash != keep)
        return int(getattr(db.execute(stmt), "rowcount", 0) or 0)

    def list_for_user(self, user_id: int, now: datetime) -> list[LoginSessionInfo]:
        with self.database.session() as db:
            rows = db.scalars(
                select(LoginSession)
                .where(LoginSession.user_id == user_id)
                .order_by(LoginSession.created_at)
            ).all()
            infos = [_from_row(r) for r in rows]
        return [i for i in infos if i.alive(now)]

    def count_active(self, now: datetime) -> int:
        with self.database.session() as db:
            return int(
                db.scalar(
                    select(func.count())
                    .select_from(LoginSession)
                    .where(LoginSession.expires_at > now)
                )
                or 0
            )

    def purge_expired(self, now: datetime) -> int:
        """Delete sessions past their absolute lifetime (housekeeping)."""
        with self.database.session(write=True) as db, db.begin():
            result = db.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
            return int(getattr(result, "rowcount", 0) or 0)


class RedisSessionStore:
    """Sessions in Redis, shared by every Passport process that uses the same Redis.

    ``passport:session:<hash>`` holds the session as JSON with a TTL at its
    deadline; ``passport:user-sessions:<id>`` is the set of a user's hashes.
    """

    def __init__(self, client: redis.Redis, prefix: str = "passport:") -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, id_hash: str) -> str:
        return f"{self.prefix}session:{id_hash}"

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}user-sessions:{user_id}"

    @property
    def _deadlines(self) -> str:
        """Sorted set of every session's deadline, for counting live sessions cheaply."""
        return f"{self.prefix}session-deadlines"

    @staticmethod
    def _deadline(info: LoginSessionInfo) -> float:
        idle_end = info.last_seen_at + timedelta(seconds=info.idle_timeout)
        return min(info.expires_at, idle_end).timestamp()

    @staticmethod
    def _ttl(info: LoginSessionInfo, now: datetime) -> int:
        deadline = min(info.expires_at, info.last_seen_at + timedelta(seconds=info.idle_timeout))
        return max(1, int((deadline - now).total_seconds()) + 1)

    @staticmethod
    def _dump(info: LoginSessionInfo, identity: Identity | None = None) -> str:
        data: dict[str, Any] = asdict(info)
        for name in ("created_at", "last_seen_at", "expires_at"):
            data[name] = data[name].isoformat()
        if identity is not None:
            data["identity"] = asdict(identity)
        return json.dumps(data)

    @staticmethod
    def _load_both(raw: bytes | str) -> tuple[LoginSessionInfo, Identity | None]:
        data = json.loads(raw)
        for name in ("created_at", "last_seen_at", "expires_at"):
            data[name] = datetime.fromisoformat(data[name]).astimezone(UTC)
        identity = data.pop("identity", None)
        if "sid" not in data:  # kept before sessions had one (migration 0010): stable, opaque
            data["sid"] = legacy_sid(data["id_hash"])
        return LoginSessionInfo(**data), Identity(**identity) if identity else None

    @classmethod
    def _load(cls, raw: bytes | str) -> LoginSessionInfo:
        return cls._load_both(raw)[0]

    def add(self, info: LoginSessionInfo, db: Session, identity: Identity | None = None) -> None:
        """Keeps a copy of ``identity`` with the session: a status check is then one GET.

        Disabling or deleting a user removes their sessions, and a change of name or
        email rewrites the copies (:meth:`refresh_identity`), so the copy never lies.
        """
        now = info.last_seen_at
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(info.id_hash), self._dump(info, identity), ex=self._ttl(info, now))
        pipe.sadd(self._user_key(info.user_id), info.id_hash)
        pipe.zadd(self._deadlines, {info.id_hash: self._deadline(info)})
        pipe.execute()

    def get(self, token: str, now: datetime) -> LoginSessionInfo | None:
        raw = self.client.get(self._key(hash_token(token)))
        if raw is None:
            return None
        info = self._load(raw)
        return info if info.alive(now) else None

    def lookup(self, token: str, now: datetime) -> tuple[LoginSessionInfo, Identity | None] | None:
        raw = self.client.get(self._key(hash_token(token)))
        if raw is None:
            return None
        info, identity = self._load_both(raw)
        return (info, identity) if info.alive(now) else None

    def refresh_identity(self, identity: Identity) -> None:
        for id_hash in self.client.smembers(self._user_key(identity.id)):
            key = self._key(id_hash.decode() if isinstance(id_hash, bytes) else id_hash)
            raw = self.client.get(key)
            if raw is not None:
                info, _ = self._load_both(raw)
                self.client.set(key, self._dump(info, identity), keepttl=True, xx=True)

    def touch(self, info: LoginSessionInfo, now: datetime) -> None:
        touched = replace(info, last_seen_at=now)
        key = self._key(info.id_hash)
        raw = self.client.get(key)
        identity = self._load_both(raw)[1] if raw is not None else None
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, self._dump(touched, identity), ex=self._ttl(touched, now), xx=True)
        pipe.zadd(self._deadlines, {info.id_hash: self._deadline(touched)}, xx=True)
        pipe.execute()

    def remove(self, id_hash: str, db: Session) -> None:
        raw = self.client.getdel(self._key(id_hash))
        self.client.zrem(self._deadlines, id_hash)
        if raw is not None:
            self.client.srem(self._user_key(self._load(raw).user_id), id_hash)

    def remove_for_user(self, user_id: int, db: Session, *, keep: str | None = None) -> int:
        hashes = [h.decode() for h in self.client.smembers(self._user_key(user_id))]  # type: ignore[union-attr]
        doomed = [h for h in hashes if h != keep]
        if not doomed:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*[self._key(h) for h in doomed])
        pipe.srem(self._user_key(user_id), *doomed)
        pipe.zrem(self._deadlines, *doomed)
        removed, _, _ = pipe.execute()
        return int(removed)

    def list_for_user(self, user_id: int, now: datetime) -> list[LoginSessionInfo]:
        hashes = [h.decode() for h in self.client.smembers(self._user_key(user_id))]  # type: ignore[union-attr]
        if not hashes:
            return []
        raws = self.client.mget([self._key(h) for h in hashes])
        infos = []
        stale = []
        for id_hash, raw in zip(hashes, raws, strict=True):
            if raw is None:
                stale.append(id_hash)
                continue
            info = self._load(raw)
            if info.alive(now):
                infos.append(info)
        if stale:
            self.client.srem(self._user_key(user_id), *stale)
        return sorted(infos, key=lambda i: i.created_at)

    def count_active(self, now: datetime) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.zremrangebyscore(self._deadlines, "-inf", now.timestamp())
        pipe.zcard(self._deadlines)
        return int(pipe.execute()[1])
