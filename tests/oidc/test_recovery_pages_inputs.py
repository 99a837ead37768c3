"""Hostile input to the pages that links sent by mail open — ``/password/forgot``,
``/password/reset``, ``/email/verify``, ``/invite``, GET and POST — in an anonymous
browser and in a signed-in administrator's.

Every field gets missing, empty, huge (over the pages' 8192 per field, over the body
limit), JSON of the wrong types, unicode oddities, NUL, SQL, HTML and header injection,
URL and path tricks; every token a wrong-purpose, random, used and expired one.  Each
answer is a page under the pages' Content-Security-Policy with the right status and the
error shown, never a 5xx, a stack trace, SQL or a secret, input reflected escaped, and a
refused request stores nothing.  Then CSRF (every post without this browser's token or
from another origin: 403, nothing changed), no enumeration on ``/password/forgot``
(answers and timing) with its throttle, and Hypothesis over every field.

Examples per property: ``PASSPORT_TEST_HYPOTHESIS=fast|default|thorough``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st

from mail_inputs_support import ALICE
from mail_inputs_support import CAROL
from mail_inputs_support import DORA
from mail_inputs_support import UNKNOWN
from mail_inputs_support import MailWorld
from mail_inputs_support import deliver
from mail_inputs_support import fingerprints
from mail_inputs_support import leaks
from mail_inputs_support import mail_world
from mail_inputs_support import outbox
from mail_inputs_support import random_token
from mail_inputs_support import refused_writes
from mail_inputs_support import rows
from passport.pages.render import CSRF_COOKIE
from passport.pages.render import FORM_EXPIRED
from passport.pages.render import PAGE_CSP
from passport.pages.render import SCRIPT_PAGE_CSP
from second_factor_support import csrf
from site_support import APP_ORIGIN
from site_support import SITE_ORIGIN
from site_support import grant_admin
from site_support import sign_in

from support import STRONG
from support import PassportClient

PROFILES = {"fast": (10, 4), "default": (150, 30), "thorough": (1200, 200)}
PROFILE = os.environ.get("PASSPORT_TEST_HYPOTHESIS", "default")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"PASSPORT_TEST_HYPOTHESIS must be one of {', '.join(PROFILES)}")

OTHER = "another strong passphrase 9"
MISSING = object()
HUGE = "x" * 70_000  # over max_body_bytes (65536)
LONG = "x" * 8193  # over the pages' 8192 per field, under the body limit
EVIL = "https://evil.example"
PAGES = ["/password/forgot", "/password/reset", "/email/verify", "/invite"]
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def lite(factory: Any) -> MailWorld:
    return mail_world(factory)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, factory: Any) -> MailWorld:
    return mail_world(factory, request.param)


# -- a browser ---------------------------------------------------------------------------------


@dataclass
class Browser:
    client: PassportClient
    token: str  # this browser's CSRF token (its cookie is set)


def browser(w: MailWorld, who: str) -> Browser:
    """A browser that has opened ``/password/forgot`` (so it holds a CSRF cookie): an
    anonymous one, or the signed-in administrator's."""
    client = w.admin if who == "admin" else w.anonymous()
    page = client.get("/password/forgot")
    assert page.status_code == 200
    return Browser(client, csrf(page))


def post(
    b: Browser,
    path: str,
    fields: dict[str, Any],
    *,
    origin: str | None = SITE_ORIGIN,
    as_json: bool = False,
    with_csrf: bool = True,
) -> Any:
    values = {k: v for k, v in fields.items() if v is not MISSING}
    if with_csrf:
        values = {"csrf": b.token, **values}
    headers = {"Origin": origin} if origin else {}
    if as_json or any(not isinstance(v, str) for v in values.values()):
        return b.client.open(
            path,
            method="POST",
            data=json.dumps(values),
            content_type="application/json",
            headers=headers,
        )
    return b.client.open(path, method="POST", data=values, headers=headers)


def get(b: Browser, path: str, fields: dict[str, Any]) -> Any:
    values = {k: v for k, v in fields.items() if v is not MISSING}
    return b.client.get(path, query_string=values)


