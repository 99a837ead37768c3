"""Hostile input to the email lifecycle's API methods — ``Account/requestPasswordReset``,
``resetPassword``, ``requestVerification``, ``verifyEmail``, ``changeEmail``,
``acceptInvitation``; ``Users/invite``, ``invitations``, ``resendInvitation``,
``revokeInvitation`` — as an anonymous client and as a signed-in administrator.

Every parameter gets missing, empty, huge (over its ``max_length``, over the body limit),
wrongly typed (JSON numbers, lists, objects, booleans, null), unicode oddities (NFKC
forms, right-to-left, zero-width, NUL), SQL, HTML and header injection, URL and path
tricks; every token a wrong-purpose, a random, a used and an expired one.  Each answer
is the envelope with the right status and ``Number``, never a 5xx, a stack trace, SQL or
a secret, and a refused request stores nothing (every table compared, but for the
throttle's counters and the durable failure records the code writes on purpose).  Then:
header injection on the wire (the envelope and header lines ``smtplib`` sends), the
origin rules, no enumeration (answers and timing) with the throttle, the sealed outbox
and ``last_error``, and Hypothesis over every parameter.

Examples per property: ``PASSPORT_TEST_HYPOTHESIS=fast|default|thorough``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import smtplib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import example
from hypothesis import given
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st

from mail_inputs_support import ALICE
from mail_inputs_support import CAROL
from mail_inputs_support import DORA
from mail_inputs_support import SMTP_PASSWORD
from mail_inputs_support import UNKNOWN
from mail_inputs_support import MailWorld
from mail_inputs_support import deliver
from mail_inputs_support import envelope
from mail_inputs_support import fingerprints
from mail_inputs_support import latest_token
from mail_inputs_support import mail_world
from mail_inputs_support import opened
from mail_inputs_support import outbox
from mail_inputs_support import random_token
from mail_inputs_support import refusal
from mail_inputs_support import refused_writes
from mail_inputs_support import rows
from mail_inputs_support import wire_of
from passport.services.mail import deliver_due_mail
from passport.services.mail import smtp_sender
from site_support import APP_ORIGIN
from site_support import SITE_ORIGIN
from site_support import grant_admin
from site_support import sign_in
from smtp_support import SinkFactory
from smtp_support import free_port
from smtp_support import smtp_sink as smtp_sink

from support import STRONG
from support import PassportClient

PROFILES = {"fast": (10, 4), "default": (120, 25), "thorough": (1000, 150)}
PROFILE = os.environ.get("PASSPORT_TEST_HYPOTHESIS", "default")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"PASSPORT_TEST_HYPOTHESIS must be one of {', '.join(PROFILES)}")

OTHER = "another strong passphrase 9"
SECRETS = ("password", "newPassword", "token")  # never quoted back (@expose secrets)
SERIAL = itertools.count()
MISSING = object()  # the parameter left out
HUGE = "x" * 70_000  # over max_body_bytes (65536): 413 before anything is parsed
EVIL = "https://evil.example"


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, factory: Any) -> MailWorld:
    return mail_world(factory, request.param)


@pytest.fixture
def lite(factory: Any) -> MailWorld:
    """The world on SQLite only: what the database does not change."""
    return mail_world(factory)


# -- calling -----------------------------------------------------------------------------------


def call(
    client: PassportClient,
    path: str,
    params: dict[str, Any],
    *,
    origin: str | None = SITE_ORIGIN,
    as_json: bool = False,
) -> Any:
    """POST ``params`` (leaving out MISSING ones) as a form, or as JSON when asked or
    when a value is not a string."""
    values = {k: v for k, v in params.items() if v is not MISSING}
    headers = {"Origin": origin} if origin else {}
    if as_json or any(not isinstance(v, str) for v in values.values()):
        return client.open(
            path,
            method="POST",
            data=json.dumps(values),
            content_type="application/json",
            headers=headers,
        )
    return client.open(path, method="POST", data=values, headers=headers)


# -- the methods, their parameters, and what each hostile value must get ----------------------


@dataclass(frozen=True)
class Method:
    path: str
    who: str  # "anyone", "signed-in" or "admin": who may call it
    good: Callable[[MailWorld], dict[str, Any]]  # a valid call; one value is then spoilt
    kinds: dict[str, str]  # parameter -> kind of hostile values


METHODS = [
    Method(
        "/Account/requestPasswordReset", "anyone", lambda w: {"email": UNKNOWN}, {"email": "email"}
    ),
    Method(
        "/Account/requestVerification", "anyone", lambda w: {"email": UNKNOWN}, {"email": "email"}
    ),
    Method(
        "/Account/resetPassword",
        "anyone",
        lambda w: {"token": w.reset, "newPassword": OTHER},
        {"token": "reset", "newPassword": "new_password"},
    ),
    Method("/Account/verifyEmail", "anyone", lambda w: {"token": w.verify}, {"token": "verify"}),
    Method(
        "/Account/changeEmail",
        "signed-in",
        # A new address each time: every change counts against its address's mail throttle.
        lambda w: {"password": STRONG, "email": f"root.{next(SERIAL)}@example.com"},
        {"password": "current_password", "email": "email"},
    ),
    Method(
        "/Account/acceptInvitation",
        "anyone",
        lambda w: {"token": w.invite, "username": "carol", "password": OTHER, "displayName": "C"},
        {
            "token": "invite",
            "username": "username",
            "password": "new_password",
            "displayName": "display_name",
        },
    ),
    Method(
        "/Users/invite",
        "admin",
        lambda w: {"email": "erin@example.com", "groups": "Staff"},
        {"email": "email", "groups": "groups"},
    ),
    Method(
        "/Users/resendInvitation",
        "admin",
        lambda w: {"invitation": str(w.invitation_id)},
        {"invitation": "invitation"},
    ),
    Method(
        "/Users/revokeInvitation",
        "admin",
        lambda w: {"invitation": str(w.invitation_id)},
        {"invitation": "invitation"},
    ),
]
BY_PATH = {m.path: m for m in METHODS}
MAX_LENGTH = {  # as the methods declare them (@expose max_length)
    ("/Account/acceptInvitation", "username"): 254,
    ("/Account/acceptInvitation", "displayName"): 128,
    ("/Users/invite", "groups"): 2000,
    ("/Users/resendInvitation", "invitation"): 20,
    ("/Users/revokeInvitation", "invitation"): 20,
}


@dataclass(frozen=True)
class Case:
    label: str
    value: Any  # a string, MISSING, or a JSON value (sent as a JSON body)
    status: int
    number: str
    binding: bool = False  # refused by the parameter reader, before anyone is asked who calls
    storage: bool = False  # worth running on PostgreSQL too (NUL, long unicode, SQL)


def typed(good: str, required: bool = True) -> list[Case]:
    """Wrong JSON types: refused as not a string; null is the parameter left out."""
    cases = [
        Case("JSON number", 5, 400, "3", binding=True),
        Case("JSON float", 1.5e300, 400, "3", binding=True),
        Case("JSON list", [good], 400, "3", binding=True),
        Case("JSON object", {"value": good}, 400, "3", binding=True),
        Case("JSON nested", {"a": [[{"b": good}]]}, 400, "3", binding=True),
        Case("JSON true", True, 400, "3", binding=True),
        Case("JSON false", False, 400, "3", binding=True),
    ]
    if required:
        cases.append(Case("JSON null", None, 400, "1"))
    return cases


def too_long(length: int) -> list[Case]:
    return [Case(f"{length + 1} characters", "x" * (length + 1), 400, "4", binding=True)]


HEADER_INJECTIONS = [
    "alice@example.com\r\nBcc: mallory@evil.example",
    "alice@example.com\nTo: mallory@evil.example",
    "alice@example.com\rCc: mallory@evil.example",
    "alice@example.com\r\n\r\nInjected body",
    "alice@example.com%0d%0aBcc:mallory@evil.example",
    "alice@example.com\x85Bcc:mallory@evil.example",  # NEL
    "alice@example.com\u2028Bcc:mallory@evil.example",  # LINE SEPARATOR
    "alice@example.com\tBcc:mallory@evil.example",
    "=?utf-8?q?alice=40example.com=0D=0ABcc=3A_mallory=40evil.example?=",
]
EMAIL_CASES = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    Case("blank", "   ", 400, "1"),
    *too_long(254),
    Case("a local part over 64", "a" * 65 + "@example.com", 400, "3"),
    Case("NUL", "alice\x00@example.com", 400, "3", binding=True, storage=True),
    *[Case(f"header injection {i}", v, 400, "3") for i, v in enumerate(HEADER_INJECTIONS)],
    Case("right-to-left override", "\u202ealice@example.com", 400, "3"),
    Case("right-to-left mark", "alice\u200f@example.com", 400, "3"),
    Case("zero-width space", "ali\u200bce@example.com", 400, "3"),
    Case("zero-width joiner", "ali\u200dce@example.com", 400, "3"),
    Case("byte order mark", "\ufeffalice@example.com", 400, "3"),
    Case("soft hyphen", "ali\u00adce@example.com", 400, "3"),
    Case("a space", "alice smith@example.com", 400, "3"),
    Case("no @", "alice", 400, "3"),
    Case("no domain", "alice@", 400, "3"),
    Case("no dot in the domain", "alice@localhost", 400, "3"),
    Case("two @", "alice@evil.example@example.com", 400, "3"),
    Case("SQL", "' OR '1'='1' --", 400, "3", storage=True),
    Case("SQL in the address", "alice@example.com' OR '1'='1", 400, "3", storage=True),
    Case("SQL statement", "x@example.com;DROP TABLE users;--", 400, "3", storage=True),
    Case("HTML", "<script>alert(1)</script>@example.com", 400, "3"),
    Case("a display name", "Mallory <mallory@evil.example>", 400, "3"),
    Case("angle brackets", "x<mallory@evil.example>", 400, "3"),
    Case("two addresses", "mallory,alice@example.com", 400, "3"),
    Case("a group", "undisclosed:alice@example.com", 400, "3"),
    Case("a comment", "(mallory)alice@example.com", 400, "3"),
    Case("quoted", '"mallory@evil"@example.com', 400, "3"),
    Case("a URL", "https://evil.example/@example.com", 400, "3"),
    Case("a path", "../../etc/passwd", 400, "3"),
    Case("percent-encoded @", "alice%40example.com", 400, "3"),
    Case("emoji only", "😀" * 40, 400, "3", storage=True),
    Case("over the body limit", HUGE, 413, "413", binding=True),
    *typed(ALICE),
]
TOKEN_FORMS = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    Case("blank", " ", 400, "3"),
    *too_long(64),
    Case("NUL", "\x00" * 43, 400, "3", binding=True, storage=True),
    Case("the right length, random", "x" * 43, 400, "3"),
    Case("SQL", "' OR '1'='1' --", 400, "3", storage=True),
    Case("HTML", "<script>alert(1)</script>", 400, "3"),
    Case("a path", "../../../../etc/passwd", 400, "3"),
    Case("a URL", "https://evil.example/?token=x", 400, "3"),
    Case("unicode", "\uff54\uff4f\uff4b\uff45\uff4e" * 8, 400, "3", storage=True),
    Case("over the body limit", HUGE, 413, "413", binding=True),
    *typed("x" * 43),
]
NEW_PASSWORD_CASES = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    Case("too short", "short", 400, "4"),
    Case("common", "passwordpassword", 400, "6"),
    Case("too few characters", "abababababababab", 400, "6"),
    Case("full-width short", "\uff53\uff48\uff4f\uff52\uff54", 400, "4"),
    *too_long(1024),
    Case("NUL", OTHER + "\x00", 400, "3", binding=True, storage=True),
    Case("over the body limit", HUGE, 413, "413", binding=True),
    *typed(OTHER),
]
CURRENT_PASSWORD_CASES = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    *too_long(1024),
    Case("NUL", STRONG + "\x00", 400, "3", binding=True),
    Case("over the body limit", HUGE, 413, "413", binding=True),
    *typed(STRONG),
]
USERNAME_CASES = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    *too_long(254),
    Case("65 characters", "u" * 65, 400, "4"),
    Case("taken", "root", 409, "5"),
    Case("taken, other case", "ALICE", 409, "5"),
    Case("taken, full-width", "\uff41lice", 409, "5"),
    Case("taken, Cyrillic a", "\u0430lice", 409, "5"),
    Case("right-to-left override", "\u202ecarol", 400, "3"),
    Case("zero-width space", "car\u200bol", 400, "3"),
    Case("a space", "car ol", 400, "3"),
    Case("SQL", "carol' OR '1'='1", 400, "3", storage=True),
    Case("HTML", "<script>", 400, "3"),
    Case("NUL", "carol\x00", 400, "3", binding=True, storage=True),
    *typed("carol"),
]
DISPLAY_NAME_CASES = [
    *too_long(128),
    Case("right-to-left override", "\u202eCarol", 400, "3"),
    Case("a line break", "Carol\r\nBcc: mallory@evil.example", 400, "3"),
    Case("NUL", "Carol\x00", 400, "3", binding=True, storage=True),
    *typed("Carol", required=False),
]
GROUPS_CASES = [
    Case("unknown", "Nope", 404, "2"),
    Case("one unknown", "Staff,Nope", 404, "2"),
    Case("SQL", "Staff' OR '1'='1", 404, "2", storage=True),
    Case("a line break", "Staff\r\nBcc: x", 404, "2"),
    Case("NUL", "Staff\x00", 400, "3", binding=True, storage=True),
    *too_long(2000),
    *typed("Staff", required=False),
]
INVITATION_CASES = [
    Case("missing", MISSING, 400, "1"),
    Case("empty", "", 400, "1"),
    Case("blank", "  ", 400, "1"),
    *too_long(20),
    Case("not a number", "abc", 404, "2"),
    Case("negative", "-1", 404, "2"),
    Case("zero", "0", 404, "2"),
    Case("superscript two", "²", 404, "2"),
    Case("full-width one", "\uff11", 404, "2"),
    Case("Arabic-Indic one", "\u0661", 404, "2"),
    Case("exponent", "1e0", 404, "2"),
    Case("huge", "99999999999999999999", 404, "2"),
    Case("SQL", "1 OR 1=1", 404, "2", storage=True),
    Case("NUL", "1\x00", 400, "3", binding=True),
    *typed("1"),
]
KIND_CASES: dict[str, list[Case]] = {
    "email": EMAIL_CASES,
    "reset": TOKEN_FORMS,
    "verify": TOKEN_FORMS,
    "invite": TOKEN_FORMS,
    "new_password": NEW_PASSWORD_CASES,
    "current_password": CURRENT_PASSWORD_CASES,
    "username": USERNAME_CASES,
    "display_name": DISPLAY_NAME_CASES,
    "groups": GROUPS_CASES,
    "invitation": INVITATION_CASES,
}
PARAMETERS = [(m.path, name) for m in METHODS for name in m.kinds]


def expected(method: Method, param: str, who: str, case: Case) -> tuple[int, str, str]:
    """(status, Source, Number) of ``case``'s answer.  The parameter reader refuses what
    it refuses whoever calls; past it, a method for the signed-in or administrators
    answers an anonymous caller 401 whatever the values."""
    source = "body" if case.status == 413 else param
    if case.binding or who == "admin" or method.who == "anyone":
        return case.status, source, case.number
    return 401, "session", "401"


def check_refused(w: MailWorld, method: Method, param: str, who: str, case: Case) -> None:
    client = w.admin if who == "admin" else w.anonymous()
    params = {**method.good(w), param: case.value}
    before = fingerprints(w.h)
    answer = call(client, method.path, params)
    status, errors = refusal(answer)
    want_status, source, number = expected(method, param, who, case)
    where = (method.path, param, who, case.label)
    assert (status, errors[:1]) == (want_status, [(source, number)]), (where, errors)
    if status == 429 or status == 503:
        assert answer.headers.get("Retry-After"), where
    allowed = [("email_change", "failure")] if param == "password" else []
    assert refused_writes(w.h, before, allowed_audit=allowed) == {}, where


@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize(("path", "param"), PARAMETERS, ids=[f"{p}-{n}" for p, n in PARAMETERS])
def test_each_hostile_value_is_refused_with_its_number_and_stores_nothing(
    lite: MailWorld, path: str, param: str, who: str
) -> None:
    method = BY_PATH[path]
    for case in KIND_CASES[method.kinds[param]]:
        check_refused(lite, method, param, who, case)
    # The values of the valid call were not spoilt on the way: it still goes through.
    if who == "admin" or method.who == "anyone":
        client = lite.admin if who == "admin" else lite.anonymous()
        answer = call(client, path, method.good(lite))
        assert refusal(answer)[0] == 200, (path, answer.get_data(as_text=True)[:300])


@pytest.mark.postgresql
@pytest.mark.parametrize(("path", "param"), PARAMETERS, ids=[f"{p}-{n}" for p, n in PARAMETERS])
def test_the_values_a_database_may_choke_on_are_refused_on_postgresql(
    factory: Any, path: str, param: str
) -> None:
    """NUL (which PostgreSQL cannot store in text), SQL, long unicode: the same answers,
    nothing stored, on PostgreSQL."""
    w = mail_world(factory, "postgresql")
    method = BY_PATH[path]
    cases = [c for c in KIND_CASES[method.kinds[param]] if c.storage or c.label == "missing"]
    for case in cases:
        check_refused(w, method, param, "admin", case)


# -- tokens: a wrong purpose, a random one, used, expired, its account gone ------------------------


TOKEN_METHODS = [
    ("/Account/resetPassword", "reset", {"newPassword": OTHER}),
    ("/Account/verifyEmail", "verify", {}),
    ("/Account/acceptInvitation", "invite", {"username": "carol", "password": OTHER}),
]


def bad_link(answer: Any) -> None:
    status, errors = refusal(answer)
    assert (status, errors) == (400, [("token", "3")]), answer.get_data(as_text=True)[:300]
    assert "This link is not valid" in envelope(answer)["ClientExceptions"][0]["Message"]


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_METHODS)
def test_a_token_of_another_purpose_or_random_names_no_link(
    lite: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    tokens = {"reset": lite.reset, "verify": lite.verify, "invite": lite.invite}
    others = [t for p, t in tokens.items() if p != purpose]
    own = tokens[purpose]
    flipped = own[:-1] + ("A" if own[-1] != "A" else "B")
    for who in ("anonymous", "admin"):
        client = lite.admin if who == "admin" else lite.anonymous()
        for token in [*others, random_token(), flipped, own.upper(), own + "=", own[1:], " " + own]:
            before = fingerprints(lite.h)
            bad_link(call(client, path, {"token": token, **rest}))
            assert refused_writes(lite.h, before) == {}, (who, token)
    # The right token still works: the refusals were about the token.
    assert refusal(call(lite.anonymous(), path, {"token": own, **rest}))[0] == 200


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_METHODS)
def test_a_token_works_once(
    world: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    token = {"reset": world.reset, "verify": world.verify, "invite": world.invite}[purpose]
    first = call(world.anonymous(), path, {"token": token, **rest})
    assert refusal(first)[0] == 200, first.get_data(as_text=True)
    for who in ("anonymous", "admin"):
        client = world.admin if who == "admin" else world.anonymous()
        before = fingerprints(world.h)
        bad_link(call(client, path, {"token": token, **rest}))
        assert refused_writes(world.h, before) == {}, who


LIFETIMES = {"reset": 1800, "verify": 86400, "invite": 604800}


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_METHODS)
def test_a_token_expires_with_its_lifetime(
    lite: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    token = {"reset": lite.reset, "verify": lite.verify, "invite": lite.invite}[purpose]
    lite.h.clock.advance(seconds=LIFETIMES[purpose])  # expires_at <= now: dead
    for who in ("anonymous", "admin"):
        client = lite.admin if who == "admin" else lite.anonymous()
        before = fingerprints(lite.h)
        bad_link(call(client, path, {"token": token, **rest}))
        assert refused_writes(lite.h, before) == {}, who
    lite.h.clock.advance(seconds=-1)  # a second before: alive (the test can tell)
    assert refusal(call(lite.anonymous(), path, {"token": token, **rest}))[0] == 200


def test_a_link_dies_with_its_account_or_invitation(lite: MailWorld) -> None:
    """Alice disabled: her reset and verification links are dead; carol's invitation
    revoked: its link is dead — though none of them expired."""
    admin = lite.admin
    disabled = call(admin, "/Users/setDisabled", {"username": "alice", "disabled": "true"})
    assert refusal(disabled)[0] == 200
    revoked = call(admin, "/Users/revokeInvitation", {"invitation": str(lite.invitation_id)})
    assert refusal(revoked)[0] == 200
    before = fingerprints(lite.h)
    for path, purpose, rest in TOKEN_METHODS:
        token = {"reset": lite.reset, "verify": lite.verify, "invite": lite.invite}[purpose]
        bad_link(call(lite.anonymous(), path, {"token": token, **rest}))
    assert refused_writes(lite.h, before) == {}


@pytest.mark.parametrize(("path", "purpose", "rest"), TOKEN_METHODS)
def test_a_token_in_the_url_is_refused_and_not_used(
    lite: MailWorld, path: str, purpose: str, rest: dict[str, str]
) -> None:
    token = {"reset": lite.reset, "verify": lite.verify, "invite": lite.invite}[purpose]
    before = fingerprints(lite.h)
    answer = lite.anonymous().post(
        path, query_string={"token": token}, data=rest, headers={"Origin": SITE_ORIGIN}
    )
    assert refusal(answer) == (400, [("token", "3")])
    assert "never in the URL" in answer.get_data(as_text=True)
    assert refused_writes(lite.h, before) == {}
    assert refusal(call(lite.anonymous(), path, {"token": token, **rest}))[0] == 200


def test_a_refused_new_password_or_account_leaves_the_link_usable(lite: MailWorld) -> None:
    """The link is used up by the request that succeeds, not by one refused on its
    other values."""
    for password in ("short", "alice", "", "x" * 1025):
        answer = call(
            lite.anonymous(),
            "/Account/resetPassword",
            {"token": lite.reset, "newPassword": password},
        )
        assert refusal(answer)[0] == 400, password
    for username in ("root", "", "a b"):
        answer = call(
            lite.anonymous(),
            "/Account/acceptInvitation",
            {"token": lite.invite, "username": username, "password": OTHER},
        )
        assert refusal(answer)[0] in (400, 409), username
    done = call(
        lite.anonymous(), "/Account/resetPassword", {"token": lite.reset, "newPassword": OTHER}
    )
    assert refusal(done)[0] == 200
    made = call(
        lite.anonymous(),
        "/Account/acceptInvitation",
        {"token": lite.invite, "username": "carol", "password": OTHER},
    )
    assert refusal(made)[0] == 200


# -- the administrators' methods: states and who ------------------------------------------------


def test_the_invitation_methods_answer_administrators_only(lite: MailWorld) -> None:
    """Anonymous: 401; signed in without ``users:write``/``users:read``: 403; nothing
    stored either way."""
    alice = lite.h.new_client()
    signed_in = alice.post("/Account/login", data={"username": "alice", "password": STRONG})
    assert signed_in.status_code == 200
    ref = {"invitation": str(lite.invitation_id)}
    for path, params in [
        ("/Users/invite", {"email": "erin@example.com"}),
        ("/Users/resendInvitation", ref),
        ("/Users/revokeInvitation", ref),
    ]:
        for client, status, number in ((lite.anonymous(), 401, "401"), (alice, 403, "403")):
            before = fingerprints(lite.h)
            code, errors = refusal(call(client, path, params))
            assert (code, [n for _source, n in errors]) == (status, [number]), (path, errors)
            assert refused_writes(lite.h, before) == {}, path
    assert refusal(lite.anonymous().get("/Users/invitations"))[:1] == (401,)
    assert refusal(alice.get("/Users/invitations"))[:1] == (403,)
    # Junk in the query of the list names no parameter of it: ignored.
    listed = lite.admin.get("/Users/invitations", query_string={"q": "' OR 1=1", "x": "\u202e"})
    assert refusal(listed)[0] == 200
    assert [i["Email"] for i in envelope(listed)["Data"]["Invitations"]] == [CAROL]


def test_an_invitation_for_a_registered_or_invited_address_is_refused(lite: MailWorld) -> None:
    for address in (
        ALICE,
        "ALICE@example.com",
        "\uff41lice@example.com",
        DORA,
        CAROL,
        "Carol@Example.com",
    ):
        before = fingerprints(lite.h)
        answer = call(lite.admin, "/Users/invite", {"email": address})
        assert refusal(answer) == (409, [("email", "5")]), address
        assert refused_writes(lite.h, before) == {}, address


def test_an_accepted_or_revoked_invitation_is_not_sent_again(lite: MailWorld) -> None:
    made = call(
        lite.anonymous(),
        "/Account/acceptInvitation",
        {"token": lite.invite, "username": "carol", "password": OTHER},
    )
    assert refusal(made)[0] == 200
    ref = {"invitation": str(lite.invitation_id)}
    for path in ("/Users/resendInvitation", "/Users/revokeInvitation"):
        before = fingerprints(lite.h)
        assert refusal(call(lite.admin, path, ref)) == (400, [("invitation", "3")]), path
        assert refused_writes(lite.h, before) == {}, path
    second = call(lite.admin, "/Users/invite", {"email": "frank@example.com"})
    frank = str(envelope(second)["Data"]["Invitation"]["ID"])
    assert refusal(call(lite.admin, "/Users/revokeInvitation", {"invitation": frank}))[0] == 200
    before = fingerprints(lite.h)
    answer = call(lite.admin, "/Users/resendInvitation", {"invitation": frank})
    assert refusal(answer) == (400, [("invitation", "3")])
    assert refused_writes(lite.h, before) == {}


def test_a_wrong_current_password_changes_no_address(world: MailWorld) -> None:
    """changeEmail with a wrong password: 401, the durable failure record only."""
    before = fingerprints(world.h)
    answer = call(
        world.admin,
        "/Account/changeEmail",
        {"password": "not the password", "email": "r@example.com"},
    )
    assert refusal(answer) == (401, [("password", "401")])
    assert refused_writes(world.h, before, allowed_audit=[("email_change", "failure")]) == {}
    assert rows(world.h, "SELECT email FROM users WHERE username = 'root'") == [(None,)]
    for taken in (ALICE, "Alice@Example.COM", DORA):
        before = fingerprints(world.h)
        answer = call(world.admin, "/Account/changeEmail", {"password": STRONG, "email": taken})
        assert refusal(answer) == (409, [("email", "5")]), taken
        assert refused_writes(world.h, before) == {}, taken


# -- header injection: what reaches the wire ------------------------------------------------------

HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]


def sent_once_to(w: MailWorld, message: Any, recipient: str) -> None:
    """The message goes to ``recipient`` alone, with Passport's header lines only."""
    wire = wire_of(w.h, message)
    assert wire.recipients == [recipient], (wire.recipients, recipient)
    assert wire.headers == HEADERS, wire.headers
    assert len(message["To"].addresses) == 1, message["To"]


