"""The one table from domain errors to the wire: the API's ``Number``, HTTP status, headers.

:mod:`passport.errors` says what went wrong in the rules' words; this module is
the only place that knows what each kind is called on the Passport API (the
``Number`` of a ClientException, strings as in the original design) and over
HTTP.  :class:`WebError` is for what only the web layer can refuse (an unknown
URL, a wrong method, a body too large, a misdirected host), with its status and
headers given where it is raised.
"""

from __future__ import annotations

from typing import Any

from passport.errors import ClientError
from passport.errors import Conflict
from passport.errors import EmailNotVerified
from passport.errors import FeatureDisabled
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import Missing
from passport.errors import NotFound
from passport.errors import NotSignedIn
from passport.errors import PasswordRefused
from passport.errors import SecondFactorRequired
from passport.errors import Taken
from passport.errors import Throttled
from passport.errors import WrongLength

#: kind -> (Number, HTTP status).  A plain ClientError is a malformed request.
WIRE: dict[type[ClientError], tuple[str, int]] = {
    Missing: ("1", 400),
    NotFound: ("2", 404),
    Invalid: ("3", 400),
    WrongLength: ("4", 400),
    Taken: ("5", 409),
    PasswordRefused: ("6", 400),
    FeatureDisabled: ("7", 403),
    SecondFactorRequired: ("8", 401),
    EmailNotVerified: ("9", 403),
    NotSignedIn: ("401", 401),
    Forbidden: ("403", 403),
    Conflict: ("409", 409),
    Throttled: ("429", 429),
    ClientError: ("400", 400),
}


class WebError(ClientError):
    """A refusal of the web layer itself, with its own Number, status and headers."""

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
        super().__init__(message, source=source, value=value)
        self.number = str(number)
        self.status = status if status is not None else int(self.number)
        self.headers = headers or {}


def _wire(error: ClientError) -> tuple[str, int]:
    for kind in type(error).__mro__:
        found = WIRE.get(kind)
        if found is not None:
            return found
    return WIRE[ClientError]


def number_of(error: ClientError) -> str:
    """The ``Number`` of the ClientException that tells ``error``."""
    return error.number if isinstance(error, WebError) else _wire(error)[0]


def status_of(error: ClientError) -> int:
    """The HTTP status that answers ``error``."""
    return error.status if isinstance(error, WebError) else _wire(error)[1]


def headers_of(error: ClientError) -> dict[str, str]:
    """Headers that go with ``error`` (RFC 9110 §10.2.3 Retry-After for throttling)."""
    if isinstance(error, WebError):
        return error.headers
    if isinstance(error, Throttled):
        return {"Retry-After": str(error.retry_after)}
    return {}


def error_json(error: ClientError) -> dict[str, Any]:
    """One entry of the envelope's ``ClientExceptions``."""
    return {
        "Message": error.message,
        "Source": error.source,
        "Value": error.value,
        "Number": number_of(error),
    }