def page_of(answer: Any, echoed: list[str] | None = None) -> str:
    """The page, after the checks every page answer must pass: no 5xx, HTML under the
    pages' CSP, never cached, nothing leaked (but what the browser typed in a field
    that is no password, ``echoed``: the form shows it again)."""
    body = answer.get_data(as_text=True)
    assert answer.status_code < 500, (answer.status_code, body[-500:])
    assert answer.mimetype == "text/html", (answer.status_code, answer.mimetype, body[:300])
    assert answer.headers["Content-Security-Policy"] == PAGE_CSP
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "same-origin"
    assert not leaks(body, echoed or []), (leaks(body, echoed or []), body[-500:])
    assert SCRIPT not in body and "<script" not in body  # reflected input is escaped
    return str(body)


def refused_page(answer: Any, status: int) -> str:
    body = page_of(answer)
    assert answer.status_code == status, (answer.status_code, status, visible(body))
    shown = 'role="alert"' in body or "Something went wrong" in body
    assert shown, visible(body)
    return body


def visible(body: str) -> str:
    """The words of a page (no style, no tags), for assertion messages."""
    return re.sub(r"\s+", " ", re.sub(r"(?s)<style>.*</style>|<[^>]+>", " ", body)).strip()[:300]


# -- the pages' fields and their hostile values ----------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    value: Any  # a string, MISSING, or a JSON value (a JSON body)
    status: int


HEADER_INJECTIONS = [
    "alice@example.com\r\nBcc: mallory@evil.example",
    "alice@example.com\nTo: mallory@evil.example",
    "alice@example.com\x85Bcc:mallory@evil.example",
    "alice@example.com\u2028Bcc:mallory@evil.example",
    "alice@example.com%0d%0aBcc:mallory@evil.example",
]
TYPES = [
    Case("JSON number", 5, 400),
    Case("JSON list", ["x"], 400),
    Case("JSON object", {"a": "x"}, 400),
    Case("JSON true", True, 400),
    Case("JSON null", None, 400),
]
TRANSPORT = [
    Case("over 8192", LONG, 400),
    Case("NUL", "a\x00b", 400),
    Case("over the body limit", HUGE, 413),
]
EMAILS = [
    Case("missing", MISSING, 400),
    Case("empty", "", 400),
    Case("blank", "  ", 400),
    Case("255 characters", "a" * 243 + "@example.com", 400),
    *[Case(f"header injection {i}", v, 400) for i, v in enumerate(HEADER_INJECTIONS)],
    Case("right-to-left override", "\u202ealice@example.com", 400),
    Case("zero-width space", "ali\u200bce@example.com", 400),
    Case("HTML", SCRIPT + "@example.com", 400),
    Case("HTML in the domain", "a@" + SCRIPT, 400),
    Case("two addresses", "mallory,alice@example.com", 400),
    Case("a display name", "Mallory <mallory@evil.example>", 400),
    Case("SQL", "' OR '1'='1' --", 400),
    Case("a path", "../../etc/passwd", 400),
    Case("a URL", "https://evil.example/@example.com", 400),
    *TRANSPORT,
    *TYPES,
]
TOKENS = [
    Case("missing", MISSING, 400),
    Case("empty", "", 400),
    Case("blank", " ", 400),
    Case("random, the right form", "x" * 43, 400),
    Case("65 characters", "x" * 65, 400),
    Case("SQL", "' OR '1'='1' --", 400),
    Case("HTML", SCRIPT, 400),
    Case("a path", "../../../etc/passwd", 400),
    Case("a URL", "https://evil.example/?token=x", 400),
    Case("unicode", "\uff54\uff4f\uff4b\uff45\uff4e" * 8, 400),
    *TRANSPORT,
    *TYPES,
]
NEW_PASSWORDS = [
    Case("missing", MISSING, 400),
    Case("empty", "", 400),
    Case("too short", "short", 400),
    Case("common", "passwordpassword", 400),
    Case("too few characters", "abababababababab", 400),
    *TRANSPORT,
    *TYPES,
]
USERNAMES = [
    Case("missing", MISSING, 400),
    Case("empty", "", 400),
    Case("65 characters", "u" * 65, 400),
    Case("taken", "root", 409),
    Case("taken, full-width", "\uff41lice", 409),
    Case("right-to-left override", "\u202ecarol", 400),
    Case("a space", "car ol", 400),
    Case("HTML", SCRIPT, 400),
    Case("SQL", "carol' OR '1'='1", 400),
    *TRANSPORT,
    *TYPES,
]
DISPLAY_NAMES = [
    Case("129 characters", "d" * 129, 400),
    Case("right-to-left override", "\u202eCarol", 400),
    Case("a line break", "Carol\r\nBcc: mallory@evil.example", 400),
    *TRANSPORT,
    *[c for c in TYPES if c.value is not None],
]

