"""The console's forward-auth settings of an application: one ``update_application``
(rights, escalation, audit), its refusals, a Hypothesis property over the two fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from passport.storage.models import Application
from site_support import table_fingerprints
from web.test_console_applications import SETTINGS
from web.test_console_applications import app_id
from web.test_console_applications import app_page
from web.test_console_applications import audit
from web.test_console_applications import post_app
from web.test_console_applications import register_app
from web.test_console_applications import text

from support import Harness


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_hosts_and_rules_saved_shown_and_audited(factory: Any, backend: str) -> None:
    h: Harness = factory(backend)
    operator = h.administrator("operator", "apps:read", "apps:write")
    register_app(operator)
    saved = post_app(
        operator,
        h,
        **SETTINGS,
        forwardauthhosts="Wiki.Example.com\nwiki.example.com:8443",
        forwardauthrules="/admin/* admin\n\n/ read",
    )
    assert saved.status_code == 200, text(saved)
    with h.app.services.db.session() as db:
        app = db.get(Application, app_id(h, "Notebook"))
        assert app is not None
        assert [r.host for r in app.forward_auth_host_rows] == [
            "wiki.example.com",
            "wiki.example.com:8443",
        ]
        assert app.forward_auth_rules == ["/admin/* admin", "/ read"]
    [record] = audit(h, "app_update")
    assert "forwardAuthHosts" in (record.detail or "")
    page = text(app_page(operator, h, "Notebook"))
    assert "wiki.example.com\nwiki.example.com:8443</textarea>" in page
    assert "/admin/* admin\n/ read</textarea>" in page
    assert 'for="sforwardauthhosts"' in page and 'for="sforwardauthrules"' in page


def test_bad_forward_auth_settings_refused_nothing_changed(h: Harness) -> None:
    operator = h.administrator("operator", "apps:read", "apps:write")
    register_app(operator)
    other = register_app(operator, "Other")
    assert other
    assert (
        post_app(
            operator, h, "Other", action="update", forwardauthhosts="taken.example.com"
        ).status_code
        == 200
    )
    before = table_fingerprints(h)
    for field, value, status in [
        ("forwardauthhosts", "*.example.com", 400),
        ("forwardauthhosts", "https://x.example.com/", 400),
        ("forwardauthhosts", "x" * 7000, 400),
        ("forwardauthhosts", "taken.example.com", 409),
        ("forwardauthrules", "admin admin", 400),
        ("forwardauthrules", "/a/* b c", 400),
        ("forwardauthrules", "/é* x", 400),
    ]:
        refused = post_app(operator, h, action="update", **{field: value})
        assert refused.status_code == status, (field, value, text(refused))
        assert "Traceback" not in text(refused)
    assert table_fingerprints(h) == before


def test_anonymous_and_reader_cannot_change_them(h: Harness) -> None:
    operator = h.administrator("operator", "apps:read", "apps:write")
    register_app(operator)
    reader = h.administrator("reader", "apps:read")
    before = table_fingerprints(h)
    refused = post_app(reader, h, action="update", forwardauthhosts="x.example.com")
    assert refused.status_code == 403
    anonymous = h.new_client()
    answer = anonymous.post(
        "/admin/application",
        data={"id": "2", "action": "update", "forwardauthhosts": "x.example.com"},
    )
    assert answer.status_code in (302, 303, 403)
    assert table_fingerprints(h) == before


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hosts=st.text(max_size=60), rules=st.text(max_size=60))
def test_property_any_input_is_saved_or_refused_never_500(
    h: Harness, hosts: str, rules: str
) -> None:
    if not hasattr(h, "_operator"):
        operator = h.administrator("operator", "apps:read", "apps:write")
        register_app(operator)
        h._operator = operator  # type: ignore[attr-defined]
    answer = post_app(
        h._operator, h, action="update", forwardauthhosts=hosts, forwardauthrules=rules
    )  # type: ignore[attr-defined]
    assert answer.status_code in (200, 400, 409), text(answer)