def full_width(text: str) -> str:
    """``alice@example.com`` in full-width forms, which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


def test_a_typed_address_is_looked_up_but_the_stored_one_is_written_to(lite: MailWorld) -> None:
    """Ways of typing alice's address find her account; the message goes to the address
    her account holds, never to what was typed."""
    deliver(lite.h)
    for typed_as in (
        " alice@example.com ",
        "ALICE@EXAMPLE.COM",
        full_width("alice@example.com"),
    ):
        lite.h.clock.advance(seconds=900)  # a new throttle window
        answer = call(lite.anonymous(), "/Account/requestPasswordReset", {"email": typed_as})
        assert refusal(answer)[0] == 200, typed_as
        (message,) = deliver(lite.h)
        sent_once_to(lite, message, ALICE)


ADDRESS_CHARS = st.sampled_from(
    [
        *"abcXYZ019.!#$%&'*+-/=?^_`{|}~",
        *' ,;:<>()[]\\"@\r\n\t\x0b\x0c\x85\u2028\u2029\x00',
        *["é", "ß", "😀", "\u0430", "\uff41", "\u200b", "\u202e", "\ufeff", "=?", "?="],
    ]
)
LOCAL = st.lists(ADDRESS_CHARS, min_size=1, max_size=12).map("".join)
DOMAIN = st.lists(
    st.sampled_from([*"abcé-09", ".", ",", ">", ")", ";", " ", "\r\n", "😀"]),
    min_size=1,
    max_size=10,
).map("".join)
ADDRESSES = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}.example", LOCAL, DOMAIN),
    st.builds(lambda local: f"{local}@example.com", LOCAL),
    st.builds(lambda a, b: f"{a}@x.example{b}", LOCAL, LOCAL),
)


def examples(w: MailWorld) -> int:
    sqlite, server = PROFILES[PROFILE]
    return sqlite if w.h.backend == "sqlite" else server


def test_an_accepted_address_is_one_recipient_with_no_extra_header(lite: MailWorld) -> None:
    """Whatever address an administrator's invitation or a registration accepts, its
    message goes to that one address (the envelope smtplib sends), with Passport's
    header lines and no other; what is refused queues nothing."""
    deliver(lite.h)
    made = 0

    @settings(
        max_examples=4 * examples(lite),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(address=ADDRESSES, how=st.sampled_from(["invite", "register"]))
    @example(address="=?utf-8?q?mallory=40evil.example?=@example.com", how="invite")
    @example(address="=?utf-8?q?a=2C_mallory=40evil.example?=@example.com", how="register")
    @example(address="=?utf-8?b?bWFsbG9yeQ==?=@example.com", how="invite")
    @example(address="mallory,alice@example.com", how="invite")
    @example(address="x<mallory@evil.example>", how="register")
    def probe(address: str, how: str) -> None:
        nonlocal made
        before = len(outbox(lite.h))
        if how == "invite":
            answer = call(lite.admin, "/Users/invite", {"email": address})
        else:
            made += 1
            answer = lite.h.register(f"user{made}", email=address, headers={"Origin": SITE_ORIGIN})
        status, _errors = refusal(answer)
        note(f"{how} {address!r}: {status}")
        queued = outbox(lite.h)[before:]
        if status != 200:
            assert queued == [], address
            return
        data = envelope(answer)["Data"]
        if how == "invite":
            undo = ("/Users/revokeInvitation", {"invitation": str(data["Invitation"]["ID"])})
        else:
            undo = ("/Users/delete", {"username": data["User"]["Username"]})
        try:
            (row,) = queued
            (message,) = deliver(lite.h)
            sent_once_to(lite, message, row[2])
            assert row[2] == data["Invitation" if how == "invite" else "User"]["Email"]
        finally:  # the next example may try the same address again
            assert refusal(call(lite.admin, *undo))[0] == 200
            deliver(lite.h)

    probe()


# -- origins: CSRF and CORS ------------------------------------------------------------------------

CROSS_ORIGIN = [
    "/Account/requestPasswordReset",
    "/Account/resetPassword",
    "/Account/requestVerification",
    "/Account/verifyEmail",
    "/Account/acceptInvitation",
]
OWN_ORIGIN_ONLY = [
    "/Account/changeEmail",
    "/Users/invite",
    "/Users/resendInvitation",
    "/Users/revokeInvitation",
]
FOREIGN = [
    EVIL,
    "null",
    "https://wiki.example.com.evil.example",
    "http://wiki.example.com",  # the registered host, another scheme
    "https://wiki.example.com:8443",  # another port
    "https://wiki.example.com.",
]


def preflight(client: PassportClient, path: str, origin: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def no_cors(answer: Any) -> None:
    assert "Access-Control-Allow-Origin" not in answer.headers, dict(answer.headers)
    assert "Access-Control-Allow-Credentials" not in answer.headers, dict(answer.headers)


@pytest.mark.parametrize("path", CROSS_ORIGIN)
def test_the_cross_origin_methods_answer_cors_to_registered_origins_only(
    world: MailWorld, path: str
) -> None:
    """A registered application's page may call them (preflight and call answered with
    its origin and credentials); any other origin gets 403, no CORS headers, and nothing
    changes."""
    params = BY_PATH[path].good(world)
    for who in ("anonymous", "admin"):
        client = world.admin if who == "admin" else world.anonymous()
        allowed = preflight(client, path, APP_ORIGIN)
        assert allowed.status_code == 204, (path, who)
        assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Origin" in allowed.headers["Vary"]
        for origin in FOREIGN:
            refused = preflight(client, path, origin)
            assert refused.status_code == 403, (path, who, origin)
            no_cors(refused)
            before = fingerprints(world.h)
            answer = call(client, path, params, origin=origin)
            assert refusal(answer) == (403, [("Origin", "403")]), (path, who, origin)
            no_cors(answer)
            assert "Origin" in answer.headers["Vary"]
            assert refused_writes(world.h, before) == {}, (path, who, origin)
    answer = call(world.anonymous(), path, params, origin=APP_ORIGIN)
    assert refusal(answer)[0] == 200, answer.get_data(as_text=True)
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


@pytest.mark.parametrize("path", OWN_ORIGIN_ONLY)
def test_the_signed_in_methods_refuse_even_a_registered_origin(world: MailWorld, path: str) -> None:
    """changeEmail and the invitation methods act with the session cookie: not even a
    registered application's page may call them (its script would act for whoever
    visits it), nor a page that sends no Origin or Referer at all."""
    params = BY_PATH[path].good(world)
    refused = preflight(world.admin, path, APP_ORIGIN)
    assert refused.status_code == 403
    no_cors(refused)
    for headers in (
        {"Origin": APP_ORIGIN},
        {"Referer": APP_ORIGIN + "/settings"},
        {"Origin": EVIL},
        {"Origin": "null"},
        {},
    ):
        before = fingerprints(world.h)
        answer = world.admin.open(path, method="POST", data=params, headers=headers)
        assert refusal(answer) == (403, [("Origin", "403")]), (path, headers)
        no_cors(answer)
        assert refused_writes(world.h, before) == {}, (path, headers)
    # From Passport's own pages the same call goes through.
    assert refusal(call(world.admin, path, params))[0] == 200


# -- no enumeration ------------------------------------------------------------------------------

ASKS = ["/Account/requestPasswordReset", "/Account/requestVerification"]


def seen(answer: Any) -> tuple[int, str, list[tuple[str, str]]]:
    """What a caller sees of an answer: status, body and headers (but the request id)."""
    headers = sorted((k, v) for k, v in answer.headers.items() if k != "X-Request-ID")
    return answer.status_code, answer.get_data(as_text=True), headers


@pytest.mark.parametrize("path", ASKS)
def test_asking_for_a_link_answers_alike_whatever_the_address(world: MailWorld, path: str) -> None:
    """An account's address, a disabled account's, an unknown one, a verified one: the
    same status, body and headers — and only the first kind gets mail (the test can
    tell them apart)."""
    verified = call(world.anonymous(), "/Account/verifyEmail", {"token": world.verify})
    assert refusal(verified)[0] == 200
    if path == "/Account/requestVerification":  # alice is verified now: a new one is bob
        made = world.h.register("bob", email="bob@example.com", headers={"Origin": SITE_ORIGIN})
        assert made.status_code == 200
        addresses = {"bob@example.com": True, ALICE: False, DORA: False, UNKNOWN: False}
    else:
        addresses = {ALICE: True, DORA: False, UNKNOWN: False}
    deliver(world.h)
    for who in ("anonymous", "admin"):
        answers = []
        for address, mailed in addresses.items():
            client = world.admin if who == "admin" else world.anonymous()
            world.h.clock.advance(seconds=world.h.settings.throttle_window)
            answers.append(seen(call(client, path, {"email": address})))
            assert len(deliver(world.h)) == int(mailed), (who, address)
        assert all(a == answers[0] for a in answers), (who, answers)
        assert answers[0][0] == 200


def median_times(run: Callable[[str], Any], addresses: list[str], rounds: int) -> list[float]:
    """The median time of ``run`` per address over ``rounds`` rounds, the addresses
    interleaved in each round (so that a slower moment of the machine hits all alike)."""
    times: dict[str, list[float]] = {a: [] for a in addresses}
    for number in range(rounds):
        order = addresses[number % len(addresses) :] + addresses[: number % len(addresses)]
        for address in order:
            start = time.perf_counter()
            answer = run(address)
            times[address].append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return [statistics.median(times[a]) for a in addresses]


def alike(medians: list[float]) -> bool:
    """Within 50 % of each other, or 15 ms apart at most."""
    low, high = min(medians), max(medians)
    return high - low < 0.015 or high < 1.5 * low


def test_alike_is_a_bound_that_can_fail() -> None:
    assert alike([0.010, 0.012, 0.0149]) and alike([0.100, 0.140])
    assert not alike([0.010, 0.030]) and not alike([0.100, 0.200])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize("path", ASKS)
def test_asking_for_a_link_takes_alike_whatever_the_address(
    factory: Any, path: str, backend: str
) -> None:
    """40 requests per address, interleaved: the median times of an account's address,
    a disabled account's and an unknown one are alike (the message is composed every
    time; only its row is left out).  Not the time of one call."""
    w = mail_world(factory, backend, throttle_mail_limit=1_000_000)
    client = w.anonymous()

    def ask(address: str) -> Any:
        return call(client, path, {"email": address})

    medians = median_times(ask, [ALICE, DORA, UNKNOWN], 40)
    assert alike(medians), [f"{m * 1000:.2f} ms" for m in medians]


@pytest.mark.parametrize("path", ASKS)
def test_the_fourth_request_for_an_address_is_throttled_whatever_the_address(
    world: MailWorld, path: str
) -> None:
    """Three per address and window; the fourth is 429 with Retry-After, stores no
    message, and reads the same for an account's address as for an unknown one."""
    world.h.clock.advance(seconds=world.h.settings.throttle_window)  # the world's asks forgotten
    fourth = []
    for address, again in (
        (ALICE, "Alice@EXAMPLE.com"),
        (UNKNOWN, "NOBODY@example.com"),
        (DORA, DORA),
    ):
        for _ in range(3):
            assert refusal(call(world.anonymous(), path, {"email": address}))[0] == 200
        deliver(world.h)
        before = fingerprints(world.h)
        # The same address, typed otherwise: one counter.
        answer = call(world.anonymous(), path, {"email": again})
        assert refusal(answer) == (429, [("email", "429")]), address
        assert int(answer.headers["Retry-After"]) > 0
        assert refused_writes(world.h, before) == {}, address
        fourth.append(seen(answer))
    assert all(a == fourth[0] for a in fourth), fourth
    world.h.clock.advance(seconds=world.h.settings.throttle_window)
    assert refusal(call(world.anonymous(), path, {"email": ALICE}))[0] == 200


