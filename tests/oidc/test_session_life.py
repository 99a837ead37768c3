"""Single sign-on keeps the Passport session alive: a user who goes through
``/oauth2/authorize`` (and ``/consent``) now and then is active, so the sliding expiry
(``sessions.touch``, queued by ``RequestContext.login_session`` when ``needs_touch``)
runs for these requests exactly as for the API's."""

from __future__ import annotations

from typing import Any

import pytest

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import authorize
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import handle_of
from oidc_support import ids
from oidc_support import query
from oidc_support import seed
from oidc_support import wiki_request
from passport.oidc.pending import BROWSER_COOKIE

from support import Harness

IDLE = 30 * 60  # the idle timeout: shorter than the two hours of the test
STEP = 20 * 60  # the user comes back through an application every 20 minutes


COMBOS = [("sqlite", "db"), ("mariadb", "db"), ("postgresql", "redis")]


@pytest.fixture(params=COMBOS, ids=[f"{b}-{s}" for b, s in COMBOS])
def idle_h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    backend, store = request.param
    harness: Harness = factory(
        backend,
        store,
        key_encryption_key=KEK,
        key_rotation_delay=0,
        session_idle_timeout=IDLE,
    )
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


def _sign_in(h: Harness) -> None:
    answer = h.client.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_authorize_every_20_minutes_keeps_the_session(idle_h: Harness) -> None:
    """Signed in once, then only ``/oauth2/authorize`` (a first-party application: the
    code comes at once) every 20 minutes for two hours: never sent to ``/login``."""
    h = idle_h
    _sign_in(h)
    first_party(h)
    for step in range(7):
        h.clock.advance(seconds=STEP)
        answer = authorize(h, **wiki_request(h, state=f"s{step}"))
        assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
        location = answer.headers["Location"]
        assert not location.startswith("/login"), f"sent to sign in after {(step + 1) * 20} min"
        assert "code" in query(answer), location


def test_consent_keeps_the_session(idle_h: Harness) -> None:
    """Through the consent page (``prompt=consent`` every time) every 20 minutes: the
    session slides too."""
    h = idle_h
    _sign_in(h)
    for step in range(7):
        h.clock.advance(seconds=STEP)
        asked = authorize(h, **wiki_request(h, prompt="consent", state=f"c{step}"))
        handle = handle_of(asked)
        assert asked.headers["Location"].startswith("/consent?"), (step, asked.headers)
        page = h.client.get(f"/consent?authorization={handle}")
        assert page.status_code == 200, page.get_data(as_text=True)[:300]
        h.clock.advance(seconds=5 * 60)
        given = h.client.post("/consent", data=form_of(page) | {"decision": "allow"})
        assert given.status_code == 302, given.get_data(as_text=True)[:300]
        assert "code" in query(given), given.headers["Location"]
    assert h.client.get_cookie(BROWSER_COOKIE) is not None
    assert ids(h)["client_id"]
