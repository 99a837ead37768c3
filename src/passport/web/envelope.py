"""The one answer format of the Passport API, as JSON or JSONP.

JSONP rules (OWASP ASVS 5 3.5.6-3.5.8): the callback must be a plain dotted
JavaScript identifier of at most 64 characters per part, the body starts with
``/**/`` (defuses the Rosetta-Flash family of attacks), is served as
``application/javascript`` with ``nosniff`` and ``no-store``, and is always
HTTP 200 because a ``<script>`` tag cannot read a status: the envelope
carries the error.  Non-ASCII (including U+2028/U+2029) is escaped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug import Response

from passport.errors import ClientError
from passport.web.errors import error_json
from passport.web.errors import headers_of
from passport.web.errors import status_of

CALLBACK_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}(\.[A-Za-z_$][A-Za-z0-9_$]{0,63}){0,3}$")
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Envelope:
    success: bool = False
    logged_in: bool = False
    data: Any = None
    client_errors: list[ClientError] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "Success": self.success,
            "LoggedIn": self.logged_in,
            "Data": self.data,
            "ClientExceptions": [error_json(e) for e in self.client_errors],
            "ServerExceptions": [{"Message": m} for m in self.server_errors],
        }


def valid_callback(name: str) -> bool:
    return CALLBACK_RE.fullmatch(name) is not None


def render(
    envelope: Envelope,
    status: int,
    *,
    callback: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A response carrying ``envelope``; JSONP when ``callback`` (already validated)."""
    if callback is not None:
        body = json.dumps(envelope.to_json(), ensure_ascii=True, default=str)
        response = Response(
            f"/**/{callback}({body});", status=200, content_type="application/javascript"
        )
    else:
        body = json.dumps(envelope.to_json(), ensure_ascii=False, default=str)
        response = Response(body, status=status, content_type=JSON_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def client_error(error: ClientError, *, callback: str | None = None) -> Response:
    return render(
        Envelope(client_errors=[error]),
        status_of(error),
        callback=callback,
        headers=headers_of(error),
    )
