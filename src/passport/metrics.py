"""Prometheus meters: what Passport counts (served at ``GET /metrics`` by
:mod:`passport.web.metrics`; nothing here knows HTTP).

With several worker processes, ``passport serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory so that every worker's samples are summed into one answer,
whichever worker serves the scrape.  Labels are bounded: the endpoint label is a
registered path (or ``other``), never the raw URL.

Access: with ``PASSPORT_METRICS_TOKEN`` set, a matching ``Authorization: Bearer``
is required; without one, only loopback clients may scrape.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram

REQUESTS = Counter(
    "passport_http_requests_total", "HTTP requests by endpoint and status.", ["endpoint", "status"]
)
LATENCY = Histogram(
    "passport_http_request_duration_seconds",
    "Time to answer a request.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
#: counted from the audit records of sign-ins (:meth:`passport.web.context.RequestContext.audit`)
LOGINS = Counter("passport_logins_total", "Password sign-ins by outcome.", ["outcome"])
ACTIVE_SESSIONS = Gauge(
    "passport_active_sessions", "Live login sessions (counted at scrape).", multiprocess_mode="max"
)
DB_POOL_IN_USE = Gauge(
    "passport_db_pool_connections_in_use",
    "Database connections checked out of the pool, per process.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "passport_db_pool_size", "Configured pool size, per process.", multiprocess_mode="livesum"
)


_children: dict[tuple[str, int], tuple[Any, Any]] = {}


def observe(endpoint: str, status: int, seconds: float) -> None:
    """Count one request; label children are cached (endpoints are a bounded set)."""
    pair = _children.get((endpoint, status))
    if pair is None:
        pair = (REQUESTS.labels(endpoint, str(status)), LATENCY.labels(endpoint))
        _children[(endpoint, status)] = pair
    pair[0].inc()
    pair[1].observe(seconds)
