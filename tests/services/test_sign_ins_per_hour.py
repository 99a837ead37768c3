"""The dashboard's sign-ins per hour are counted by the database (GROUP BY the hour,
:class:`passport.storage.sql.hour_number`): on SQLite, MariaDB and PostgreSQL the buckets
are those the former Python loop over a day of rows gave for the same rows, hour
boundaries included."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta

from passport.services import listings
from passport.storage.models import AuditEvent

from support import Harness

NOW = datetime(2026, 3, 1, 12, 34, 56, 789012, tzinfo=UTC)
START = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
TICK = timedelta(microseconds=1)

# (when, event, outcome): each hour boundary from both sides, the window's ends, events
# that are not sign-ins, outcomes that are neither.
ROWS = [
    (START - TICK, "login", "success"),  # just before the window
    (START, "login", "success"),  # its first instant
    (START, "login", "failure"),
    (START + timedelta(hours=1) - TICK, "login", "failure"),  # the last instant of hour 0
    (START + timedelta(hours=1), "login", "success"),  # the first of hour 1
    (START + timedelta(hours=5, minutes=30), "login", "success"),
    (START + timedelta(hours=5, minutes=30), "login", "success"),
    (START + timedelta(hours=5, minutes=31), "login", "throttled"),  # neither
    (START + timedelta(hours=7), "logout", "success"),  # not a sign-in
    (NOW.replace(minute=0, second=0, microsecond=0) - TICK, "login", "failure"),  # hour 22
    (NOW.replace(minute=0, second=0, microsecond=0), "login", "success"),  # hour 23
    (NOW, "login", "failure"),
    (NOW + timedelta(minutes=20), "login", "success"),  # later in this hour
    (NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1), "login", "success"),
    (NOW - timedelta(days=3), "login", "failure"),  # long ago
]


def per_hour_in_python(rows: list[tuple[datetime, str]], hours: int = 24) -> list[tuple[int, int]]:
    """The former implementation: every row of the day read, bucketed in Python."""
    buckets = [[0, 0] for _ in range(hours)]
    for at, outcome in rows:
        index = int((at - START).total_seconds() // 3600)
        if 0 <= index < hours:
            buckets[index][0 if outcome == "success" else 1] += 1
    return [(ok, failed) for ok, failed in buckets]


def test_the_database_groups_sign_ins_by_hour_as_python_did(harness: Harness) -> None:
    with harness.app.services.db.session(write=True) as db, db.begin():
        for at, event, outcome in ROWS:
            db.add(AuditEvent(at=at, event=event, outcome=outcome, username="alice", detail=""))
    read_back = [
        (at, outcome)
        for at, event, outcome in ROWS
        if event == "login" and at >= START and outcome in ("success", "failure")
    ]
    expected = per_hour_in_python(read_back)
    assert expected[0] == (1, 2) and expected[1] == (1, 0) and expected[5] == (2, 0)
    assert expected[22] == (0, 1) and expected[23] == (2, 1)
    with harness.app.services.db.session() as db:
        assert listings.sign_ins_per_hour(db, NOW) == expected
        assert listings.sign_ins_per_hour(db, NOW, hours=1) == [(2, 1)]
        empty_day = listings.sign_ins_per_hour(db, NOW + timedelta(days=5))
        assert empty_day == [(0, 0)] * 24