IN_THE_URL = [c for c in TOKENS if isinstance(c.value, str) and c.value not in (LONG, HUGE)] + [
    Case("4000 characters", "x" * 4000, 400),  # a URL over max_query_bytes is 414: below
]


@dataclass(frozen=True)
class Form:
    """A page's form: its valid fields (one is then spoilt) and each field's cases."""

    path: str
    method: str
    good: Any  # (MailWorld) -> dict[str, str]
    cases: dict[str, list[Case]]


FORMS = [
    Form("/password/forgot", "POST", lambda w: {"email": UNKNOWN}, {"email": EMAILS}),
    Form("/email/verify", "POST", lambda w: {"email": UNKNOWN}, {"email": EMAILS}),
    Form(
        "/password/reset",
        "GET",
        lambda w: {"token": w.reset},
        {"token": [TOKENS[0], *IN_THE_URL]},
    ),
    Form(
        "/email/verify",
        "GET",
        lambda w: {"token": w.verify},
        {"token": IN_THE_URL},  # no token at all: the form that asks for an address
    ),
    Form(
        "/invite",
        "GET",
        lambda w: {"token": w.invite},
        {"token": [TOKENS[0], *IN_THE_URL]},
    ),
    Form(
        "/password/reset",
        "POST",
        lambda w: {"token": w.reset, "newpassword": OTHER, "confirm": OTHER},
        {"token": TOKENS, "newpassword": NEW_PASSWORDS},
    ),
    Form(
        "/email/verify",
        "POST",
        lambda w: {"token": w.verify},
        {"token": [c for c in TOKENS if c.value is not MISSING and c.value is not None]},
    ),
    Form(
        "/invite",
        "POST",
        lambda w: {"token": w.invite, "username": "carol", "password": OTHER, "confirm": OTHER},
        {
            "token": TOKENS,
            "username": USERNAMES,
            "password": NEW_PASSWORDS,
            "displayname": DISPLAY_NAMES,
        },
    ),
]
FIELDS = [(f, name) for f in FORMS for name in f.cases]


def spoilt(form: Form, w: MailWorld, name: str, value: Any) -> dict[str, Any]:
    fields = {**form.good(w), name: value}
    if name in ("newpassword", "password") and isinstance(value, str):
        fields["confirm"] = value  # typed twice, as the form asks
    return fields


def send(b: Browser, form: Form, fields: dict[str, Any]) -> Any:
    if form.method == "GET":
        return get(b, form.path, fields)
    return post(b, form.path, fields)


@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize(
    ("form", "name"), FIELDS, ids=[f"{f.method}{f.path}-{n}" for f, n in FIELDS]
)
def test_each_hostile_value_gets_its_error_page_and_stores_nothing(
    lite: MailWorld, form: Form, name: str, who: str
) -> None:
    b = browser(lite, who)
    for case in form.cases[name]:
        before = fingerprints(lite.h)
        answer = send(b, form, spoilt(form, lite, name, case.value))
        where = (form.method, form.path, name, who, case.label)
        try:
            refused_page(answer, case.status)
        except AssertionError as failed:
            raise AssertionError(where) from failed
        assert refused_writes(lite.h, before) == {}, where
    # The valid form still goes through: the refusals were about the values.
    done = send(b, form, form.good(lite))
    assert done.status_code == 200, visible(page_of(done))


@pytest.mark.postgresql
@pytest.mark.parametrize(
    ("form", "name"), FIELDS, ids=[f"{f.method}{f.path}-{n}" for f, n in FIELDS]
)
def test_the_values_a_database_may_choke_on_are_refused_on_postgresql(
    factory: Any, form: Form, name: str
) -> None:
    w = mail_world(factory, "postgresql")
    b = browser(w, "anonymous")
    for case in form.cases[name]:
        if case.label not in ("SQL", "unicode", "HTML", "taken, full-width", "empty"):
            continue
        before = fingerprints(w.h)
        refused_page(send(b, form, spoilt(form, w, name, case.value)), case.status)
        assert refused_writes(w.h, before) == {}, (form.path, name, case.label)


