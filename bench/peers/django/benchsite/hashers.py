"""A cheap client-secret hasher for DOT: one unsalted SHA-256, as Passport stores its secrets.

DOT hashes client secrets with ``make_password(secret, hasher=CLIENT_SECRET_HASHER)``
and checks them with ``check_password``, i.e. through Django's PASSWORD_HASHERS. Its
default is Django's PBKDF2 (1,000,000 iterations): right for passwords people choose,
~0.4 s of CPU per client authentication here. Generated client secrets (DOT's: 128
random characters) are not guessable, so a single hash of them protects a database
dump as well as a slow one does; this is what ``serve.py --client-secret-hasher
sha256`` selects. Stored as ``unsalted_sha256$<hex digest>``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.hashers import BasePasswordHasher
from django.contrib.auth.hashers import mask_hash
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_noop as _


class UnsaltedSHA256PasswordHasher(BasePasswordHasher):  # type: ignore[misc]
    """For high-entropy generated secrets only, never for passwords people choose."""

    algorithm = "unsalted_sha256"

    def salt(self) -> str:
        return ""

    def encode(self, password: str | bytes, salt: str) -> str:
        if password is None:
            raise TypeError("password must be provided.")
        if salt != "":
            raise ValueError("salt must be empty.")
        if isinstance(password, str):
            password = password.encode("utf-8", "surrogatepass")
        return f"{self.algorithm}${hashlib.sha256(password).hexdigest()}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, _sep, digest = encoded.partition("$")
        if algorithm != self.algorithm:
            raise ValueError(f"not an {self.algorithm} hash")
        return {"algorithm": algorithm, "hash": digest, "salt": None}

    def verify(self, password: str | bytes, encoded: str) -> bool:
        return bool(constant_time_compare(encoded, self.encode(password, "")))

    def safe_summary(self, encoded: str) -> dict[str, str]:
        decoded = self.decode(encoded)
        return {_("algorithm"): decoded["algorithm"], _("hash"): mask_hash(decoded["hash"])}

    def harden_runtime(self, password: str | bytes, encoded: str) -> None:
        pass