def test_the_two_kinds_of_link_share_the_counter_of_an_address(lite: MailWorld) -> None:
    lite.h.clock.advance(seconds=lite.h.settings.throttle_window)
    for path in (ASKS[0], ASKS[1], ASKS[0]):
        assert refusal(call(lite.anonymous(), path, {"email": ALICE}))[0] == 200
    assert refusal(call(lite.anonymous(), ASKS[1], {"email": ALICE}))[0] == 429


def test_the_client_address_has_a_counter_of_its_own(factory: Any) -> None:
    """Many addresses from one client: the client's own limit answers 429 too."""
    w = mail_world(factory, throttle_mail_ip_limit=5)
    w.h.clock.advance(seconds=w.h.settings.throttle_window)
    for number in range(5):
        answer = call(w.anonymous(), ASKS[number % 2], {"email": f"n{number}@example.com"})
        assert refusal(answer)[0] == 200, number
    before = fingerprints(w.h)
    answer = call(w.anonymous(), ASKS[0], {"email": ALICE})
    assert refusal(answer) == (429, [("email", "429")])
    assert refused_writes(w.h, before) == {}


def test_without_mail_the_methods_answer_403_number_7(factory: Any) -> None:
    h = factory("sqlite", "db", public_url=SITE_ORIGIN)
    made = h.register("root", headers={"Origin": SITE_ORIGIN})
    assert made.status_code == 200
    grant_admin(h, "root")
    admin = sign_in(h, "root")
    for client, path, params in (
        (h.new_client(), ASKS[0], {"email": ALICE}),
        (h.new_client(), ASKS[1], {"email": ALICE}),
        (admin, "/Users/invite", {"email": CAROL}),
    ):
        before = fingerprints(h)
        answer = call(client, path, params)
        assert refusal(answer) == (403, [("email", "7")]), path
        assert "SMTP" in envelope(answer)["ClientExceptions"][0]["Message"]
        assert refused_writes(h, before) == {}, path