def test_the_forms_reflect_what_was_typed_escaped(lite: MailWorld) -> None:
    """An address or a username typed with markup comes back in the form as text."""
    b = browser(lite, "anonymous")
    for path in ("/password/forgot", "/email/verify"):
        shown = page_of(get(b, path, {"email": f'"><{SCRIPT}'}))
        assert "&lt;script&gt;" in shown and "&#34;&gt;" in shown
        shown = refused_page(post(b, path, {"email": SCRIPT + "@x.example"}), 400)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;@x.example" in shown
    fields = {"token": lite.invite, "username": SCRIPT, "password": OTHER, "confirm": OTHER}
    shown = refused_page(post(b, "/invite", fields), 400)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown


# -- what a page refuses before reading its form ---------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_a_secret_in_the_url_a_repeated_field_or_another_method_is_refused(
    lite: MailWorld, path: str
) -> None:
    b = browser(lite, "anonymous")
    before = fingerprints(lite.h)
    for query in (
        {"password": STRONG},
        {"newpassword": OTHER},
        {"username": "alice"},
    ):
        answer = get(b, path, query)
        assert "never in the URL" in refused_page(answer, 400), (path, query)
    repeated = b.client.get(path + f"?token={lite.reset}&TOKEN={lite.verify}")
    assert "more than once" in refused_page(repeated, 400)
    for method in ("PUT", "DELETE", "PATCH"):
        answer = b.client.open(path, method=method, headers={"Origin": SITE_ORIGIN})
        refused_page(answer, 405)
        assert "POST" in answer.headers["Allow"]
    assert refused_writes(lite.h, before) == {}


@pytest.mark.parametrize("path", PAGES)
def test_a_url_over_the_limit_is_refused_before_the_page(lite: MailWorld, path: str) -> None:
    """Over ``max_query_bytes`` the whole application answers 414 before any page (as the
    API's JSON, under its own CSP): no 5xx, nothing leaked, nothing stored."""
    b = browser(lite, "anonymous")
    before = fingerprints(lite.h)
    for value in (LONG, HUGE):
        answer = get(b, path, {"token": value, "email": value})
        body = answer.get_data(as_text=True)
        assert answer.status_code == 414, body[:300]
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert not leaks(body) and value not in body
    assert refused_writes(lite.h, before) == {}


def test_a_post_reads_its_form_never_the_url(lite: MailWorld) -> None:
    """The token of a reset link in the URL of a POST is not read: the link stays unused."""
    b = browser(lite, "anonymous")
    before = fingerprints(lite.h)
    answer = b.client.post(
        f"/password/reset?token={lite.reset}",
        data={"csrf": b.token, "newpassword": OTHER, "confirm": OTHER},
        headers={"Origin": SITE_ORIGIN},
    )
    assert "The link has no token" in refused_page(answer, 400)
    assert refused_writes(lite.h, before) == {}
    assert get(b, "/password/reset", {"token": lite.reset}).status_code == 200


# -- tokens ------------------------------------------------------------------------------------

TOKEN_PAGES = [
    ("/password/reset", "reset", {"newpassword": OTHER, "confirm": OTHER}),
    ("/email/verify", "verify", {}),
    ("/invite", "invite", {"username": "carol", "password": OTHER, "confirm": OTHER}),
]


def tokens_of(w: MailWorld) -> dict[str, str]:
    return {"reset": w.reset, "verify": w.verify, "invite": w.invite}


