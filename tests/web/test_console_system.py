"""The console's system screens (issue 15): the signing keys (listed, rotated by ``admin``
through the same audited operation as ``passport keys rotate``), the health screen (its
parts, no secret), the audit log's live tail (its JSON read, its script at a hash URL, the
audit page's CSP) and the dashboard's active sessions."""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlalchemy import select

from console_support import user_id
from oidc_support import KEK
from oidc_support import form_of
from passport.cli import cli
from passport.config import SIGNING_ALGS
from passport.pages import render
from passport.storage.models import AuditEvent
from passport.storage.models import SigningKey

from support import STRONG
from support import Harness

SMTP_PASSWORD = "Sm7p-pa55word-not-for-pages"


def published_kids(h: Harness) -> set[str]:
    answer = h.new_client().get("/.well-known/jwks.json")
    assert answer.status_code == 200
    return {key["kid"] for key in answer.get_json()["keys"]}


def stored_kids(h: Harness) -> set[str]:
    with h.app.services.db.session() as db:
        return set(db.scalars(select(SigningKey.kid)))


def audit_rows(h: Harness, event: str) -> list[AuditEvent]:
    with h.app.services.db.session() as db:
        rows = list(db.scalars(select(AuditEvent).where(AuditEvent.event == event)))
        db.expunge_all()
    return rows


def keyed(factory: Any, backend: str = "sqlite", **overrides: Any) -> Harness:
    harness: Harness = factory(backend, key_encryption_key=KEK, **overrides)
    return harness


def rotate_in_console(client: Any) -> Any:
    page = client.get("/admin/keys")
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post("/admin/keys", data=form_of(page))


# -- keys ----------------------------------------------------------------------------------------
def test_keys_are_listed_and_a_rotation_is_published_and_audited_with_the_actor(
    factory: Any,
) -> None:
    h = keyed(factory, key_rotation_delay=3600)
    root = h.administrator("root", "admin")
    before = published_kids(h)  # the first key of each algorithm
    assert len(before) == len(SIGNING_ALGS)
    page = root.get("/admin/keys")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for kid in before:
        assert kid in text
    assert text.count("<td>signing</td>") == len(SIGNING_ALGS)
    assert 'href="/admin/keys"' in text and 'href="/admin/health"' in text

    done = root.post("/admin/keys", data=form_of(page))
    assert done.status_code == 302 and done.headers["Location"] == "/admin/keys?done=rotated"
    after = published_kids(h)
    new = after - before
    assert before < after and len(new) == len(SIGNING_ALGS)  # published at once
    shown = root.get(done.headers["Location"]).get_data(as_text=True)
    assert "New keys published" in shown
    assert shown.count("upcoming (published)") == len(SIGNING_ALGS)
    (record,) = audit_rows(h, "keys_rotate")
    assert record.actor_id == user_id(h, "root") and record.outcome == "success"
    assert set(json.loads(record.detail)["kids"]) == new


def test_a_console_user_without_admin_is_refused_the_keys_and_changes_nothing(
    factory: Any,
) -> None:
    h = keyed(factory)
    published_kids(h)
    helpdesk = h.administrator("helpdesk", "users:read", "users:write", "audit:read")
    assert helpdesk.get("/admin/keys").status_code == 403
    assert 'href="/admin/keys"' not in helpdesk.get("/admin").get_data(as_text=True)
    cookie = helpdesk.get_cookie("passport_csrf")
    assert cookie is not None  # a valid token: only the right stops the forged form
    kids = stored_kids(h)
    forged = helpdesk.post("/admin/keys", data={"csrf": cookie.value, "action": "rotate"})
    assert forged.status_code == 403
    assert "admin" in forged.get_data(as_text=True)
    assert stored_kids(h) == kids and audit_rows(h, "keys_rotate") == []