# -- the outbox: sealed bodies, emptied once sent, no secret in last_error -----------------------


def every_kind_of_message(w: MailWorld) -> list[str]:
    """Queue one message of each kind (the world has a reset, a verification and an
    invitation already): an address change (a new link, a notice to the old address) and
    a password reset done (its notice).  Returns every token that went out."""
    changed = call(w.admin, "/Users/update", {"username": "alice", "email": "alice2@example.com"})
    assert refusal(changed)[0] == 200
    tokens = [w.reset, w.verify, w.invite, latest_token(w.h, "alice2@example.com", "verify_email")]
    asked = call(w.anonymous(), "/Account/requestPasswordReset", {"email": "alice2@example.com"})
    assert refusal(asked)[0] == 200
    tokens.append(latest_token(w.h, "alice2@example.com", "password_reset"))
    done = call(
        w.anonymous(), "/Account/resetPassword", {"token": tokens[-1], "newPassword": OTHER}
    )
    assert refusal(done)[0] == 200
    purposes = {row[1] for row in outbox(w.h)}
    assert purposes == {
        "verify_email",
        "password_reset",
        "invitation",
        "email_changed",
        "password_changed",
    }, purposes
    return tokens


def test_a_queued_message_keeps_no_link_in_clear(world: MailWorld) -> None:
    """Every queued body is sealed: neither a token nor the link's URL is in it (nor in
    any other table: links are kept as hashes), yet it opens to the message with the link."""
    tokens = every_kind_of_message(world)
    for _id, purpose, _to, subject, body, sent, _attempts, _error in outbox(world.h):
        assert sent is None and body, purpose
        for secret in [*tokens, "token=", "http://localhost", "/password/reset", "Hello"]:
            assert secret not in body, (purpose, secret)
        with pytest.raises(ValueError):
            json.loads(body)
        parts = opened(world.h, body)
        assert parts["text"] and parts["html"], purpose
        assert subject not in body
    links = [opened(world.h, row[4])["text"] for row in outbox(world.h)]
    assert sum(token in text for token in tokens for text in links) == len(tokens)
    # No table holds a token in clear.
    for table in ("email_links", "mail_outbox", "invitations", "users", "audit_events"):
        dump = repr(rows(world.h, f"SELECT * FROM {table}"))
        assert not [t for t in tokens if t in dump], table