def dead_link(answer: Any) -> None:
    body = refused_page(answer, 400)
    assert "This link does not work" in body, visible(body)


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_PAGES)
def test_a_link_of_another_purpose_or_a_random_one_does_not_work(
    lite: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    own = tokens_of(lite)[purpose]
    wrong = [t for p, t in tokens_of(lite).items() if p != purpose]
    for who in ("anonymous", "admin"):
        b = browser(lite, who)
        for token in [*wrong, random_token(), own.upper(), own[:-1], own + "A"]:
            before = fingerprints(lite.h)
            dead_link(get(b, path, {"token": token}))
            dead_link(post(b, path, {"token": token, **rest}))
            assert refused_writes(lite.h, before) == {}, (who, token)
    b = browser(lite, "anonymous")
    assert get(b, path, {"token": own}).status_code == 200
    assert post(b, path, {"token": own, **rest}).status_code == 200


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_PAGES)
def test_a_link_works_once_and_opening_it_uses_nothing(
    world: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    token = tokens_of(world)[purpose]
    b = browser(world, "anonymous")
    before = fingerprints(world.h)
    for _ in range(3):  # a mail scanner, a link preview, the person
        assert get(b, path, {"token": token}).status_code == 200
    assert refused_writes(world.h, before) == {}
    assert post(b, path, {"token": token, **rest}).status_code == 200
    for who in ("anonymous", "admin"):
        again = browser(world, who)
        before = fingerprints(world.h)
        dead_link(get(again, path, {"token": token}))
        dead_link(post(again, path, {"token": token, **rest}))
        assert refused_writes(world.h, before) == {}, who


LIFETIMES = {"reset": 1800, "verify": 86400, "invite": 604800}


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_PAGES)
def test_an_expired_link_does_not_work(
    lite: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    token = tokens_of(lite)[purpose]
    lite.h.clock.advance(seconds=LIFETIMES[purpose])
    b = browser(lite, "anonymous")
    before = fingerprints(lite.h)
    dead_link(get(b, path, {"token": token}))
    dead_link(post(b, path, {"token": token, **rest}))
    assert refused_writes(lite.h, before) == {}
    lite.h.clock.advance(seconds=-1)
    assert post(b, path, {"token": token, **rest}).status_code == 200


def test_a_refused_form_keeps_the_link(lite: MailWorld) -> None:
    """Two passwords that differ, a weak one, a taken username: the form again, the link
    unused — then the right values go through."""
    b = browser(lite, "anonymous")
    for fields, status in (
        ({"newpassword": OTHER, "confirm": OTHER + "!"}, 400),
        ({"newpassword": "passwordpassword", "confirm": "passwordpassword"}, 400),
    ):
        before = fingerprints(lite.h)
        body = refused_page(post(b, "/password/reset", {"token": lite.reset, **fields}), status)
        assert 'name="token" value="' + lite.reset in body  # the form again, same link
        assert refused_writes(lite.h, before) == {}
    for fields, status in (
        ({"username": "carol", "password": OTHER, "confirm": OTHER + "!"}, 400),
        ({"username": "alice", "password": OTHER, "confirm": OTHER}, 409),
    ):
        before = fingerprints(lite.h)
        body = refused_page(post(b, "/invite", {"token": lite.invite, **fields}), status)
        assert 'name="token" value="' + lite.invite in body
        assert refused_writes(lite.h, before) == {}
    reset = {"token": lite.reset, "newpassword": OTHER, "confirm": OTHER}
    assert post(b, "/password/reset", reset).status_code == 200
    invite = {"token": lite.invite, "username": "carol", "password": OTHER, "confirm": OTHER}
    assert post(b, "/invite", invite).status_code == 200


# -- CSRF -------------------------------------------------------------------------------------

GOOD_POSTS = [
    ("/password/forgot", lambda w: {"email": ALICE}),
    ("/email/verify", lambda w: {"email": ALICE}),
    ("/email/verify", lambda w: {"token": w.verify}),
    ("/password/reset", lambda w: {"token": w.reset, "newpassword": OTHER, "confirm": OTHER}),
    ("/invite", lambda w: {"token": w.invite, "username": "carol", "password": OTHER}),
]


def forged(w: MailWorld, who: str) -> list[tuple[str, Browser, dict[str, Any]]]:
    """Posts that do not carry this browser's CSRF token, or come from another origin."""

    def fresh() -> PassportClient:  # no CSRF cookie yet
        return sign_in(w.h, "root") if who == "admin" else w.anonymous()

    b = browser(w, who)
    planted = fresh()
    planted.set_cookie(CSRF_COOKIE, "short", domain="localhost")
    return [
        ("no cookie, no field", Browser(fresh(), ""), {"with_csrf": False}),
        ("the cookie, no field", b, {"with_csrf": False}),
        ("a field, no cookie", Browser(fresh(), b.token), {}),
        ("another browser's token", Browser(b.client, random_token()), {}),
        ("a planted short cookie", Browser(planted, "short"), {}),
        ("another site", b, {"origin": EVIL}),
        ("a registered application", b, {"origin": APP_ORIGIN}),
        ("an opaque origin", b, {"origin": "null"}),
        ("Passport's host, another scheme", b, {"origin": "https://localhost"}),
    ]


@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize(("path", "good"), GOOD_POSTS, ids=[p for p, _ in GOOD_POSTS])
def test_a_post_without_this_browsers_token_or_from_elsewhere_is_403(
    world: MailWorld, path: str, good: Any, who: str
) -> None:
    for label, b, options in forged(world, who):
        before = fingerprints(world.h)
        answer = post(b, path, good(world), **options)
        body = refused_page(answer, 403)
        assert FORM_EXPIRED in body, (label, visible(body))
        assert refused_writes(world.h, before) == {}, label
    # A Referer from another site, no Origin: refused too.
    b = browser(world, who)
    answer = b.client.open(  # open: PassportClient.post would add Passport's Origin
        path,
        method="POST",
        data={"csrf": b.token, **good(world)},
        headers={"Referer": EVIL + "/page"},
    )
    refused_page(answer, 403)
    # The same post, this browser's token, from Passport: it goes through.
    assert post(b, path, good(world)).status_code == 200


# -- no enumeration -----------------------------------------------------------------------------


def as_seen(answer: Any, address: str) -> tuple[int, str, list[tuple[str, str]]]:
    """What the browser sees of an answer, the address it typed taken out (and so the
    length, which follows)."""
    body = answer.get_data(as_text=True).replace(address, "ADDRESS")
    skip = ("X-Request-ID", "Content-Length")
    headers = sorted((k, v) for k, v in answer.headers.items() if k not in skip)
    return answer.status_code, body, headers


@pytest.mark.parametrize("path", ["/password/forgot", "/email/verify"])
def test_asking_for_a_link_on_the_page_answers_alike_whatever_the_address(
    world: MailWorld, path: str
) -> None:
    deliver(world.h)
    for who in ("anonymous", "admin"):
        b = browser(world, who)
        answers = []
        for address, mailed in ((ALICE, True), (DORA, False), (UNKNOWN, False)):
            world.h.clock.advance(seconds=world.h.settings.throttle_window)
            answer = post(b, path, {"email": address})
            answers.append(as_seen(answer, address))
            assert len(deliver(world.h)) == int(mailed), (who, address)
        assert all(a == answers[0] for a in answers), (who, [visible(a[1]) for a in answers])
        assert answers[0][0] == 200


def test_the_forgot_page_takes_alike_whatever_the_address(factory: Any) -> None:
    """40 posts per address, interleaved: the medians are within 50 % or 15 ms."""
    w = mail_world(factory, throttle_mail_limit=1_000_000)
    b = browser(w, "anonymous")
    addresses = [ALICE, DORA, UNKNOWN]
    times: dict[str, list[float]] = {a: [] for a in addresses}
    for number in range(40):
        for address in addresses[number % 3 :] + addresses[: number % 3]:
            start = time.perf_counter()
            answer = post(b, "/password/forgot", {"email": address})
            times[address].append(time.perf_counter() - start)
            assert answer.status_code == 200
    medians = [statistics.median(times[a]) for a in addresses]
    low, high = min(medians), max(medians)
    assert high - low < 0.015 or high < 1.5 * low, [f"{m * 1000:.2f} ms" for m in medians]


def test_the_fourth_ask_on_the_page_is_429_whatever_the_address(world: MailWorld) -> None:
    world.h.clock.advance(seconds=world.h.settings.throttle_window)
    b = browser(world, "anonymous")
    fourth = []
    for address in (ALICE, UNKNOWN, DORA):
        for _ in range(3):
            assert post(b, "/password/forgot", {"email": address}).status_code == 200
        before = fingerprints(world.h)
        answer = post(b, "/password/forgot", {"email": address})
        body = refused_page(answer, 429)
        assert "Too many" in body
        assert int(answer.headers["Retry-After"]) > 0
        assert refused_writes(world.h, before) == {}, address
        fourth.append(as_seen(answer, address))
    assert all(a == fourth[0] for a in fourth), [visible(a[1]) for a in fourth]


def test_without_mail_the_pages_say_so(factory: Any) -> None:
    h = factory("sqlite", "db", public_url=SITE_ORIGIN)
    assert h.register("root", headers={"Origin": SITE_ORIGIN}).status_code == 200
    grant_admin(h, "root")
    for client in (h.new_client(), sign_in(h, "root")):
        for path in PAGES:
            before = fingerprints(h)
            body = refused_page(client.get(path, query_string={"token": "x" * 43}), 403)
            assert "SMTP" in body
            assert refused_writes(h, before) == {}


# -- property ---------------------------------------------------------------------------------

FIELD_NAMES = ["email", "token", "newpassword", "confirm", "username", "password", "displayname"]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.text(st.characters(max_codepoint=0x7F), max_size=200),
    st.text(st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Mn")), max_size=12),
    st.sampled_from(
        [
            c.value
            for cases in (EMAILS, TOKENS, USERNAMES)
            for c in cases
            if isinstance(c.value, str)
        ]
    ),
    st.builds(
        lambda unit, n: unit * n, st.sampled_from(["x", "é", "😀", "\r\n"]), st.integers(200, 9000)
    ),
)


@st.composite
def page_requests(draw: st.DrawFn, w: MailWorld) -> dict[str, Any]:
    """A request to one of the pages: the method, the fields (left out, valid — the
    world's live tokens, alice's address — or hostile), the CSRF token or not, the origin."""
    good = {
        "email": [ALICE, UNKNOWN, CAROL],
        "token": [w.reset, w.verify, w.invite],
        "newpassword": [OTHER],
        "confirm": [OTHER],
        "username": ["carol", "alice"],
        "password": [OTHER],
        "displayname": ["Carol"],
    }
    fields: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(FIELD_NAMES), unique=True, max_size=5)):
        if draw(st.booleans()):
            fields[name] = draw(st.sampled_from(good[name]))
        else:
            fields[name] = draw(TEXT)
    method = draw(st.sampled_from(["GET", "POST", "POST"]))
    if method == "GET" and draw(st.integers(0, 4)):  # mostly past the URL's secrets check
        fields = {
            k: v for k, v in fields.items() if k not in ("newpassword", "username", "password")
        }
    return {
        "path": draw(st.sampled_from(PAGES)),
        "method": method,
        "who": draw(st.sampled_from(["anonymous", "admin"])),
        "fields": fields,
        "csrf": draw(st.sampled_from([True, True, True, False])),
        "origin": draw(st.sampled_from([SITE_ORIGIN, SITE_ORIGIN, SITE_ORIGIN, None, EVIL])),
        "json": draw(st.integers(0, 5)) == 0,
    }