def test_the_console_and_the_cli_rotate_through_one_operation_and_write_the_same_record(
    factory: Any,
) -> None:
    def record(h: Harness) -> tuple[str, str, str, list[str], int]:
        (row,) = audit_rows(h, "keys_rotate")
        detail = json.loads(row.detail)
        return (
            row.event,
            row.outcome,
            row.username,
            sorted(set(detail) - {"actor"}),
            len(detail["kids"]),
        )

    console = keyed(factory)
    published_kids(console)
    assert rotate_in_console(console.administrator("root", "admin")).status_code == 302
    through_console = record(console)
    (row,) = audit_rows(console, "keys_rotate")
    assert row.actor_id == user_id(console, "root") and "actor" not in json.loads(row.detail)

    command = keyed(factory)
    published_kids(command)
    env = {"PASSPORT_PUBLIC_URL": command.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}
    result = CliRunner().invoke(
        cli, ["keys", "rotate", "--database-url", command.settings.database_url], env=env
    )
    assert result.exit_code == 0, result.output
    assert through_console == record(command)
    (row,) = audit_rows(command, "keys_rotate")
    assert row.actor_id is None
    assert json.loads(row.detail)["actor"] == f"cli:{getpass.getuser()}"
    listed = CliRunner().invoke(
        cli,
        ["keys", "list", "--json", "--database-url", command.settings.database_url],
        env=env,
    )
    assert listed.exit_code == 0, listed.output
    states = {row["Kid"]: row["State"] for row in json.loads(listed.output)}
    assert set(json.loads(row.detail)["kids"]) <= set(states)
    assert sorted(states.values()).count("signing") == len(SIGNING_ALGS)


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite makes a key beside its file
def test_without_a_key_encryption_key_the_keys_screen_says_so(factory: Any, backend: str) -> None:
    h: Harness = factory(backend)
    assert not h.app.services.keys.configured
    root = h.administrator("root", "admin")
    page = root.get("/admin/keys")
    assert page.status_code == 200
    assert "set PASSPORT_KEY_ENCRYPTION_KEY" in page.get_data(as_text=True)
    cookie = root.get_cookie("passport_csrf")
    assert cookie is not None
    refused = root.post("/admin/keys", data={"csrf": cookie.value, "action": "rotate"})
    assert refused.status_code == 409
    assert stored_kids(h) == set() and audit_rows(h, "keys_rotate") == []


# -- health --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_health_shows_its_parts_and_no_secret(factory: Any, backend: str) -> None:
    h: Harness = factory(
        backend, smtp_url=f"smtps://mailer:{SMTP_PASSWORD}@127.0.0.1:1", key_encryption_key=KEK
    )
    reader = h.administrator("reader", "users:read")  # any console right
    page = reader.get("/admin/health")
    assert page.status_code == 200, page.get_data(as_text=True)
    text = page.get_data(as_text=True)
    for part in (
        "Version",
        "schema current",
        "Redis</dt><dd>not configured",
        "Mail outbox",
        "Back-channel logout",
        "Active sessions (database)</dt><dd>",
        "Ready to serve</dt><dd>yes",
    ):
        assert part in text, part
    url = h.settings.database_url
    assert SMTP_PASSWORD not in text and "mailer" not in text
    assert url not in text and "127.0.0.1" not in text
    password = re.search(r"://[^:/@]*:([^@]+)@", url)
    if backend == "postgresql":
        assert password is not None
    if password:
        assert password.group(1) not in text
    for kid in published_kids(h):
        assert kid not in text  # no key material either
    assert h.new_client().get("/admin/health").status_code == 302