def test_a_sent_message_is_emptied(world: MailWorld) -> None:
    every_kind_of_message(world)
    sent = deliver(world.h)
    assert len(sent) == len(outbox(world.h)) >= 8
    for _id, purpose, _to, _subject, body, sent_at, attempts, error in outbox(world.h):
        assert (body, error, attempts) == ("", "", 1), purpose
        assert sent_at is not None
    assert deliver(world.h) == []  # and not sent again


class FailingRelay:
    """Stands for ``smtplib.SMTP`` in the product's sender: it fails at one step
    (``connect``, ``login`` or ``send``) with the exception a relay or the network gives."""

    step = ""
    failure: BaseException = OSError()

    def __init__(self, host: str, port: int, timeout: float = 0) -> None:
        if self.step == "connect":
            raise self.failure

    def ehlo(self) -> None:
        return None

    def starttls(self, context: Any = None) -> None:
        return None

    def login(self, user: str, password: str) -> None:
        assert password == SMTP_PASSWORD  # the configured one reaches the relay, only it
        if self.step == "login":
            raise self.failure

    def send_message(self, message: Any, to_addrs: Any = None) -> None:
        if self.step == "send":
            raise self.failure

    def quit(self) -> None:
        return None

    def close(self) -> None:
        return None


SERVER_TEXT = f"5.7.8 mailer:{SMTP_PASSWORD} rejected; see https://relay.example/help"
REFUSED = SERVER_TEXT.encode()
FAILURES: list[tuple[str, BaseException, str, bool]] = [
    # (the step, what the relay or the network did, last_error, given up at once)
    ("connect", ConnectionRefusedError(111, SERVER_TEXT), "ConnectionRefusedError", False),
    ("connect", TimeoutError(SERVER_TEXT), "TimeoutError", False),
    ("connect", OSError(f"smtp://mailer:{SMTP_PASSWORD}@relay.example"), "OSError", False),
    ("connect", smtplib.SMTPConnectError(421, REFUSED), "SMTPConnectError 421", False),
    ("login", smtplib.SMTPAuthenticationError(535, REFUSED), "SMTPAuthenticationError 535", False),
    (
        "send",
        smtplib.SMTPRecipientsRefused({ALICE: (550, REFUSED)}),
        "SMTPRecipientsRefused 550",
        True,
    ),
    (
        "send",
        smtplib.SMTPRecipientsRefused({ALICE: (450, REFUSED)}),
        "SMTPRecipientsRefused 450",
        False,
    ),
    ("send", smtplib.SMTPDataError(554, REFUSED), "SMTPDataError 554", True),
    ("send", smtplib.SMTPDataError(451, REFUSED), "SMTPDataError 451", False),
    (
        "send",
        smtplib.SMTPSenderRefused(553, REFUSED, "noreply@localhost"),
        "SMTPSenderRefused 553",
        True,
    ),
    ("send", smtplib.SMTPServerDisconnected(SERVER_TEXT), "SMTPServerDisconnected", False),
]


