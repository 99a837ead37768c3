"""The throttle counters: atomic under concurrency, windowed, with growing delays."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from passport.services.throttle import Throttle
from passport.services.throttle import address_of
from passport.services.throttle import client_request_key
from passport.services.throttle import device_code_keys
from passport.services.throttle import ip_key
from passport.services.throttle import registration_key

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


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:0DB8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::1", "::/64"),
        ("", ""),
        ("not an address", "not an address"),
        ("x" * 100, "x" * 64),
    ],
)
def test_an_address_is_keyed_by_its_ipv6_64(ip: str, key: str) -> None:
    """F3: an IPv6 client picks any address of its /64 (RFC 6177 §3): one counter for it."""
    assert address_of(ip) == key


def test_every_address_counter_uses_the_same_key() -> None:
    a, b = "2001:db8:1:2::1", "2001:db8:1:2::abcd"
    assert ip_key(a) == ip_key(b) == "ip:2001:db8:1:2::/64"
    assert (
        device_code_keys(a, 7)
        == device_code_keys(b, 7)
        == (
            "device:user:7",
            "device:ip:2001:db8:1:2::/64",
        )
    )
    assert client_request_key(a) == client_request_key(b)
    assert registration_key(a) == registration_key(b)
    assert ip_key("2001:db8:1:3::1") != ip_key(a)
