"""The client cache (``passport.services.clients.ClientCache``) never outlives a change.

The machine endpoints (the client credentials grant, introspection) keep what a client
authentication found, per process, for as long as ``application_generation`` keeps its
value.  Each test warms the cache of the process under test (the harness's app), then
changes the application from *another* process — the CLI, with its own engine — and
checks that the very next request sees the change: a disabled application, a rotated or
expired secret, a narrowed scope, a resource client taken off, a deleted application.
The query-count tests keep the hot paths at what the cache is for."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy import text

from oidc_support import KEK
from oidc_support import body
from oidc_support import ids
from passport.cli import cli
from passport.services import clients
from passport.services import directory
from passport.storage.models import Application

from support import Harness
from support import QueryCounter

API = "https://api.cache.example/"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def token(h: Harness, client_id: str, secret: str, **form: str) -> Any:
    return h.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", **form},
        headers=basic(client_id, secret),
    )


def cli_run(h: Harness, *args: str) -> str:
    """Another process's change: the CLI, with its own engine and no shared cache."""
    result = CliRunner().invoke(
        cli,
        [*args, "--database-url", h.settings.database_url],
        env={"PASSPORT_KEY_ENCRYPTION_KEY": KEK},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return result.output


def batch(h: Harness) -> tuple[str, str]:
    return ids(h)["service_id"], ids(h)["service_secret"]


def warmed(h: Harness) -> tuple[str, str]:
    """Batch's credentials, with a success of them kept in this process's cache."""
    who = batch(h)
    for _ in range(2):
        assert token(h, *who).status_code == 200
    return who


def test_a_disabled_application_is_refused_at_its_next_request(h: Harness) -> None:
    who = warmed(h)
    cli_run(h, "app", "disable", "Batch")
    refused = token(h, *who)
    assert refused.status_code == 401 and body(refused)["error"] == "invalid_client"
    cli_run(h, "app", "enable", "Batch")
    assert token(h, *who).status_code == 200


def test_a_rotated_secret_is_refused_at_once_without_overlap(h: Harness) -> None:
    who = warmed(h)
    output = cli_run(h, "app", "rotate-secret", "Batch")
    assert token(h, *who).status_code == 401
    new_secret = next(word for word in output.split() if len(word) >= 40)
    assert token(h, who[0], new_secret).status_code == 200


def test_the_previous_secret_stops_when_its_overlap_ends_even_from_the_cache(
    h: Harness,
) -> None:
    who = batch(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.scalars(select(Application).where(Application.client_id == who[0])).one()
        clients.rotate_secret(app, h.clock(), 60)  # the harness's clock: the endpoint's "now"
    # Cached while the overlap runs.
    for _ in range(2):
        assert token(h, *who).status_code == 200
    h.clock.advance(seconds=120)  # type: ignore[attr-defined]
    assert token(h, *who).status_code == 401


def test_a_narrowed_scope_applies_to_the_next_token(h: Harness) -> None:
    who = batch(h)
    cli_run(h, "app", "update", "Batch", "--scope", "reports:read", "--scope", "reports:write")
    assert body(token(h, *who))["scope"] == "reports:read reports:write"
    cli_run(h, "app", "update", "Batch", "--scope", "reports:read")
    assert body(token(h, *who))["scope"] == "reports:read"
    refused = token(h, *who, scope="reports:write")
    assert body(refused)["error"] == "invalid_scope"


def test_a_resource_client_taken_off_gets_invalid_target_at_once(h: Harness) -> None:
    who = batch(h)
    cli_run(h, "app", "add", "Orders", "--resource", API, "--resource-client", who[0])
    for _ in range(2):
        assert token(h, *who, resource=API).status_code == 200
    cli_run(h, "app", "update", "Orders", "--no-resource-clients")
    assert body(token(h, *who, resource=API))["error"] == "invalid_target"
    cli_run(h, "app", "update", "Orders", "--resource-client", who[0])
    assert token(h, *who, resource=API).status_code == 200
    cli_run(h, "app", "disable", "Orders")
    assert body(token(h, *who, resource=API))["error"] == "invalid_target"


def test_a_deleted_application_is_refused_at_once(h: Harness) -> None:
    who = warmed(h)
    cli_run(h, "app", "delete", "Batch", "--yes")
    assert token(h, *who).status_code == 401


def test_introspection_callers_come_from_the_cache_and_obey_changes(h: Harness) -> None:
    who = warmed(h)

    def introspect(access: str) -> Any:
        return h.client.post("/oauth2/introspect", data={"token": access}, headers=basic(*who))

    access = body(token(h, *who))["access_token"]
    assert body(introspect(access))["active"] is True
    cli_run(h, "app", "disable", "Batch")
    assert introspect(access).status_code == 401
    cli_run(h, "app", "enable", "Batch")
    # Disabling ended the application's tokens; a new one is active again.
    assert body(introspect(access))["active"] is False
    access = body(token(h, *who))["access_token"]
    assert body(introspect(access))["active"] is True
    cli_run(h, "app", "rotate-secret", "Batch")
    assert introspect(access).status_code == 401


def test_a_wrong_secret_is_never_answered_from_the_cache(h: Harness) -> None:
    client_id, secret = warmed(h)
    for wrong in (secret[:-1], secret + "x", "", secret.upper()):
        if wrong == secret:
            continue
        answer = token(h, client_id, wrong) if wrong else token(h, client_id, "-")
        assert answer.status_code == 401


def test_every_change_to_an_application_moves_the_generation(h: Harness) -> None:
    database = h.app.services.db
    seen = [database.application_generation()]

    def moved() -> None:
        now = database.application_generation()
        assert now is not None and seen[-1] is not None and now > seen[-1]
        seen.append(now)

    with database.session(write=True) as db, db.begin():
        app, _ = directory.create_application(db, h.clock(), "Reports", scopes=["r:read"])
    moved()
    with database.session(write=True) as db, db.begin():
        found = db.get(Application, app.id)
        assert found is not None
        found.enabled = False
    moved()
    with database.session(write=True) as db, db.begin():
        found = db.get(Application, app.id)
        assert found is not None
        directory.set_resources(db, found, [API], h.clock())
    moved()
    with database.session(write=True) as db, db.begin():
        found = db.get(Application, app.id)
        assert found is not None
        db.delete(found)
    moved()
    # Reading applications, or changing something else, leaves it alone.
    with database.session(write=True) as db, db.begin():
        db.get(Application, 1)
    assert database.application_generation() == seen[-1]


def test_a_row_edited_by_hand_is_seen_once_the_snapshot_is_old(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL typed by an operator does not move the generation: the backstop is the
    snapshot's maximum age."""
    who = warmed(h)
    with h.app.services.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE applications SET enabled = :no WHERE client_id = :id"),
            {"no": False, "id": who[0]},
        )
    assert token(h, *who).status_code == 200  # still the cached success
    later = time.monotonic() + clients.CACHE_MAX_AGE + 1
    monkeypatch.setattr(clients.time, "monotonic", lambda: later)
    assert token(h, *who).status_code == 401


def test_the_machine_paths_make_one_statement_each(h: Harness) -> None:
    """Warm, each machine path is one statement: the client credentials grant is the
    guarded INSERT of its token (written only under the generation its cached client
    was read in); introspection reads the token joined with its application, its user
    and the generation; userinfo reads the token joined with its application and user."""
    who = warmed(h)
    access = body(token(h, *who))["access_token"]
    counter = QueryCounter(h.app.services.db.engine)
    assert token(h, *who).status_code == 200
    assert counter.count == 1
    counter.count = 0
    answer = h.client.post("/oauth2/introspect", data={"token": access}, headers=basic(*who))
    assert body(answer)["active"] is True
    assert counter.count == 1


def test_a_refusal_from_an_old_snapshot_is_checked_against_the_current_one(h: Harness) -> None:
    """A resource registered by another process a moment ago is granted at once, though
    this process's latest snapshot was read before it existed."""
    who = warmed(h)
    assert body(token(h, *who, resource=API))["error"] == "invalid_target"
    cli_run(h, "app", "add", "Orders", "--resource", API, "--resource-client", who[0])
    assert token(h, *who, resource=API).status_code == 200


def test_a_token_asked_while_a_disable_is_being_committed_waits_and_is_refused(
    h: Harness,
) -> None:
    """The guarded INSERT takes a share lock on the generation row: a change that has
    bumped it but not committed yet makes the token request wait, then see the new
    value and refuse — no token is written beside the change (under READ COMMITTED it
    would be, after the change's own revocation of the application's tokens)."""
    import threading

    who = warmed(h)
    answers: list[int] = []
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.scalars(select(Application).where(Application.client_id == who[0])).one()
        app.enabled = False
        db.flush()  # the generation is bumped (and locked) by this uncommitted change
        asking = threading.Thread(target=lambda: answers.append(token(h, *who).status_code))
        asking.start()
        asking.join(timeout=1.0)
        if h.backend != "sqlite":
            assert asking.is_alive(), "the token request did not wait for the change"
    asking.join(timeout=30)
    assert answers == [401]


def test_applications_changing_fast_never_refuse_an_unrelated_client(h: Harness) -> None:
    """Every change to any application moves the one generation; a client whose
    snapshot goes stale again and again is decided under the share-locked generation
    (ClientCache.locked) — it waits, it is never answered 503."""
    import threading

    who = warmed(h)
    access = body(token(h, *who))["access_token"]
    with h.app.services.db.session(write=True) as db, db.begin():
        other, _ = directory.create_application(db, h.clock(), "Busy")
        other_id = other.id
    stop = threading.Event()

    def keep_changing() -> None:
        count = 0
        while not stop.is_set():
            with h.app.services.db.session(write=True) as db, db.begin():
                found = db.get(Application, other_id)
                assert found is not None
                found.description = f"change {count}"
            count += 1

    changer = threading.Thread(target=keep_changing)
    changer.start()
    try:
        statuses = []
        for _ in range(40):
            statuses.append(token(h, *who).status_code)
            answer = h.client.post(
                "/oauth2/introspect", data={"token": access}, headers=basic(*who)
            )
            statuses.append(answer.status_code)
            assert answer.status_code != 200 or body(answer)["active"] is True
    finally:
        stop.set()
        changer.join()
    assert set(statuses) == {200}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_a_client_id_is_matched_exactly_on_every_database(factory: Any, backend: str) -> None:
    """MariaDB's collation matches ids that differ in letter case or trailing spaces;
    a client is only ever the id that was issued."""
    harness: Harness = factory(backend, "db", key_encryption_key=KEK, key_rotation_delay=0)
    with harness.app.services.db.session(write=True) as db, db.begin():
        app, secret = directory.create_application(db, harness.clock(), "Exact")
        client_id = app.client_id or ""
    assert token(harness, client_id, secret or "").status_code == 200
    for other in (client_id.upper(), client_id.lower(), client_id + " "):
        if other != client_id:
            assert token(harness, other, secret or "").status_code == 401