@pytest.mark.parametrize(
    ("step", "failure", "recorded", "permanent"), FAILURES, ids=[f[2] for f in FAILURES]
)
def test_last_error_names_the_failure_never_the_servers_words_or_a_password(
    lite: MailWorld,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    failure: BaseException,
    recorded: str,
    permanent: bool,
) -> None:
    """``last_error`` and the log say the kind of failure and its SMTP code; the relay's
    text (which may quote the credentials) and the password never.  A message given up
    (5xx) is emptied; one to be tried again stays sealed."""
    caplog.set_level(logging.WARNING, logger="passport.mail")
    monkeypatch.setattr(FailingRelay, "step", step)
    monkeypatch.setattr(FailingRelay, "failure", failure)
    monkeypatch.setattr(smtplib, "SMTP", FailingRelay)
    assert SMTP_PASSWORD in lite.h.settings.smtp_url  # the sender logs in with it
    assert deliver_due_mail(lite.h.app.services.db, lite.h.settings, lite.h.clock()) == 0
    for _id, purpose, _to, _subject, body, sent_at, attempts, error in outbox(lite.h):
        assert error == recorded, (purpose, error)
        assert sent_at is None
        if permanent:
            assert body == "" and attempts >= 40, purpose
        else:
            assert body and attempts == 1, purpose
            assert opened(lite.h, body)["text"]
    assert caplog.records, "a failure is logged"
    for text in [caplog.text, repr(outbox(lite.h))]:
        assert SMTP_PASSWORD not in text
        assert "rejected" not in text and "relay.example" not in text