def held(w: MailWorld) -> set[str]:
    found = rows(w.h, "SELECT email FROM users WHERE email IS NOT NULL")
    found += rows(w.h, "SELECT email FROM invitations")
    return {str(a) for (a,) in found}


def test_no_input_to_the_pages_gives_a_5xx_or_stores_what_was_refused(world: MailWorld) -> None:
    """Hypothesis over the four pages: always a page under the CSP, never a 5xx or a leak;
    a refusal (4xx) stores nothing; a post without the token or from elsewhere is 403;
    a message goes only to an address Passport holds."""
    browsers = {who: browser(world, who) for who in ("anonymous", "admin")}
    sqlite, server = PROFILES[PROFILE]

    @settings(
        max_examples=sqlite if world.h.backend == "sqlite" else server,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=page_requests(world))
    def probe(request: dict[str, Any]) -> None:
        b = browsers[request["who"]]
        before, addresses, queued = fingerprints(world.h), held(world), len(outbox(world.h))
        if request["method"] == "GET":
            answer = get(b, request["path"], request["fields"])
        else:
            answer = post(
                b,
                request["path"],
                request["fields"],
                origin=request["origin"],
                as_json=request["json"],
                with_csrf=request["csrf"],
            )
        passwords = ("password", "newpassword", "confirm")
        echoed = [str(v) for k, v in request["fields"].items() if k not in passwords]
        if answer.status_code == 414:  # a URL over max_query_bytes: before any page
            assert request["method"] == "GET"
            assert not leaks(answer.get_data(as_text=True), echoed)
            body = ""
        else:
            body = page_of(answer, echoed)
        note(f"{request!r}: {answer.status_code} {visible(body)[:200]}")
        forged = not request["csrf"] or request["origin"] == EVIL
        if request["method"] == "POST" and forged:  # refused: CSRF, or before (unreadable)
            assert answer.status_code in (400, 403, 413), answer.status_code
        if answer.status_code >= 400:
            assert refused_writes(world.h, before) == {}
        recipients = {row[2] for row in outbox(world.h)[queued:]}
        assert recipients <= addresses | held(world), recipients

    probe()


