"""Property: no request, however hostile, breaks Passport or writes where it was refused.

Hypothesis drives every endpoint of the registry (walked from the registry itself, with
each endpoint's parameter names and types) and every hosted page and OpenID Connect
endpoint with arbitrary strings (unicode, control characters, huge, empty, injection),
numbers, repeated and re-cased parameters, and bodies (form, JSON with nested values and
wrong types, raw bytes under any content type) — as a signed-in administrator whose
requests carry Passport's own ``Origin`` (so they get past the CSRF check into
validation) and as an anonymous client.  For every answer:

* never a 5xx (the database is healthy, so no 503 either);
* an API answer is the envelope, and a refusal carries a ClientException;
* no stack trace or password in the answer;
* a 4xx answer wrote nothing: every table's row count and row digest is unchanged,
  except failure bookkeeping (audit rows that are not successes, throttle counters).

Examples per test: ``PASSPORT_TEST_HYPOTHESIS=fast|default|thorough`` (default: default);
SQLite gets more than PostgreSQL with Redis (see ``PROFILES``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st

from passport.api import API
from passport.web.registry import Endpoint
from site_support import ADMIN
from site_support import APP_NAME
from site_support import APP_ORIGIN
from site_support import SITE_ORIGIN
from site_support import Site
from site_support import build_site
from site_support import grant_admin
from site_support import sign_in
from site_support import table_fingerprints
from site_support import unexpected_writes

from support import STRONG
from support import PassportClient

# Examples per test on (SQLite, PostgreSQL + Redis).  Read at import: the autouse fixture
# of conftest.py hides PASSPORT_* variables from the tests themselves.
PROFILES = {"fast": (25, 10), "default": (300, 60), "thorough": (2000, 300)}
PROFILE = os.environ.get("PASSPORT_TEST_HYPOTHESIS", "default")
if PROFILE not in PROFILES:
    raise pytest.UsageError(f"PASSPORT_TEST_HYPOTHESIS must be one of {', '.join(PROFILES)}")
# PASSPORT_TEST_HYPOTHESIS_TALLY=1 (with -s) also tallies the answers' first words: where
# the requests stopped.
TALLY = bool(os.environ.get("PASSPORT_TEST_HYPOTHESIS_TALLY"))
SITES = [("sqlite", "db"), ("postgresql", "redis")]
# ASCII and other digits: superscripts, Arabic-Indic, fullwidth, N'Ko.
UNICODE_DIGITS = "0123456789\u00b2\u00b3\u00b9\u0663\uff16\u07c0"

REDIRECT_URI = "https://wiki.example.com/callback"
# The hosted forms' double-submit value, set as a cookie: of the form Passport issues (43
# characters, secrets.token_urlsafe(32)), or every POST would stop at the CSRF check.
CSRF = "hostile-test-csrf-token-0123456789abcdefghi"
assert len(CSRF) == 43
PAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # path: (HTTP methods, parameter names it reads)
    "/login": (("GET", "POST"), ("username", "password", "next", "remember", "csrf")),
    "/consent": (("GET", "POST"), ("next", "decision", "csrf", "client_id", "redirect_uri")),
    "/logout": (
        ("GET", "POST"),
        ("id_token_hint", "post_logout_redirect_uri", "client_id", "state", "csrf"),
    ),
    "/account": (("GET", "POST"), ("action", "oldpassword", "newpassword", "id", "csrf")),
    "/device": (("GET", "POST"), ("user_code", "decision", "csrf")),
    "/password/forgot": (("GET", "POST"), ("email", "csrf")),
    "/password/reset": (("GET", "POST"), ("token", "newpassword", "confirm", "csrf")),
    "/email/verify": (("GET", "POST"), ("token", "email", "csrf")),
    "/invite": (
        ("GET", "POST"),
        ("token", "username", "displayname", "password", "confirm", "csrf"),
    ),
    "/oauth2/device_authorization": (("POST", "GET"), ("client_id", "client_secret", "scope")),
    "/oauth2/authorize": (
        ("GET", "POST"),
        (
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "prompt",
            "max_age",
            "login_hint",
        ),
    ),
    "/oauth2/token": (
        ("POST", "GET"),
        (
            "grant_type",
            "code",
            "redirect_uri",
            "client_id",
            "client_secret",
            "code_verifier",
            "refresh_token",
            "scope",
            "device_code",
        ),
    ),
    "/oauth2/userinfo": (("GET", "POST"), ("access_token",)),
    "/oauth2/introspect": (("POST", "GET"), ("token", "token_type_hint", "client_id")),
    "/oauth2/revoke": (("POST", "GET"), ("token", "token_type_hint", "client_id")),
    "/.well-known/openid-configuration": (("GET",), ()),
    "/.well-known/oauth-authorization-server": (("GET",), ()),
    "/.well-known/jwks.json": (("GET",), ()),
}
HOSTILE = [
    "",
    " ",
    "\t\r\n",
    "\x00",
    "a\x00b",
    "\x7f\x1b[31m",
    "\u202e\u200b\ufeff",
    "Ünïcödé 😀",
    "\uff21\uff2c\uff29\uff23\uff25",  # fullwidth ALICE
    "²",
    "٣",
    "-0",
    "1e3",
    "0x10",
    "-1",
    "99999999999999999999999",
    "' OR '1'='1",
    "1; DROP TABLE users; --",
    '"; DELETE FROM users; --',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "%00",
    "%25%32%65",
    "../../etc/passwd",
    "javascript:alert(1)",
    "//evil.example/",
    "https://evil.example/",
    "null",
    "true",
    "[]",
    "{}",
]


# -- what is sent -------------------------------------------------------------------------


@dataclass
class Call:
    """One request, described so that a falsifying example reads as the request itself."""

    who: str  # "admin" or "anonymous"
    method: str
    path: str
    query: list[tuple[str, str]]
    body_kind: str  # "none", "form", "json", "raw"
    body: list[tuple[str, Any]] = field(default_factory=list)
    raw: bytes = b""
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: PassportClient) -> Any:
        kwargs: dict[str, Any] = {"headers": dict(self.headers)}
        if self.query:
            kwargs["query_string"] = urlencode(self.query)
        if self.body_kind == "form":
            kwargs["data"] = urlencode(self.body).encode()
            kwargs["content_type"] = "application/x-www-form-urlencoded"
        elif self.body_kind == "json":
            members = ", ".join(
                f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=True)}" for k, v in self.body
            )
            kwargs["data"] = ("{" + members + "}").encode()
            kwargs["content_type"] = "application/json"
        elif self.body_kind == "raw":
            kwargs["data"] = self.raw
            kwargs["content_type"] = self.content_type
        # Client.open: no Origin added by PassportClient.post; the call says its own.
        return client.open(self.path, method=self.method, **kwargs)


def hostile_text(known: list[str]) -> st.SearchStrategy[str]:
    no_surrogates = st.characters(exclude_categories=["Cs"])
    return st.one_of(
        st.sampled_from(HOSTILE + known),
        st.text(no_surrogates, max_size=30),
        st.text(st.characters(max_codepoint=0x7F), max_size=30),
        st.text(st.characters(categories=("Nd", "No", "Nl", "Zs", "Cc", "Cf", "Mn")), max_size=12),
        st.integers(-(2**70), 2**70).map(str),
        st.builds(
            lambda unit, count: unit * count,
            st.sampled_from(["x", "é", "😀", "9", "'", "%", "a,", " "]),
            st.integers(200, 6000),
        ),
    )


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    lone_surrogates = st.text(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3
    )
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        text,
        lone_surrogates,
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=6,
    )


def nested_json(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def value_for(kind: type, text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    if kind is int:
        # Unicode digits first: "²".isdigit() is True but int("²") fails; int("٣") is 3.
        return st.one_of(
            st.text(st.sampled_from(UNICODE_DIGITS), min_size=1, max_size=3),
            st.text(st.sampled_from(UNICODE_DIGITS), min_size=1, max_size=21),
            st.sampled_from(["0", "1", "50", "200", "201", "-1", "9223372036854775807"]),
            text,
        )
    if kind is bool:
        return st.one_of(text, st.sampled_from(["true", "false", "1", "0", "yes", "no", "on"]))
    return text


@st.composite
def calls(
    draw: st.DrawFn,
    targets: list[tuple[str, tuple[str, ...], list[tuple[str, type]]]],
    known: list[str],
    basic_auth: str,
    good: dict[str, list[str]],
) -> Call:
    """A request to one of ``targets``: (path, HTTP methods, [(parameter, type)]).

    Each parameter is left out, given a plausible value (``good``, by lower-cased name),
    or a hostile one: a mostly valid request with one or two bad values gets deep into
    validation, where the interesting failures are.
    """
    path, methods, params = draw(st.sampled_from(targets))
    text = hostile_text(known)
    who = draw(st.sampled_from(["admin", "admin", "anonymous"]))
    if draw(st.integers(0, 9)) == 0:  # now and then the wrong HTTP method
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    else:
        method = draw(st.sampled_from(methods))
    pairs: list[tuple[str, Any]] = []
    for name, kind in params:
        plausible = good.get(name.lower(), [])
        mode = draw(
            st.sampled_from(["omit"] + ["hostile"] * 2 + ["good"] * (5 if plausible else 0))
        )
        if mode == "omit":
            continue
        spelled = draw(st.sampled_from([name, name, name.upper(), name.lower()]))
        if mode == "good":
            pairs.append((spelled, draw(st.sampled_from(plausible))))
        else:
            pairs.append((spelled, draw(value_for(kind, text))))
    taken = {name.lower() for name, _ in params} | {"callback"}
    pairs += draw(  # unknown parameters (ignored), with hostile names
        st.lists(
            st.tuples(text.filter(lambda k: k.lower() not in taken), text),
            max_size=2,
            unique_by=lambda pair: pair[0].lower(),
        )
    )
    if pairs and draw(st.integers(0, 9)) == 0:  # a parameter given twice
        pairs.append((pairs[0][0], draw(text)))
    if draw(st.integers(0, 9)) == 0:
        pairs.append(("callback", draw(st.one_of(st.just("cb"), text))))

    headers: dict[str, str] = {}
    if who == "admin":
        headers["Origin"] = SITE_ORIGIN
    else:
        origin = draw(st.sampled_from([None, SITE_ORIGIN, APP_ORIGIN, "null", "https://evil.x"]))
        if origin is not None:
            headers["Origin"] = origin
    authorization = draw(
        st.sampled_from([None, None, basic_auth, "Basic !!", "Bearer x.y.z", "Basic " + "A" * 300])
    )
    if authorization is not None:
        headers["Authorization"] = authorization

    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        return Call(who, method, path, [(k, str(v)) for k, v in pairs], "none", headers=headers)
    in_query = draw(st.integers(0, min(len(pairs), 2))) if draw(st.integers(0, 3)) == 0 else 0
    query = [(k, str(v)) for k, v in pairs[:in_query]]
    body = pairs[in_query:]
    encoding = draw(st.sampled_from(["form", "form", "json", "json", "raw"]))
    if encoding == "json":
        values = json_values(text)
        body = [(k, draw(st.one_of(st.just(v), values))) for k, v in body]
        return Call(who, method, path, query, "json", body, headers=headers)
    if encoding == "raw":
        raw = draw(
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from([31, 32, 33, 1000, 20000]).map(nested_json),
                st.just(b'{"a": "\\ud800"}'),
                st.just(b"a=1&" * 150),
            )
        )
        content_type = draw(
            st.sampled_from(
                [
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "text/plain",
                    "multipart/form-data; boundary=x",
                    "application/json; charset=latin-1",
                    "",
                ]
            )
        )
        return Call(
            who, method, path, query, "raw", raw=raw, content_type=content_type, headers=headers
        )
    return Call(who, method, path, query, "form", [(k, str(v)) for k, v in body], headers=headers)


# -- known crashes in other people's files --------------------------------------------------


# -- the site under attack ----------------------------------------------------------------


class Target:
    """The site, its administrator (re-made when a request signs them out or takes their
    rights), and the values worth guessing (existing names, the client id)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.h = site.harness
        self.admin = site.admin
        self.admins = 0
        self.seen: Counter[str] = Counter()  # "who status", and tolerated known crashes
        answer = self.admin.post(
            "/Applications/update",
            data={"application": APP_NAME, "redirectUris": REDIRECT_URI},
            headers={"Origin": SITE_ORIGIN},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert self.admin.get("/.well-known/jwks.json").status_code == 200  # keys made
        self._csrf(self.admin)
        self.basic = (
            "Basic " + base64.b64encode(f"{site.client_id}:{site.client_secret}".encode()).decode()
        )
        authorize = "/oauth2/authorize?" + urlencode(
            {"client_id": site.client_id, "redirect_uri": REDIRECT_URI, "response_type": "code"}
        )
        self.known = [
            ADMIN,
            APP_NAME,
            "Passport",
            "edit",
            "admin",
            "users:read",
            site.client_id,
            REDIRECT_URI,
            "openid profile email",
            "code",
            "S256",
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "none",
            "login",
            "consent",
            "allow",
            "password",
            "end",
            CSRF,
            STRONG,
            authorize,
            "2026-01-01T00:00:00Z",
            "-name",
            "username",
        ]

        for made in (
            self.admin.post(
                "/Users/create",
                data={"username": "erin", "password": STRONG},
                headers={"Origin": SITE_ORIGIN},
            ),
            self.admin.post(
                "/Groups/create", data={"name": "Editors"}, headers={"Origin": SITE_ORIGIN}
            ),
        ):
            assert made.status_code == 200, made.get_data(as_text=True)
        other = "another strong passphrase 9"
        self.good: dict[str, list[str]] = {
            # the Passport API
            "application": [APP_NAME, "Passport"],
            "permission": ["edit", "admin"],
            "username": ["erin", ADMIN],
            "group": ["Editors"],
            "name": ["NewName", "Editors", APP_NAME],
            "description": ["d"],
            "origins": ["https://new.example.com", APP_ORIGIN],
            "redirecturis": ["https://new.example.com/cb"],
            "enabled": ["true", "false"],
            "disabled": ["true", "false"],
            "confidential": ["true", "false"],
            "overlapseconds": ["60"],
            "password": [STRONG, other],
            "email": ["erin@example.com", ""],
            "displayname": ["Erin"],
            "q": ["e"],
            "offset": ["0", "1"],
            "limit": ["10"],
            "sort": ["name", "-name", "id"],
            "event": ["login"],
            "since": ["2026-01-01T00:00:00Z"],
            "until": ["2026-01-02T00:00:00+00:00"],
            "token": ["x" * 43],
            "id": ["x"],
            "oldpassword": [STRONG],
            "newpassword": [other],
            "remember": ["true"],
            # hosted pages and OpenID Connect
            "client_id": [site.client_id],
            "client_secret": [site.client_secret],
            "redirect_uri": [REDIRECT_URI],
            "response_type": ["code"],
            "scope": ["openid", "openid profile email groups permissions offline_access"],
            "state": ["s"],
            "nonce": ["n"],
            "code_challenge": ["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"],
            "code_challenge_method": ["S256"],
            "code_verifier": ["dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"],
            "prompt": ["login", "consent", "none"],
            "max_age": ["300", "0"],
            "login_hint": [ADMIN],
            "grant_type": ["client_credentials", "authorization_code", "refresh_token"],
            "code": ["x" * 43],
            "refresh_token": ["x" * 43],
            "token_type_hint": ["access_token", "refresh_token"],
            "next": [authorize, "/account"],
            "decision": ["allow", "deny"],
            "csrf": [CSRF],
            "action": ["password", "end"],
            "post_logout_redirect_uri": [REDIRECT_URI],
            "id_token_hint": ["x.y.z"],
            "access_token": ["x.y.z"],
        }

    def _csrf(self, client: PassportClient) -> None:
        client.set_cookie("passport_csrf", CSRF, domain="localhost")

    def client_for(self, call: Call) -> PassportClient:
        if call.who == "admin":
            return self.admin
        anonymous = self.h.new_client()
        self._csrf(anonymous)
        return anonymous

    def keep_admin(self) -> None:
        """After a request that may have signed the administrator out or revoked their
        rights (both legitimate answers to some draws), make sure the next one is admin."""
        status = json.loads(self.admin.get("/Account/status").get_data(as_text=True))
        if not status["LoggedIn"]:
            # A fresh administrator: the old one's password may be reset or throttled.
            self.admins += 1
            name = f"{ADMIN}{self.admins}x{secrets.token_hex(2)}"
            made = self.h.register(name, headers={"Origin": SITE_ORIGIN})
            assert made.status_code == 200, made.get_data(as_text=True)
            grant_admin(self.h, name)
            self.admin = sign_in(self.h, name)
            self._csrf(self.admin)
            return
        user = status["Data"]["User"]["Username"]
        grant_admin(self.h, user)


def api_targets() -> list[tuple[str, tuple[str, ...], list[tuple[str, type]]]]:
    def methods(e: Endpoint) -> tuple[str, ...]:
        return tuple(sorted(e.http_methods - {"HEAD"}))

    return [(e.path, methods(e), [(p.name, p.kind) for p in e.params]) for e in API]


def page_targets() -> list[tuple[str, tuple[str, ...], list[tuple[str, type]]]]:
    return [(path, methods, [(n, str) for n in names]) for path, (methods, names) in PAGES.items()]


def check(target: Target, call: Call, api: bool) -> None:
    client = target.client_for(call)
    before = table_fingerprints(target.h)
    response = call.send(client)
    status = response.status_code
    text = response.get_data(as_text=True)
    note(f"answer {status} {response.mimetype}: {text[:300]!r}")
    target.seen[f"{call.who} {status}"] += 1
    if TALLY:
        short = re.sub(r"'.*'", "'...'", re.sub(r"(?s)<head>.*</head>|<[^>]*>|\s+", " ", text))
        short = short[:110]
        target.seen[f"{status} {short}"] += 1
    if status == 401 and "You must be logged in." in text:
        target.seen[f"{call.who} not logged in"] += 1

    assert status < 500, (status, text[:300])
    assert "Traceback" not in text and "sqlalchemy" not in text.lower()

    if call.method == "HEAD":
        assert text == ""  # the answer to GET, without its body
    elif api and response.mimetype == "application/json":
        envelope = json.loads(text)
        assert set(envelope) == {
            "Success",
            "LoggedIn",
            "Data",
            "ClientExceptions",
            "ServerExceptions",
        }
        assert isinstance(envelope["Success"], bool) and isinstance(envelope["LoggedIn"], bool)
        assert envelope["ServerExceptions"] == []
        for error in envelope["ClientExceptions"]:
            assert set(error) == {"Message", "Source", "Value", "Number"}
            assert isinstance(error["Number"], str) and error["Message"]
        if status >= 400:
            assert envelope["Success"] is False and envelope["ClientExceptions"], text[:300]
    elif api and response.mimetype == "application/javascript":
        assert text.startswith("/**/") and status == 200

    if 400 <= status < 500:
        after = table_fingerprints(target.h)
        assert unexpected_writes(target.h, before, after) == {}, (status, text[:300])
    if call.who == "admin":
        target.keep_admin()


@pytest.fixture(params=SITES, ids=[f"{b}-{s}" for b, s in SITES])
def target(request: pytest.FixtureRequest, factory: Any) -> Iterator[Target]:
    backend, store = request.param
    key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    harness = factory(
        backend,
        store,
        public_url=SITE_ORIGIN,
        key_encryption_key=key,
        # All requests come from one address; the per-account limit still applies.
        throttle_ip_limit=1_000_000,
        throttle_registration_limit=1_000_000,
    )
    yield Target(build_site(harness))


def examples(target: Target) -> int:
    sqlite, server = PROFILES[PROFILE]
    return sqlite if target.h.backend == "sqlite" else server


def run(target: Target, strategy: st.SearchStrategy[Call], api: bool) -> None:
    @settings(
        max_examples=examples(target),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(call=strategy)
    def attack(call: Call) -> None:
        check(target, call, api)

    attack()
    print(sorted(target.seen.items()))  # -s: how far the requests got
    admin_calls = sum(n for k, n in target.seen.items() if re.fullmatch(r"admin \d+", k))
    # The administrator's requests must reach validation, not stop at the login check.
    assert target.seen["admin not logged in"] <= admin_calls // 10, target.seen


def test_every_api_endpoint_survives_hostile_input(target: Target) -> None:
    run(target, calls(api_targets(), target.known, target.basic, target.good), api=True)


def test_every_hosted_page_survives_hostile_input(target: Target) -> None:
    run(target, calls(page_targets(), target.known, target.basic, target.good), api=False)