def test_a_real_connection_failure_names_no_password(lite: MailWorld) -> None:
    """The product's own sender (smtplib, STARTTLS, AUTH with the configured password)
    against a port where nothing listens: the kind of failure only."""
    url = f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{free_port()}?starttls=true"
    closed = replace(lite.h.settings, smtp_url=url)
    deliver_due_mail(lite.h.app.services.db, closed, lite.h.clock(), send=smtp_sender(closed))
    errors = {row[7] for row in outbox(lite.h)}
    assert errors == {"ConnectionRefusedError"}, errors


@pytest.mark.live
def test_a_relay_refusing_the_password_gets_no_password_in_last_error(
    lite: MailWorld, smtp_sink: SinkFactory
) -> None:
    """A real SMTP server (STARTTLS, AUTH required) and a wrong password configured: 535,
    recorded as such; nothing delivered, and the password is nowhere in the outbox."""
    sink = smtp_sink(starttls=True, auth=("mailer", "the relay's real password"))
    url = f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{sink.port}?starttls=true"
    wrong = replace(lite.h.settings, smtp_url=url, smtp_ca_file=str(sink.cert))
    assert deliver_due_mail(lite.h.app.services.db, wrong, lite.h.clock()) == 0
    assert {row[7] for row in outbox(lite.h)} == {"SMTPAuthenticationError 535"}
    assert SMTP_PASSWORD not in repr(outbox(lite.h))
    assert sink.messages() == []