def test_health_and_the_readiness_probe_agree_on_a_schema_behind(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from passport.storage import migrate

    root = h.administrator("root", "admin")
    assert "Ready to serve</dt><dd>yes" in root.get("/admin/health").get_data(as_text=True)
    monkeypatch.setattr(migrate, "is_current", lambda engine: False)
    text = root.get("/admin/health").get_data(as_text=True)
    assert "not current" in text and "Ready to serve</dt><dd>no" in text
    assert h.new_client().get("/readyz").status_code == 503


def test_the_dashboard_counts_active_sessions(h: Harness) -> None:
    root = h.administrator("root", "admin")
    before = h.app.services.sessions.count_active(h.clock())
    assert f"Active sessions</dt><dd>{before}</dd>" in root.get("/admin").get_data(as_text=True)
    h.administrator("other", "users:read")
    now = h.app.services.sessions.count_active(h.clock())
    assert now > before
    assert f"Active sessions</dt><dd>{now}</dd>" in root.get("/admin").get_data(as_text=True)


# -- the live tail -------------------------------------------------------------------------------
def add_events(h: Harness, count: int, **values: Any) -> None:
    now = h.clock()
    with h.app.services.db.session(write=True) as db, db.begin():
        for index in range(count):
            db.add(
                AuditEvent(
                    at=now + timedelta(seconds=index),
                    event=values.get("event", "probe"),
                    outcome=values.get("outcome", "success"),
                    username=values.get("username", "bob"),
                    application=values.get("application", ""),
                    ip="192.0.2.1",
                    user_agent="",
                    detail=values.get("detail", ""),
                )
            )


def newest_id(h: Harness) -> int:
    with h.app.services.db.session() as db:
        return int(db.scalar(select(func.max(AuditEvent.id))) or 0)


def test_the_tail_returns_the_newest_events_after_an_id_with_the_filters(h: Harness) -> None:
    auditor = h.administrator("auditor", "audit:read")
    mark = newest_id(h)
    add_events(h, 3, event="probe", username="bob")
    add_events(h, 2, event="probe", username="carol", detail="<img src=x onerror=alert(1)>")
    answer = auditor.get(f"/admin/audit/tail?after={mark}&event=probe")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.mimetype == "application/json"
    body = answer.get_json()
    ids = [e["id"] for e in body["events"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True) and body["last"] == ids[0]
    assert body["events"][0]["detail"] == "<img src=x onerror=alert(1)>"  # data, not HTML
    only_bob = auditor.get(f"/admin/audit/tail?after={mark}&event=probe&user=bob").get_json()
    assert {e["username"] for e in only_bob["events"]} == {"bob"} and len(only_bob["events"]) == 3
    later = auditor.get(f"/admin/audit/tail?after={body['last']}&event=probe").get_json()
    assert later == {"events": [], "last": body["last"]}
    add_events(h, 150, event="burst")
    capped = auditor.get(f"/admin/audit/tail?after={mark}&event=burst").get_json()
    assert len(capped["events"]) == 100
    assert capped["last"] == newest_id(h)  # the newest hundred, not the oldest
    everything = auditor.get("/admin/audit/tail").get_json()
    assert len(everything["events"]) == 100


@pytest.mark.parametrize(
    "after",
    ["-1", "abc", "1e5", "1.0", "0x10", "\uff19", "9" * 30, str(2**63), " 1", "1;DROP TABLE x"],
)
def test_hostile_after_values_are_refused_or_empty_never_a_500(h: Harness, after: str) -> None:
    auditor = h.administrator("auditor", "audit:read")
    answer = auditor.get("/admin/audit/tail", query_string={"after": after})
    assert answer.status_code in (200, 400), (after, answer.status_code)
    if answer.status_code == 200:
        assert answer.get_json()["events"] == []
    assert "Traceback" not in answer.get_data(as_text=True)


def test_the_tail_gives_no_data_without_the_right(h: Harness) -> None:
    anonymous = h.new_client().get("/admin/audit/tail?after=0")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    assert b"events" not in anonymous.get_data()
    helpdesk = h.administrator("helpdesk", "users:read")
    refused = helpdesk.get("/admin/audit/tail?after=0")
    assert refused.status_code == 403 and b'"events"' not in refused.get_data()
    assert h.register("mallory").status_code == 200
    h.login("mallory")
    assert h.client.get("/admin/audit/tail?after=0").status_code == 403


def test_the_tail_script_is_served_at_its_hash_url_and_only_the_audit_page_allows_it(
    h: Harness,
) -> None:
    script = h.new_client().get(render.CONSOLE_JS_URL)
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in script.headers["Cache-Control"]
    digest = hashlib.sha256(script.get_data()).hexdigest()[:16]
    assert render.CONSOLE_JS_URL == f"/assets/console-{digest}.js"
    code = script.get_data(as_text=True)
    assert "textContent" in code and "innerHTML" not in code and "eval(" not in code

    root = h.administrator("root", "admin")
    page = root.get("/admin/audit?event=login")
    text = page.get_data(as_text=True)
    csp = page.headers["Content-Security-Policy"]
    # The script by its exact URL, not 'self' (review: a JSONP answer is script-shaped).
    (pinned,) = re.findall(r"script-src ([^;]+);", csp)
    assert pinned.endswith(render.CONSOLE_JS_URL) and " " not in pinned.strip(), csp
    assert "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    scripts = re.findall(r"<script[^>]*>", text)
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(script.get_data()).digest()).decode()
    assert scripts == [f'<script src="{render.CONSOLE_JS_URL}" integrity="{integrity}" defer>']
    assert "data-tail hidden" in text  # shown by the script only: the page works without
    assert 'name="event" value="login"' in text  # the filters still work
    for other in ("/admin", "/admin/health", "/admin/keys", "/admin/users"):
        answer = root.get(other)
        assert "script-src" not in answer.headers["Content-Security-Policy"], other
        assert "<script" not in answer.get_data(as_text=True), other
    second_page = root.get("/admin/audit?offset=25").get_data(as_text=True)
    assert "data-tail " not in second_page  # following is for the newest events only


# -- hostile input, as a property ----------------------------------------------------------------
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "rotate ", "ROTATE", "rotate\x00", "' OR 1=1 --", "9" * 5000]),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(action=HOSTILE, after=HOSTILE, event=HOSTILE)
def test_hostile_keys_forms_and_tail_queries_change_nothing_and_never_fail(
    factory: Any, action: str, after: str, event: str
) -> None:
    h = HOSTILE_HARNESS.get("h")
    if h is None:
        h = HOSTILE_HARNESS["h"] = keyed(factory)
        HOSTILE_HARNESS["root"] = h.administrator("root", "admin")
        published_kids(h)
        HOSTILE_HARNESS["root"].get("/admin/keys")  # the browser's CSRF cookie
    root = HOSTILE_HARNESS["root"]
    cookie = root.get_cookie("passport_csrf")
    assert cookie is not None
    kids = stored_kids(h)
    posted = root.post("/admin/keys", data={"csrf": cookie.value, "action": action})
    if action == "rotate":
        assert posted.status_code == 302
    else:
        assert posted.status_code in (400, 403, 413), (action, posted.status_code)
        assert stored_kids(h) == kids
    tail = root.get("/admin/audit/tail", query_string={"after": after, "event": event})
    # 414: a query string over PASSPORT_MAX_QUERY_BYTES is refused before any screen.
    assert tail.status_code in (200, 400, 414), (after, event, tail.status_code)
    assert "Traceback" not in tail.get_data(as_text=True)


