"""The baseline: the least a WSGI app can do, served exactly like Passport."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

BODY = b'{"hello": "world"}'


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    )
    return [BODY]
