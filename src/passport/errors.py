"""Errors that reach clients, and their numbers.

Every answer of the Passport API is an envelope; what went wrong is told in
its ``ClientExceptions`` (the caller can fix it) or ``ServerExceptions`` (we
must fix it).  The tree::

    PassportError                     base, never raised itself
    ├── ClientError                   -> ClientExceptions[], HTTP 4xx
    │     Number is a string, as in the original design:
    │       "1"   a required value is missing          (400)
    │       "2"   the named object does not exist       (404)
    │       "3"   a value has the wrong type or form    (400)
    │       "4"   a value is too long or too short      (400)
    │       "5"   the name is already taken             (409)
    │       "6"   a password is refused by the policy   (400)
    │       "7"   a feature is switched off             (403)
    │       "400" the request itself is malformed       (400)
    │       "401" not logged in / bad credentials       (401)
    │       "403" not allowed                           (403)
    │       "404" no such URL                           (404)
    │       "405" wrong HTTP method                     (405)
    │       "413" body too large                        (413)
    │       "414" query string too long                 (414)
    │       "429" throttled                             (429)
    └── ServiceUnavailable            -> ServerExceptions[], HTTP 503
          the database (or Redis) cannot be reached; retry later.

Anything else raised inside a request is unexpected: it is logged once with
a short error id and answered as a ServerException carrying only that id.
"""

from __future__ import annotations

from typing import Any


class PassportError(Exception):
    """Base of the errors that the web layer turns into envelope entries."""

    status: int = 500


class ClientError(PassportError):
    """A problem with the request that the client can fix."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        value: Any = None,
        number: int | str = 400,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.value = value
        self.number = str(number)
        self.status = status if status is not None else _STATUS_BY_NUMBER.get(self.number, 400)
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {
            "Message": self.message,
            "Source": self.source,
            "Value": self.value,
            "Number": self.number,
        }


class ServiceUnavailable(PassportError):
    """A backing service (database, Redis) cannot be reached right now."""

    status = 503

    def __init__(
        self, message: str = "The service is temporarily unavailable; retry later."
    ) -> None:
        super().__init__(message)
        self.message = message


REQUIRED = 1
NOT_FOUND = 2
INVALID = 3
LENGTH = 4
TAKEN = 5
PASSWORD_POLICY = 6
DISABLED_FEATURE = 7

_STATUS_BY_NUMBER = {
    "1": 400,
    "2": 404,
    "3": 400,
    "4": 400,
    "5": 409,
    "6": 400,
    "7": 403,
    "401": 401,
    "403": 403,
    "404": 404,
    "405": 405,
    "413": 413,
    "414": 414,
    "429": 429,
}


def required(source: str, message: str | None = None) -> ClientError:
    return ClientError(message or f"{source} must be specified.", source=source, number=REQUIRED)


def invalid(source: str, message: str, value: Any = None) -> ClientError:
    return ClientError(message, source=source, value=value, number=INVALID)
