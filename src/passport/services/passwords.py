"""Password policy (NIST SP 800-63B 5.1.1.2) and argon2id hashing.

Policy: a minimum length (12 by default), at most 1024 characters, any
characters at all, no composition rules; refused when it is one of the 30,000
common passwords that the ``zxcvbn`` package ships (offline), or equals the
username or the service name.  Text is NFKC-normalised before it is checked
or hashed, so composed and decomposed forms of the same password both work.

Hashing: argon2id with at least OWASP's parameters.  A hash costs a CPU for tens
of milliseconds and ~19 MiB, so at most ``settings.hash_slots`` are computed at
once, at most ``settings.hash_queue_limit`` more requests wait for a slot (for at
most :data:`HASH_WAIT_SECONDS`), and any further one is refused at once with
:class:`ServiceUnavailable` (503 with ``Retry-After``).  The server runs more
threads than slots plus waiters (``settings.server_threads``), so a login storm
never occupies the threads that serve cheap requests.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from argon2 import PasswordHasher
from argon2 import Type
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from passport.config import Settings
from passport.errors import PasswordRefused
from passport.errors import ServiceUnavailable
from passport.errors import WrongLength

MAX_PASSWORD_LENGTH = 1024
SERVICE_NAME = "passport"
HASH_WAIT_SECONDS = 5
BUSY_MESSAGE = "Too many sign-ins at once; retry in a moment."


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The ranked list of common passwords shipped with zxcvbn, lower-cased."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, username: str, min_length: int, source: str) -> str:
    """The normalised password, or a ClientError that says which rule it breaks."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WrongLength(
            f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.",
            source=source,
        )
    text = normalise(password)
    if len(text) < min_length:
        raise WrongLength(
            f"The password must be at least {min_length} characters long.",
            source=source,
        )
    folded = text.casefold()
    if folded in common_passwords() or _repeats_common(folded):
        raise PasswordRefused(
            "This password is in a list of commonly used passwords; choose another.",
            source=source,
        )
    if len(set(folded)) < 4:
        raise PasswordRefused(
            "The password repeats too few characters; choose a longer phrase.",
            source=source,
        )
    if folded == normalise(username).casefold():
        raise PasswordRefused(
            "The password must not be the same as the username.",
            source=source,
        )
    if folded == SERVICE_NAME:
        raise PasswordRefused(
            "The password must not be the name of the service.",
            source=source,
        )
    return text


def _repeats_common(folded: str) -> bool:
    """``passwordpassword``: a common password said several times is still common."""
    for period in range(1, len(folded) // 2 + 1):
        if len(folded) % period == 0 and folded[:period] * (len(folded) // period) == folded:
            return folded[:period] in common_passwords()
    return False


BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
PBKDF2_PREFIX = "pbkdf2_sha256$"


def imported_hash_kind(stored_hash: str) -> str | None:
    """``argon2``, ``bcrypt`` or ``pbkdf2_sha256`` when Passport can verify this hash."""
    if stored_hash.startswith(("$argon2id$", "$argon2i$", "$argon2d$")):
        return "argon2"
    if stored_hash.startswith(BCRYPT_PREFIXES) and len(stored_hash) == 60:
        return "bcrypt"
    parts = stored_hash.split("$")
    if stored_hash.startswith(PBKDF2_PREFIX) and len(parts) == 4 and parts[1].isdigit():
        return "pbkdf2_sha256"
    return None


def verify_imported(stored_hash: str, password: str) -> bool:
    """Verify hashes brought from other systems, as those systems did (no NFKC).

    bcrypt only reads 72 bytes, as it always did; the password is rehashed to
    argon2id at the first successful login, after which the whole of it counts.
    """
    kind = imported_hash_kind(stored_hash)
    if kind == "bcrypt":
        import bcrypt

        candidate = password.encode("utf-8", "surrogatepass")[:72]
        return bool(bcrypt.checkpw(candidate, stored_hash.replace("$2y$", "$2b$", 1).encode()))
    if kind == "pbkdf2_sha256":
        import base64
        import hashlib
        import hmac

        _, iterations, salt, expected = stored_hash.split("$")
        if not 1 <= int(iterations) <= 10_000_000:
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode("utf-8", "surrogatepass"), salt.encode(), int(iterations)
        )
        return hmac.compare_digest(base64.b64encode(digest).decode(), expected)
    if kind == "argon2":
        try:
            return bool(PasswordHasher().verify(stored_hash, password))
        except (VerificationError, InvalidHashError):
            return False
    return False


class Passwords:
    """argon2id hashing with bounded concurrency and a dummy hash for unknown users."""

    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._slots = threading.BoundedSemaphore(settings.hash_slots)
        self._queue_limit = settings.hash_queue_limit
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._dummy: str | None = None
        self.dummy_verifications = 0

    def saturated(self) -> bool:
        """True when a new hash would be refused now: callers skip their other work."""
        return self._waiting >= self._queue_limit

    @contextmanager
    def _slot(self) -> Iterator[None]:
        """Hold a hashing slot; wait for one only if the queue has room, and not for long."""
        if not self._slots.acquire(blocking=False):
            with self._waiting_lock:
                if self._waiting >= self._queue_limit:
                    raise ServiceUnavailable(BUSY_MESSAGE)
                self._waiting += 1
            try:
                acquired = self._slots.acquire(timeout=HASH_WAIT_SECONDS)
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
            if not acquired:
                raise ServiceUnavailable(BUSY_MESSAGE)
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        """Hash an already policy-checked, normalised password."""
        with self._slot():
            return self.hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """Check ``password`` against an argon2id hash, or an imported bcrypt or
        Django PBKDF2-SHA256 hash; never runs on more than 1024 characters."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        with self._slot():
            try:
                if stored_hash.startswith("$argon2"):
                    return bool(self.hasher.verify(stored_hash, normalise(password)))
                return verify_imported(stored_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    def verify_dummy(self, password: str) -> None:
        """Spend the same work as a real check, for users that do not exist."""
        if self._dummy is None:
            self._dummy = self.hash("passport-dummy-password-for-timing")
        self.dummy_verifications += 1
        self.verify(self._dummy, password[:MAX_PASSWORD_LENGTH])

    def needs_rehash(self, stored_hash: str) -> bool:
        if not stored_hash.startswith("$argon2id$"):
            return True
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
