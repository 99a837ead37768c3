"""The listings' paging (``listings.page_of``) on every database: a searched page is
found and counted in one statement (a window count), any other by two; both must give
the page and the total a plain Python reading of the same rows gives —
including a page past the end, the last partial page, and either sort order."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import delete

from passport.services import listings
from passport.storage.models import User

from support import Harness

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = [f"{prefix}{n:03d}" for prefix in ("ann", "bob", "cyd") for n in range(14)]


@pytest.fixture
def people(harness: Harness) -> Harness:
    """42 users: ann000…ann013, bob000…, cyd000…; every third one disabled."""
    with harness.app.services.db.session(write=True) as db, db.begin():
        db.execute(delete(User))
        for index, name in enumerate(NAMES):
            db.add(
                User(
                    username=name,
                    username_key=name,
                    username_skeleton=name,
                    display_name=name.upper(),
                    password_hash="x",
                    disabled=index % 3 == 0,
                    created_at=NOW,
                    password_changed_at=NOW,
                )
            )
    return harness


def expected(q: str | None, disabled: bool | None) -> list[str]:
    return sorted(
        name
        for index, name in enumerate(NAMES)
        if (not q or q.casefold() in name) and (disabled is None or (index % 3 == 0) == disabled)
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    q=st.sampled_from([None, "", "ann", "B", "0", "01", "013", "zz", "%", "_"]),
    disabled=st.sampled_from([None, True, False]),
    offset=st.integers(min_value=0, max_value=50),
    limit=st.integers(min_value=1, max_value=20),
    reverse=st.booleans(),
)
def test_a_page_and_its_total_are_what_the_rows_say(
    people: Harness, q: str | None, disabled: bool | None, offset: int, limit: int, reverse: bool
) -> None:
    wanted = expected(q, disabled)
    if reverse:
        wanted.reverse()
    with people.app.services.db.session() as db:
        found = listings.search_users(
            db, q, disabled, offset, limit, "-username" if reverse else "username"
        )
        shown = [user.username for user in found.items]
    assert found.total == len(wanted)
    assert shown == wanted[offset : offset + limit]
    assert (found.offset, found.limit) == (offset, limit)


def test_a_page_past_the_end_still_counts_the_matches(people: Harness) -> None:
    with people.app.services.db.session() as db:
        beyond = listings.search_users(db, "bob", None, 100, 10)
        nothing = listings.search_users(db, "nobody", None, 0, 10)
        everyone = listings.search_users(db, None, None, 100, 10)
    assert (beyond.items, beyond.total) == ([], 14)
    assert (nothing.items, nothing.total) == ([], 0)
    assert (everyone.items, everyone.total) == ([], 42)


def test_the_dashboards_counts_are_the_filtered_listings_totals(people: Harness) -> None:
    with people.app.services.db.session(write=True) as db, db.begin():
        for user in listings.search_users(db, "bob", None, 0, 5).items:
            user.email, user.email_key = f"{user.username}@example.com", f"{user.username}@x"
            user.email_verified = user.username.endswith(("0", "2"))
    with people.app.services.db.session() as db:
        counts = listings.user_counts(db)
        assert counts == listings.UserCounts(
            listings.search_users(db).total,
            listings.search_users(db, disabled=True).total,
            listings.search_users(db, unverified=True).total,
        )
        assert (counts.users, counts.disabled, counts.unverified) == (42, 14, 3)