# -- properties --------------------------------------------------------------------------------

TEXT = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.text(st.characters(max_codepoint=0x7F), max_size=300),
    st.text(st.characters(categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Nd")), max_size=12),
    st.sampled_from(
        [c.value for cases in KIND_CASES.values() for c in cases if isinstance(c.value, str)]
    ),
    st.builds(
        lambda unit, count: unit * count,
        st.sampled_from(["x", "é", "😀", "\r\n"]),
        st.integers(200, 9000),
    ),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def api_calls(draw: st.DrawFn, w: MailWorld) -> tuple[str, str, dict[str, Any], bool]:
    """(who, path, params, as JSON): each parameter left out, valid (the world's live
    tokens, its invitation, a fresh address) or hostile."""
    method = draw(st.sampled_from(METHODS))
    who = draw(st.sampled_from(["anonymous", "admin"]))
    good = method.good(w)
    as_json = draw(st.booleans())
    params: dict[str, Any] = {}
    for name in method.kinds:
        mode = draw(st.sampled_from(["good", "good", "hostile", "omit"]))
        if mode == "good":
            params[name] = good[name]
        elif mode == "hostile":
            params[name] = draw(JSON_VALUES if as_json else TEXT)
    return who, method.path, params, as_json


def addresses_held(h: Any) -> set[str]:
    found = rows(h, "SELECT email FROM users WHERE email IS NOT NULL")
    found += rows(h, "SELECT email FROM invitations")
    return {str(address) for (address,) in found}


def test_no_input_to_the_methods_gives_a_5xx_or_stores_what_was_refused(world: MailWorld) -> None:
    """Hypothesis over the ten methods' parameters: always the envelope, never a 5xx or a
    leak; a refusal stores nothing (but the throttle's counters and a wrong password's
    record); a message queued goes to an address Passport holds (the stored one, or the
    previous one for a change notice), never to a typed one."""

    @settings(
        max_examples=examples(world),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=api_calls(world))
    def probe(request: tuple[str, str, dict[str, Any], bool]) -> None:
        who, path, params, as_json = request
        client = world.admin if who == "admin" else world.anonymous()
        held = addresses_held(world.h)
        queued = len(outbox(world.h))
        before = fingerprints(world.h)
        answer = call(client, path, params, as_json=as_json)
        echoed = [repr(v) + str(v) for k, v in params.items() if k not in SECRETS]
        status, errors = refusal(answer, echoed)
        note(f"{who} {path} {params!r}: {status} {errors}")
        if status >= 400:
            allowed = [("email_change", "failure")]
            assert refused_writes(world.h, before, allowed_audit=allowed) == {}
        recipients = {row[2] for row in outbox(world.h)[queued:]}
        assert recipients <= held | addresses_held(world.h), recipients

    probe()
