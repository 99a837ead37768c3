"""Token-signing keys (RFC 7517 JWKs), kept in the database so every process signs alike.

* A key of every algorithm in :data:`passport.config.SIGNING_ALGS` is kept and
  published: ES256 (P-256) and RS256 (RSA 2048 bits).  RS256 is not optional:
  OpenID Connect Core §15.1 says an OP MUST support it, and Discovery §3 that
  ``id_token_signing_alg_values_supported`` MUST include it, so an application that
  registered ``id_token_signed_response_alg: RS256`` (Dynamic Client Registration
  §2) always has a key.  Each key is published with its ``alg`` and ``use: sig``
  (RFC 7517 §4.2, §4.4) under its own ``kid`` (the RFC 7638 thumbprint), and signs
  only with its own algorithm (RFC 8725 §3.1: no algorithm confusion).
* Generated at first use; a missing algorithm's key is made then too (an existing
  deployment gains its RS256 key at the first JWKS or RS256 signature after upgrade).
* Private keys are stored encrypted (AES-256-GCM, the key id as associated data)
  with the key-encryption key from configuration; they are never regenerated
  silently: a key that cannot be decrypted is an error, not a reason for a new one.
* ``passport keys rotate`` publishes a new key *of each algorithm* at once and signs
  with them only after ``key_rotation_delay``, so that relying parties have fetched
  them by then; an old key stays in the JWKS until every token it signed has expired.
  Algorithms rotate together but retire separately: a key is retired by the next key
  of its own algorithm.
* Each process caches the key set for a few seconds: a rotation is seen by all
  processes within that time.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey
from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.config import SIGNING_ALGS
from passport.config import Settings
from passport.services.kek import KeyConfigurationError
from passport.services.kek import key_encryption_key
from passport.storage.db import Database
from passport.storage.models import SigningKey

CACHE_SECONDS = 5.0
# What the CLI and the console say when there is no key-encryption key to open keys with.
NOT_CONFIGURED = "set PASSPORT_KEY_ENCRYPTION_KEY (32 random bytes, base64url) first"


@dataclass(frozen=True)
class Key:
    kid: str
    alg: str
    public: dict[str, Any]
    private: ECKey | RSAKey
    use_after: datetime


class KeyRing:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._kek = key_encryption_key(settings)
        self._lock = threading.Lock()  # one reload at a time
        self._create_lock = threading.Lock()  # one first-use key per algorithm
        self._cache: tuple[float, list[Key]] = (0.0, [])
        self._imported: dict[str, Key] = {}  # by kid: a key's material never changes

    @property
    def configured(self) -> bool:
        return self._kek is not None

    def require(self) -> None:
        """Raise :class:`KeyConfigurationError` (answered 503) unless tokens can be signed:
        every protocol endpoint but discovery needs the key-encryption key."""
        if self._kek is None:
            raise KeyConfigurationError(
                "OpenID Connect needs PASSPORT_KEY_ENCRYPTION_KEY (32 random bytes, base64url)"
            )

    def aead(self) -> AESGCM:
        if self._kek is None:
            raise KeyConfigurationError(
                "OpenID Connect needs PASSPORT_KEY_ENCRYPTION_KEY (32 random bytes, base64url)"
            )
        return AESGCM(self._kek)

    def _seal(self, kid: str, pem: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self.aead().encrypt(nonce, pem, kid.encode())).decode()

    def _open(self, kid: str, sealed: str) -> bytes:
        blob = base64.b64decode(sealed)
        try:
            return self.aead().decrypt(blob[:12], blob[12:], kid.encode())
        except InvalidTag:
            raise KeyConfigurationError(
                f"signing key {kid} cannot be decrypted: is key_encryption_key the one it was "
                "made with?"
            ) from None

    def create(
        self,
        now: datetime,
        alg: str,
        *,
        use_after: datetime | None = None,
        db: Session | None = None,
    ) -> str:
        """Generate, encrypt and store a new key of ``alg``; returns its kid.  In ``db``'s
        transaction when given (a rotation and its audit record commit together), else in
        one of its own."""
        key: ECKey | RSAKey
        if alg == "ES256":
            key = ECKey.generate_key("P-256", auto_kid=True)
        elif alg == "RS256":
            # RFC 7518 §3.3: 2048 bits or larger.
            key = RSAKey.generate_key(2048, auto_kid=True)
        else:
            raise ValueError(f"cannot sign with {alg!r}")
        kid = key.kid
        assert kid is not None
        public = {**key.as_dict(private=False), "alg": alg, "use": "sig"}
        row = SigningKey(
            kid=kid,
            alg=alg,
            public_jwk=json.dumps(public),
            private_key=self._seal(kid, key.as_pem(private=True)),
            created_at=now,
            use_after=use_after or now,
        )
        if db is None:
            with self.database.session(write=True) as own, own.begin():
                own.add(row)
        else:
            db.add(row)
        self.forget()
        return kid

    def forget(self) -> None:
        """Drop the cached key set: the next use reads the keys again (after a rotation
        commits, so that this process publishes the new keys at once)."""
        self._cache = (0.0, [])

    def rotate(self, now: datetime, db: Session | None = None) -> list[str]:
        """A new key of every algorithm, published now, signing after ``key_rotation_delay``;
        returns their kids, in the order of :data:`SIGNING_ALGS`.  All algorithms rotate
        together, so that one command (and one delay) renews every key a relying party
        may be checking.  An algorithm with no
        key signing yet first gets one that signs now, until the new ones take over (a
        rotation is never a reason for a window without a signing key).

        In ``db``'s transaction when given — the administrative operation
        (:meth:`passport.services.administration.Administration.rotate_signing_keys`)
        passes its own, so that the keys and their audit record commit together; the
        keys are never made in a transaction of their own inside another one (on SQLite
        it would wait for the outer transaction's write lock)."""
        if db is None:
            with self.database.session(write=True) as own, own.begin():
                kids = self.rotate(now, own)
            self.forget()
            return kids
        for alg in SIGNING_ALGS:
            if not any(k.alg == alg and k.use_after <= now for k in self.keys()):
                self.create(now, alg, db=db)
        use_after = now + timedelta(seconds=self.settings.key_rotation_delay)
        return [self.create(now, alg, use_after=use_after, db=db) for alg in SIGNING_ALGS]

    def keys(self) -> list[Key]:
        """All stored keys, oldest first (cached for a few seconds).

        One thread reloads a stale cache; the others meanwhile go on with the cached
        keys, stale by at most the time of one reload, rather than queue behind it (or
        reload it again after it).  A key already imported is reused by its ``kid``
        (decrypting and importing an RSA key costs tens of milliseconds)."""
        stamp, cached = self._cache
        if time.monotonic() - stamp < CACHE_SECONDS and cached:
            return cached
        if cached and not self._lock.acquire(blocking=False):
            return cached  # another thread is reloading
        if not cached:
            self._lock.acquire()
        try:
            stamp, cached = self._cache
            if time.monotonic() - stamp < CACHE_SECONDS and cached:
                return cached  # reloaded while this thread waited
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> list[Key]:
        with self.database.session() as db:
            rows = db.scalars(
                select(SigningKey).order_by(
                    SigningKey.use_after, SigningKey.created_at, SigningKey.kid
                )
            ).all()
            loaded = []
            for r in rows:
                known = self._imported.get(r.kid)
                if known is None or known.use_after != r.use_after:
                    known = Key(
                        r.kid,
                        r.alg,
                        json.loads(r.public_jwk),
                        (ECKey if r.alg == "ES256" else RSAKey).import_key(
                            self._open(r.kid, r.private_key)
                        ),
                        r.use_after,
                    )
                    self._imported[r.kid] = known
                loaded.append(known)
            # Of keys made together (a first use, a rotation), the ``signing_alg`` setting's
            # comes first in the JWKS, as it did when it was alone.
        loaded.sort(key=lambda k: (k.use_after, k.alg != self.settings.signing_alg))
        self._cache = (time.monotonic(), loaded)
        return loaded

    def signing_key(self, now: datetime, alg: str | None = None) -> Key:
        """The newest key of ``alg`` (default: the ``signing_alg`` setting) whose time has
        come; made at first use if there is none."""
        alg = alg or self.settings.signing_alg
        if alg not in SIGNING_ALGS:
            raise ValueError(f"cannot sign with {alg!r}")
        usable = [k for k in self.keys() if k.alg == alg and k.use_after <= now]
        if not usable:
            self._first_use(now, alg)
            usable = [k for k in self.keys() if k.alg == alg and k.use_after <= now]
        return usable[-1]

    def _first_use(self, now: datetime, alg: str) -> None:
        """Make the first key of ``alg``, once: threads that find none at the same time
        queue here, and each looks again (reloading) before making one."""
        with self._create_lock:
            self.forget()
            if not any(k.alg == alg and k.use_after <= now for k in self.keys()):
                self.create(now, alg)

    def ensure(self, now: datetime) -> None:
        """Make the signing key of any algorithm that has none yet.  Called before a write
        transaction that may sign (the token endpoint): on SQLite, a key made inside one
        would wait for its own write lock."""
        for alg in SIGNING_ALGS:
            if not any(k.alg == alg and k.use_after <= now for k in self.keys()):
                self._first_use(now, alg)

    def published(self, now: datetime) -> list[dict[str, Any]]:
        """The JWKS: for each algorithm, upcoming keys, the signing key, and retired keys
        whose tokens may live.  A key of every algorithm is made here if missing, so the
        JWKS holds it before any token it signs exists."""
        self.ensure(now)
        keys = self.keys()
        longest = timedelta(
            seconds=max(self.settings.access_token_lifetime, self.settings.id_token_lifetime)
        )
        shown = []
        for index, key in enumerate(keys):
            successor = next(
                (k for k in keys[index + 1 :] if k.alg == key.alg and k.use_after <= now), None
            )
            if successor is None or now < successor.use_after + longest:
                shown.append(key.public)
        return shown


@dataclass(frozen=True)
class KeyState:
    """One signing key as an administrator sees it (``passport keys list``, ``/admin/keys``)."""

    kid: str
    alg: str
    signs_from: datetime
    state: str  # one of STATES

    @property
    def label(self) -> str:
        """The state in words, as the CLI prints it."""
        if self.state == UPCOMING:
            return "published, signs from " + self.signs_from.isoformat(timespec="seconds")
        return {SIGNING: "signing", RETIRED_PUBLISHED: "retired, still published"}.get(
            self.state, "retired"
        )


UPCOMING = "upcoming"  # published, not signing yet (``key_rotation_delay``)
SIGNING = "signing"  # the newest of its algorithm whose time has come
RETIRED_PUBLISHED = "retired-published"  # replaced; kept in the JWKS while its tokens live
RETIRED = "retired"  # replaced, and every token it signed has expired
STATES = (UPCOMING, SIGNING, RETIRED_PUBLISHED, RETIRED)


def key_states(ring: KeyRing, now: datetime) -> list[KeyState]:
    """Every stored key and its state at ``now``, oldest first: the one computation
    behind ``passport keys list`` and the console's keys screen.  With no key yet, none
    is made (a listing does not start the keys); with keys, a missing algorithm's first
    key is made, as publishing the JWKS would, so that what is listed is what is
    published.  Needs the key-encryption key (:attr:`KeyRing.configured`)."""
    keys = ring.keys()
    published: set[str] = set()
    if keys:
        published = {k["kid"] for k in ring.published(now)}
        keys = ring.keys()
    signing = {ring.signing_key(now, alg).kid for alg in {k.alg for k in keys}}
    states = []
    for key in keys:
        if key.kid in signing:
            state = SIGNING
        elif key.use_after > now:
            state = UPCOMING
        elif key.kid in published:
            state = RETIRED_PUBLISHED
        else:
            state = RETIRED
        states.append(KeyState(key.kid, key.alg, key.use_after, state))
    return states
