"""The throttle counters: atomic under concurrency, windowed, with growing delays."""

from __future__ import annotations

import threading
from datetime import timedelta

from passport.services.throttle import Throttle

from support import Harness


def test_concurrent_hits_are_never_lost(accounts: Harness) -> None:
    store = accounts.app.services.throttle.store
    now = accounts.clock()
    threads = [
        threading.Thread(target=lambda: [store.hit("account:x", now, 900) for _ in range(5)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count = store.peek("account:x")
    assert count is not None and count.failures == 40


def test_window_restarts_the_count(accounts: Harness) -> None:
    store = accounts.app.services.throttle.store
    now = accounts.clock()
    for _ in range(3):
        store.hit("ip:10.0.0.1", now, 900)
    assert store.hit("ip:10.0.0.1", now + timedelta(seconds=901), 900).failures == 1


def test_delays_double_and_are_capped(accounts: Harness) -> None:
    throttle: Throttle = accounts.app.services.throttle
    now = accounts.clock()
    keys = ["account:y"]
    waits = []
    for _ in range(12):
        throttle.failure(keys, now)
        waits.append(throttle.retry_after(keys, now))
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:9] == [30, 60, 120, 240, 480]
    assert max(waits) == 900
    throttle.success("account:y")
    assert throttle.retry_after(keys, now) == 0
