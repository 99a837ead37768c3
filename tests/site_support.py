"""A Passport with a signed-in administrator and a registered application's origin.

Used by the cross-origin tests and the hostile-input property test.  The site's
``public_url`` is the test client's own address, so Passport's own origin is
known and fixed (``SITE_ORIGIN``), whatever the database or session store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import table
from sqlalchemy import text

from passport.services import directory
from passport.storage.models import Application

from support import STRONG
from support import Harness
from support import PassportClient

SITE_ORIGIN = "http://localhost"  # werkzeug's test client talks to http://localhost/
APP_ORIGIN = "https://wiki.example.com"
APP_NAME = "Wiki"
ADMIN = "root"
# Tables whose rows a refused request may legitimately add: failed logins and password
# checks are audited (durably) and counted by the throttle, whatever the answer.
FAILURE_BOOKKEEPING = frozenset({"audit_events", "throttle_counters"})


@dataclass
class Site:
    harness: Harness
    admin: PassportClient
    client_id: str
    client_secret: str

    def same_origin(self) -> dict[str, str]:
        return {"Origin": SITE_ORIGIN}


def grant_admin(h: Harness, username: str) -> None:
    """Give ``username`` Passport's ``admin`` right (idempotent)."""
    with h.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, username)
        passport = db.get(Application, 1)
        assert user is not None and passport is not None
        permission = directory.find_permission(db, passport, "admin")
        assert permission is not None
        directory.grant(db, permission, user=user)


def sign_in(h: Harness, username: str, password: str = STRONG) -> PassportClient:
    client = h.new_client()
    response = client.post(
        "/Account/login",
        data={"username": username, "password": password},
        headers={"Origin": SITE_ORIGIN},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


def build_site(h: Harness) -> Site:
    """An administrator ``root`` signed in, and application ``Wiki`` registered with
    ``APP_ORIGIN`` and a permission ``edit`` (created through the administration API)."""
    assert h.settings.public_origin == SITE_ORIGIN, "build the harness with public_url"
    registered = h.register(ADMIN, headers={"Origin": SITE_ORIGIN})
    assert registered.status_code == 200, registered.get_data(as_text=True)
    grant_admin(h, ADMIN)
    admin = sign_in(h, ADMIN)
    created = admin.post(
        "/Applications/create",
        data={"name": APP_NAME, "origins": APP_ORIGIN},
        headers={"Origin": SITE_ORIGIN},
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    answer = json.loads(created.get_data(as_text=True))["Data"]
    permission = admin.post(
        "/Applications/addPermission",
        data={"application": APP_NAME, "name": "edit"},
        headers={"Origin": SITE_ORIGIN},
    )
    assert permission.status_code == 200, permission.get_data(as_text=True)
    h.app.forget_origins()
    return Site(h, admin, answer["Application"]["ClientId"], answer["ClientSecret"])


def table_fingerprints(h: Harness) -> dict[str, tuple[int, str]]:
    """Every table of the migrated schema: its row count and a digest of its rows."""
    engine = h.app.services.db.engine
    names = sorted(inspect(engine).get_table_names())
    prints: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        for name in names:
            if name == "alembic_version":
                continue
            rows = conn.execute(select(text("*")).select_from(table(name))).all()
            lines = sorted(repr(tuple(row)) for row in rows)
            digest = hashlib.sha256("\n".join(lines).encode("utf-8", "backslashreplace"))
            prints[name] = (len(rows), digest.hexdigest())
    return prints


def audit_outcomes_since(h: Harness, count_before: int) -> list[tuple[str, str]]:
    """(event, outcome) of the audit rows after the first ``count_before`` (by id)."""
    with h.app.services.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT event, outcome FROM audit_events ORDER BY id")).all()
    return [(str(r[0]), str(r[1])) for r in rows[count_before:]]


def unexpected_writes(
    h: Harness, before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]
) -> dict[str, Any]:
    """Tables that a refused request changed, beyond failure bookkeeping.

    Audit rows may only be added, never changed or removed, and only with an outcome
    other than ``success``; throttle counters may change (a failed password check).
    """
    changed: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) == after.get(name):
            continue
        if name == "throttle_counters":
            continue
        if name == "audit_events":
            count_before = before[name][0]
            if after[name][0] > count_before:
                added = audit_outcomes_since(h, count_before)
                if all(outcome != "success" for _event, outcome in added):
                    continue
                changed[name] = added
                continue
        changed[name] = (before.get(name), after.get(name))
    return changed
