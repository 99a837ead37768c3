"""Signing keys: encrypted at rest, never silently replaced, rotated with a delay,
kept in the JWKS while their tokens live, and seen alike by every process."""

from __future__ import annotations

import base64
import dataclasses
import os
import subprocess
import sys
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from oidc_support import KEK
from passport.config import SIGNING_ALGS
from passport.oidc.keys import KeyRing
from passport.services.kek import KeyConfigurationError
from passport.storage.models import SigningKey
from provision import Backend

from support import Harness

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_rotation_publishes_at_once_signs_later_and_retires_after_tokens_expire(
    factory: Any,
) -> None:
    h: Harness = factory("sqlite", key_encryption_key=KEK, key_rotation_delay=3600)
    ring = h.app.services.keys
    first = {alg: ring.signing_key(NOW, alg).kid for alg in SIGNING_ALGS}
    rotated = ring.rotate(NOW)  # a new key of every algorithm
    second = {next(k.alg for k in ring.keys() if k.kid == kid): kid for kid in rotated}
    assert set(second) == set(SIGNING_ALGS)
    ring._cache = (0.0, [])
    published = {k["kid"] for k in ring.published(NOW)}
    assert published == {*first.values(), *second.values()}
    switch = NOW + timedelta(hours=1)
    for alg in SIGNING_ALGS:
        assert ring.signing_key(NOW + timedelta(minutes=59), alg).kid == first[alg]
        assert ring.signing_key(switch, alg).kid == second[alg]
    assert ring.signing_key(NOW).kid == first["ES256"]  # the signing_alg setting's
    assert {k["kid"] for k in ring.published(switch + timedelta(seconds=899))} == published
    assert {k["kid"] for k in ring.published(switch + timedelta(seconds=901))} == set(
        second.values()
    )
    for key in ring.published(NOW):
        assert key["use"] == "sig" and "d" not in key
        assert (key["kty"], key["alg"]) in {("EC", "ES256"), ("RSA", "RS256")}


def test_private_keys_are_encrypted_and_never_regenerated(factory: Any) -> None:
    h: Harness = factory("sqlite", key_encryption_key=KEK)
    kid = h.app.services.keys.signing_key(NOW).kid
    with h.app.services.db.session() as db:
        stored = db.scalars(select(SigningKey)).one()  # the RS256 key only when needed
        assert "PRIVATE KEY" not in stored.private_key
    other = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    wrong = KeyRing(h.app.services.db, dataclasses.replace(h.settings, key_encryption_key=other))
    with pytest.raises(KeyConfigurationError, match="cannot be decrypted"):
        wrong.signing_key(NOW)
    with h.app.services.db.session() as db:
        assert [k.kid for k in db.scalars(select(SigningKey))] == [kid]


def test_rs256_is_available(factory: Any) -> None:
    """Core §15.1: RS256 always, whatever ``signing_alg`` says; as the default, it signs."""
    for default in ("ES256", "RS256"):
        h: Harness = factory("sqlite", key_encryption_key=KEK, signing_alg=default)
        ring = h.app.services.keys
        keys = {k["alg"]: k for k in ring.published(NOW)}
        assert keys["RS256"]["kty"] == "RSA" and keys["ES256"]["kty"] == "EC"
        assert ring.signing_key(NOW).alg == default


@pytest.mark.live
def test_every_process_sees_keys_and_their_rotation(
    backends: dict[str, Backend], live_server: Any
) -> None:
    from conftest import _empty_tables

    url = backends["postgresql"].url
    _empty_tables(url)
    env = {"PASSPORT_KEY_ENCRYPTION_KEY": KEK, "PASSPORT_KEY_ROTATION_DELAY": "0"}
    a = live_server(url, env=env)
    b = live_server(url, env=env)

    def kids(server: Any) -> set[str]:
        keys = requests.get(server.url + "/.well-known/jwks.json", timeout=5).json()["keys"]
        return {k["kid"] for k in keys}

    per_generation = len(SIGNING_ALGS)  # a key of each algorithm
    assert kids(a) == kids(b) and len(kids(a)) == per_generation
    rotated = subprocess.run(
        [sys.executable, "-m", "passport", "keys", "rotate", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}, **env},
    )
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
        len(kids(a)) == 2 * per_generation and kids(a) == kids(b)
    ):
        time.sleep(0.5)
    assert len(kids(a)) == 2 * per_generation and kids(a) == kids(b)
    listed = subprocess.run(
        [sys.executable, "-m", "passport", "keys", "list", "--json", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}, **env},
    )
    assert listed.returncode == 0, listed.stderr
    assert "signing" in listed.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_threads_at_first_use_make_one_key_of_each_algorithm(factory: Any, backend: str) -> None:
    """A cold token load: many request threads find no key at once; one key of each
    algorithm is made, not one per thread."""
    import threading

    h: Harness = factory(backend, key_encryption_key=KEK)
    ring = KeyRing(h.app.services.db, h.settings)
    now = datetime.now(UTC)
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        ring.ensure(now)
        ring.signing_key(now)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with h.app.services.db.session() as db:
        algs = sorted(db.scalars(select(SigningKey.alg)))
    assert algs == sorted(SIGNING_ALGS)


def test_a_stale_key_cache_is_reloaded_by_one_thread_and_keys_are_imported_once(
    factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h: Harness = factory("sqlite", key_encryption_key=KEK)
    ring = KeyRing(h.app.services.db, h.settings)
    now = datetime.now(UTC)
    ring.ensure(now)
    ring.keys()  # every key imported once
    imported: list[str] = []
    opened = ring._open

    def counting_open(kid: str, sealed: str) -> bytes:
        imported.append(kid)
        return opened(kid, sealed)

    monkeypatch.setattr(ring, "_open", counting_open)
    first = ring.keys()
    ring._cache = (0.0, first)  # stale
    again = ring.keys()
    assert [k.kid for k in again] == [k.kid for k in first]
    assert imported == []  # the kids were known: nothing decrypted or imported again