HOSTILE_HARNESS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _fresh_hostile_harness() -> Any:
    HOSTILE_HARNESS.clear()
    yield
    HOSTILE_HARNESS.clear()


# -- the live tail in a browser ------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[1] / "clients" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.live
@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_following_the_audit_log_in_a_browser_shows_new_events_as_text(
    live_server: Any, tmp_path: Path
) -> None:
    """Debian's Chromium against a live ``passport serve``: "Follow" switched on, a failed
    sign-in elsewhere appears at the top of the table as text, under the page's CSP."""
    from playwright.sync_api import sync_playwright

    from passport.config import load_settings
    from passport.services import directory
    from passport.storage.db import Database
    from passport.storage.models import Application

    url = f"sqlite:///{tmp_path / 'tail.sqlite3'}"
    server = live_server(url)
    base = server.url
    for name in ("root", "mallory"):
        registered = requests.post(
            base + "/Account/register",
            data={"username": name, "password": STRONG},
            headers={"Origin": base},
            timeout=30,
        )
        assert registered.status_code == 200, registered.text
    database = Database(load_settings(environ={}, overrides={"database_url": url}))
    with database.session(write=True) as db, db.begin():
        passport, root = db.get(Application, 1), directory.find_user(db, "root")
        assert passport is not None and root is not None
        admin = directory.find_permission(db, passport, "admin")
        assert admin is not None
        directory.grant(db, admin, user=root)
    database.dispose()

    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        page = browser.new_context(viewport={"width": 320, "height": 720}).new_page()
        page.set_default_timeout(15_000)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda error: console.append(f"error: {error}"))
        page.goto(f"{base}/login?next=/admin/audit%3Fevent%3Dlogin")
        page.get_by_label("Username or email").fill("root")
        page.get_by_label("Password").fill(STRONG)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{base}/admin/audit?event=login")
        follow = page.get_by_label("Follow: show new events as they happen")
        follow.check()
        hostile = "<b>mallory</b>"
        requests.post(
            base + "/Account/login",
            data={"username": hostile, "password": "wrong password entirely"},
            headers={"Origin": base},
            timeout=30,
        )
        page.locator("tbody tr", has_text=hostile).first.wait_for()
        assert page.locator("tbody b").count() == 0  # text, never markup
        assert "new event" in (page.get_by_role("status").text_content() or "")
        follow.uncheck()
        # axe-core (WCAG 2 A/AA) over the new screens at 320 px, in a context that shares
        # the cookies and bypasses the CSP to inject it; nothing wider than the window.
        checker = browser.new_context(
            bypass_csp=True,
            storage_state=page.context.storage_state(),
            viewport={"width": 320, "height": 720},
        ).new_page()
        problems: dict[str, Any] = {}
        for screen in ("/admin/keys", "/admin/health", "/admin/audit", "/admin"):
            checker.goto(base + screen)
            checker.add_script_tag(path=str(AXE))  # npm ci in tests/clients (make test)
            found = checker.evaluate(
                "async () => (await axe.run(document, {runOnly: {type: 'tag', values: "
                "['wcag2a', 'wcag2aa', 'wcag21aa']}})).violations.map(v => v.id)"
            )
            if found:
                problems[screen] = found
            wide = checker.evaluate(
                "() => document.documentElement.scrollWidth > window.innerWidth"
            )
            assert not wide, screen
        browser.close()
    assert problems == {}, problems
    assert not [m for m in console if "Content Security Policy" in m], console
    assert not [m for m in console if m.startswith("error")], console


def test_the_new_secret_page_loads_the_script_for_its_copy_button_and_no_other_page_does(
    h: Harness,
) -> None:
    root = h.administrator("root", "admin")
    page = root.get("/admin/applications")
    made = root.post(
        "/admin/applications",
        data={"csrf": form_of(page)["csrf"], "name": "Copied", "redirecturis": ""},
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    text = made.get_data(as_text=True)
    (pinned,) = re.findall(r"script-src ([^;]+);", made.headers["Content-Security-Policy"])
    assert pinned.endswith(render.CONSOLE_JS_URL) and "'self'" not in pinned
    assert re.findall(r"<script[^>]*>", text) == [
        f'<script src="{render.CONSOLE_JS_URL}" integrity="{render.CONSOLE_JS_INTEGRITY}" defer>'
    ]
    assert 'data-copy="secret" aria-describedby="copied" hidden' in text
    app_page = root.get("/admin/applications?q=Copied")
    assert "<script" not in app_page.get_data(as_text=True)
    assert "script-src" not in app_page.headers["Content-Security-Policy"]