PATH_TRICKS = [
    "//password/forgot",
    "/password/./forgot",
    "/password/x/../forgot",
    "/password/reset/..%2F..%2Finvite",
    "/password%2Fforgot",
    "/PASSWORD/FORGOT",
    "/password/forgot;jsessionid=1",
    "/password/forgot%00",
    "/password/forgot%0d%0aSet-Cookie:%20x=1",
    "/invite/%2e%2e/password/reset",
    "/email/verify%20",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_path_tricks_reach_no_page_by_a_back_door(lite: MailWorld, path: str) -> None:
    """Other spellings of the pages' paths are no page (404), never a 5xx, a leak or a
    header made from the path, and a post to one stores nothing.  (A trailing slash is
    the page itself.)"""
    b = browser(lite, "anonymous")
    before = fingerprints(lite.h)
    for method in ("GET", "POST"):
        data = {"csrf": b.token, "email": ALICE, "token": lite.reset} if method == "POST" else None
        answer = b.client.open(path, method=method, data=data, headers={"Origin": SITE_ORIGIN})
        body = answer.get_data(as_text=True)
        assert answer.status_code == 404, (path, method, answer.status_code, body[:300])
        assert not leaks(body), (path, method)
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "x=1" not in str(answer.headers.getlist("Set-Cookie"))
    assert refused_writes(lite.h, before) == {}, path
    slash = b.client.get("/password/forgot/")
    assert slash.status_code == 200 and "Forgot your password?" in page_of(slash)


# -- the account page's address forms ---------------------------------------------------------


def account_page(answer: Any, status: int) -> str:
    """The account page (its CSP allows the passkey script where passkeys are on)."""
    body = answer.get_data(as_text=True)
    assert answer.status_code == status, (answer.status_code, status, visible(body))
    assert answer.headers["Content-Security-Policy"] in (PAGE_CSP, SCRIPT_PAGE_CSP)
    assert not leaks(body) and SCRIPT not in body, visible(body)
    return str(body)


def test_the_account_pages_address_change_refuses_hostile_values(lite: MailWorld) -> None:
    """``/account`` action ``email`` (the password and the new address) and ``verify``:
    a hostile address is refused with the form's error and stores nothing; a wrong
    password leaves its durable failure record only; a post without this browser's
    token or from elsewhere is 403; the right values change the address."""
    client = lite.admin
    token = csrf(client.get("/account"))

    def act(fields: dict[str, Any], origin: str = SITE_ORIGIN, **options: Any) -> Any:
        return post(Browser(client, token), "/account", fields, origin=origin, **options)

    for case in EMAILS:
        before = fingerprints(lite.h)
        answer = act({"action": "email", "password": STRONG, "email": case.value})
        if case in TRANSPORT or case in TYPES:  # refused by the reader: the error page
            refused_page(answer, case.status)
        else:
            assert 'role="alert"' in account_page(answer, case.status), case.label
        assert refused_writes(lite.h, before) == {}, case.label
    before = fingerprints(lite.h)
    wrong = act({"action": "email", "password": "not the password", "email": "r@example.com"})
    assert 'role="alert"' in account_page(wrong, 401)
    assert refused_writes(lite.h, before, allowed_audit=[("email_change", "failure")]) == {}
    for label, options in (
        ("no token", {"with_csrf": False}),
        ("another site", {"origin": EVIL}),
        ("a registered application", {"origin": APP_ORIGIN}),
    ):
        for action in ("email", "verify"):
            before = fingerprints(lite.h)
            fields = {"action": action, "password": STRONG, "email": "r@example.com"}
            answer = act(fields, **options)
            assert FORM_EXPIRED in refused_page(answer, 403), (label, action)
            assert refused_writes(lite.h, before) == {}, (label, action)
    done = act({"action": "email", "password": STRONG, "email": "r@example.com"})
    assert "Your email address was changed" in account_page(done, 200)
    assert rows(lite.h, "SELECT email FROM users WHERE username = 'root'") == [("r@example.com",)]
