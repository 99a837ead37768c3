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

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
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
from mail_inputs_support import UNKNOWN
from mail_inputs_support import MailWorld
from mail_inputs_support import deliver
from mail_inputs_support import envelope
from mail_inputs_support import fingerprints
from mail_inputs_support import mail_world
from mail_inputs_support import outbox
from mail_inputs_support import random_token
from mail_inputs_support import refusal
from mail_inputs_support import refused_writes
from mail_inputs_support import rows
from mail_inputs_support import wire_of
from site_support import SITE_ORIGIN

from support import STRONG
from support import PassportClient

PROFILES = {"fast": (10, 4), "default": (120, 25), "thorough": (1000, 150)}
PROFILE = os.environ.get("PASSPORT_TEST_HYPOTHESIS", "default")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"PASSPORT_TEST_HYPOTHESIS must be one of {', '.join(PROFILES)}")

OTHER = "another strong passphrase 9"
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
        lambda w: {"password": STRONG, "email": "root.new@example.com"},
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
    Case("an encoded word", "=?utf-8?b?bWFsbG9yeQ==?=@example.com", 400, "3"),
    Case("an encoded comma", "=?utf-8?q?a=2Cmallory?=@example.com", 400, "3"),
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


def sent_once_to(message: Any, recipient: str) -> None:
    """The message goes to ``recipient`` alone, with Passport's header lines only."""
    wire = wire_of(message)
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
        sent_once_to(message, ALICE)


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
            sent_once_to(message, row[2])
            assert row[2] == data["Invitation" if how == "invite" else "User"]["Email"]
        finally:  # the next example may try the same address again
            assert refusal(call(lite.admin, *undo))[0] == 200
            deliver(lite.h)

    probe()
