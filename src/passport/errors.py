"""Domain errors: what went wrong, in the words of the rules, with no HTTP in them.

Services raise these; each adapter says what they mean on its wire — the web
layer's one table (:mod:`passport.web.errors`) gives each kind its Passport API
``Number``, its HTTP status and its headers, the CLI prints the message and
exits 1.  The tree::

    PassportError                     base, never raised itself
    ├── ClientError                   the caller can fix it; raised as is: a malformed request
    │   ├── Missing                   a required value is missing
    │   ├── NotFound                  the named object does not exist
    │   ├── Invalid                   a value has the wrong type or form
    │   ├── WrongLength               a value is too long or too short
    │   ├── Taken                     the name is already taken
    │   ├── PasswordRefused           a password is refused by the policy
    │   ├── FeatureDisabled           a feature is switched off
    │   ├── NotSignedIn               not signed in, or wrong credentials
    │   │   └── SecondFactorRequired  the password was right; a second factor is owed
    │   ├── Forbidden                 signed in, but not allowed
    │   └── Throttled                 too many attempts; ``retry_after`` seconds
    └── ServiceUnavailable            the database, Redis or the hashing queue cannot serve
                                      now; retry later

Anything else raised inside a request or a command is unexpected: it is logged
once with a short error id, and the client learns only that id.
"""

from __future__ import annotations

from typing import Any


class PassportError(Exception):
    """Base of the errors that adapters turn into answers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(PassportError):
    """A problem with the request that the caller can fix (raised as is: malformed)."""

    def __init__(self, message: str, *, source: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.source = source
        self.value = value


class Missing(ClientError):
    """A required value is missing."""


class NotFound(ClientError):
    """The named object does not exist."""


class Invalid(ClientError):
    """A value has the wrong type or form."""


class WrongLength(ClientError):
    """A value is too long or too short."""


class Taken(ClientError):
    """The name is already taken (by the same name or a look-alike)."""


class Conflict(ClientError):
    """The object changed since the caller read it (a form posted again after its
    change was made): acting again would undo or repeat that change."""


class PasswordRefused(ClientError):
    """The password breaks the password policy."""


class FeatureDisabled(ClientError):
    """The operation is switched off by configuration."""


class NotSignedIn(ClientError):
    """Nobody is signed in, or the credentials are wrong."""


class SecondFactorRequired(NotSignedIn):
    """The password was right, and the account owes a second factor before it is signed
    in (:mod:`passport.services.factors`)."""


class EmailNotVerified(NotSignedIn):
    """The credentials were right, and the account must verify its email address
    before it signs in (``require_verified_email``)."""


class Forbidden(ClientError):
    """The caller is known but may not do this."""


class Throttled(ClientError):
    """Too many attempts; the caller may try again after ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, retry_after: int, source: str | None = None, value: Any = None
    ) -> None:
        super().__init__(message, source=source, value=value)
        self.retry_after = retry_after


class ServiceUnavailable(PassportError):
    """A backing service (database, Redis, the hashing queue) cannot serve right now."""

    retry_after = 5

    def __init__(
        self, message: str = "The service is temporarily unavailable; retry later."
    ) -> None:
        super().__init__(message)


def required(source: str, message: str | None = None) -> Missing:
    return Missing(message or f"{source} must be specified.", source=source)


def invalid(source: str, message: str, value: Any = None) -> Invalid:
    return Invalid(message, source=source, value=value)
