"""``GET /metrics``: the Prometheus exposition of :mod:`passport.metrics`.

Access: with ``PASSPORT_METRICS_TOKEN`` set, a matching ``Authorization: Bearer``
is required; without one, only loopback clients may scrape.  With several worker
processes (``PROMETHEUS_MULTIPROC_DIR``) every worker's samples are summed.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client import multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from werkzeug import Request
from werkzeug import Response


def _allowed(request: Request, token: str, client_ip: str) -> bool:
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    return client_ip in ("127.0.0.1", "::1")


def exposition(
    request: Request,
    token: str,
    client_ip: str,
    refresh: Callable[[], None],
) -> Response:
    if not _allowed(request, token, client_ip):
        return Response(
            "metrics need the configured bearer token\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    refresh()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return Response(body, content_type=CONTENT_TYPE_LATEST)
