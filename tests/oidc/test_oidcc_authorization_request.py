"""The authorization request exactly per OpenID Connect Core 1.0 and OAuth 2.0, one test
per module of the OpenID Foundation's conformance suite (``oidcc-…``) that it mirrors,
in process on SQLite and on PostgreSQL with Redis sessions.

* scopes (Core §3.1.2.1, RFC 6749 §3.3, §5.1): unknown ones are ignored, the token
  response says what was granted; ``invalid_scope`` only when nothing known is left;
* ``request`` / ``request_uri`` (Core §6): refused at the validated redirect URI with
  ``request_not_supported`` / ``request_uri_not_supported``, never ignored — but for a
  ``request_uri`` of Passport's PAR endpoint (RFC 9126 §4);
* ``response_mode`` (Form Post Response Mode, Multiple Response Type Encoding
  Practices §2.1): ``query`` and ``form_post``; ``fragment`` and others refused;
* refresh tokens (Core §11): always for an application with ``refresh_tokens`` on,
  otherwise only for ``offline_access`` that the user allowed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import select

from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import ids
from oidc_support import query
from oidc_support import rows
from oidc_support import token
from oidc_support import wiki_request
from passport.oidc.authorization import SCOPES
from passport.services.applications import find_by_name
from passport.storage.models import AuthorizationCode

from support import ORIGIN
from support import Harness

# -- helpers -----------------------------------------------------------------------------


def sign_in(h: Harness) -> None:
    answer = h.client.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def set_app(h: Harness, name: str = "Wiki", **values: Any) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        for key, value in values.items():
            setattr(app, key, value)


def allow(h: Harness, asked: Any) -> Any:
    """Follow a redirect to the consent page and allow; the answer to the client."""
    location = asked.headers["Location"]
    assert location.startswith("/consent?"), location
    page = h.client.get(location)
    return h.client.post("/consent", data={**form_of(page), "decision": "allow"})


def code_row(h: Harness, code: str) -> AuthorizationCode:
    with h.app.services.db.session() as db:
        row = db.scalars(
            select(AuthorizationCode).where(
                AuthorizationCode.code_hash == hashlib.sha256(code.encode()).hexdigest()
            )
        ).one()
        db.expunge(row)
        return row


def id_token_claims(issued: dict[str, Any]) -> dict[str, Any]:
    payload = issued["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def unsigned_request_object(claims: dict[str, Any]) -> str:
    """A Request Object with ``alg: none`` (Core §6.1), as the conformance suite sends."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."


class FormPage(HTMLParser):
    """What a browser reads from a page: its forms (action, method, fields, buttons, and
    whether a button sits in ``<noscript>``), its scripts and its styles."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.inline_handlers: list[str] = []
        self.script_sources: list[str] = []
        self._in: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.inline_handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "form":
            self.forms.append(
                {
                    "action": attributes.get("action"),
                    "method": (attributes.get("method") or "get").lower(),
                    "fields": [],
                    "noscript_buttons": 0,
                }
            )
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"].append((attributes.get("name"), attributes.get("value")))
        elif tag == "button" and self.forms and "noscript" in self._in:
            self.forms[-1]["noscript_buttons"] += 1
        elif tag == "script" and attributes.get("src"):
            self.script_sources.append(attributes["src"] or "")
        if tag not in ("input", "meta"):
            self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            while self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "script":
            self.scripts.append(data)
        elif self._in and self._in[-1] == "style":
            self.styles.append(data)


def csp_of(response: Any) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives: dict[str, list[str]] = {}
    for directive in header.split(";"):
        name, *values = directive.split()
        assert name not in directives, header
        directives[name] = values
    return directives


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def posted_form(response: Any) -> tuple[str, dict[str, str]]:
    """A form-post answer as a browser runs it: the page's CSP must allow its one script
    (by hash) and its form's target; returns where the form posts and what."""
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Location" not in response.headers
    assert "no-store" in response.headers["Cache-Control"]
    page = FormPage(response.get_data(as_text=True))
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    # exactly the one inline script, allowed by its hash; no other script, no handlers
    assert len(page.scripts) == 1 and not page.script_sources and not page.inline_handlers
    assert csp["script-src"] == [sha256_source(page.scripts[0])]
    assert csp["style-src"] == [sha256_source(s) for s in page.styles]
    for values in csp.values():
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} & set(values), csp
    assert "submit" in page.scripts[0] and "document.forms[0]" in page.scripts[0]
    [form] = page.forms
    assert form["method"] == "post" and form["noscript_buttons"] == 1
    # form-action: the redirect URI's origin and nothing else
    assert csp["form-action"] == ["http://127.0.0.1:9"]
    assert form["action"].startswith("http://127.0.0.1:9/")
    names = [name for name, _ in form["fields"]]
    assert len(names) == len(set(names)), names
    return form["action"], dict(form["fields"])


# -- scopes ------------------------------------------------------------------------------


def test_oidcc_scope_profile(h: Harness) -> None:
    """``openid profile``: granted as asked, the token response's ``scope`` says so, and
    the ID token carries the profile claims."""
    sign_in(h)
    answer = allow(h, authorize(h, **wiki_request(h, scope="openid profile")))
    issued = body(exchange(h, query(answer)["code"]))
    assert issued["scope"] == "openid profile"
    claims = id_token_claims(issued)
    assert claims["preferred_username"] == "alice" and claims["name"] == "Alice"


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        ("openid phone", "openid"),  # oidcc-scope-phone
        ("openid profile email address phone", "openid profile email"),  # oidcc-scope-all
        ("phone openid x:y openid", "openid"),
    ],
)
def test_oidcc_scope_phone_unknown_scope_ignored(h: Harness, asked: str, granted: str) -> None:
    """Scopes Passport does not know are left out, not refused (Core §3.1.2.1, RFC 6749
    §3.3): the code carries the known ones, the consent page names no other, and the
    token response's ``scope`` says what was granted (RFC 6749 §5.1)."""
    sign_in(h)
    asked_for = authorize(h, **wiki_request(h, scope=asked))
    consent = h.client.get(asked_for.headers["Location"]).get_data(as_text=True)
    assert re.findall(r"<li>(.*?)</li>", consent) == [SCOPES[s] for s in granted.split()]
    answer = allow(h, asked_for)
    code = query(answer)["code"]
    assert code_row(h, code).scope == granted
    issued = body(exchange(h, code))
    assert issued["scope"] == granted
    assert "phone_number" not in id_token_claims(issued)


def test_oidcc_scope_unknown_only_is_invalid_scope(h: Harness) -> None:
    """Nothing known left of a non-empty ``scope``: ``invalid_scope`` at the redirect URI
    (RFC 6749 §4.1.2.1), with ``state`` and ``iss``, and nothing written."""
    sign_in(h)
    first_party(h)
    for scope in ("phone", "address phone x:y"):
        answer = authorize(h, **wiki_request(h, scope=scope))
        assert answer.status_code == 302 and answer.headers["Location"].startswith(REDIRECT)
        assert query(answer) | {"error_description": ""} == {
            "error": "invalid_scope",
            "error_description": "",
            "state": "st",
            "iss": ORIGIN,
        }
    assert rows(h, "oauth_codes") == 0 and rows(h, "pending_authorizations") == 0


# -- unknown parameters and Request Objects ---------------------------------------------


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(h: Harness) -> None:
    """An unknown parameter is ignored (RFC 6749 §3.1, Core §3.1.2.1), not an error."""
    sign_in(h)
    first_party(h)
    answer = authorize(h, **wiki_request(h, extra="foobar", display="page", ui_locales="fr"))
    assert "code" in query(answer) and query(answer)["state"] == "st"
    assert "access_token" in body(exchange(h, query(answer)["code"]))


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    h: Harness,
) -> None:
    """An unsigned Request Object (Core §6.1) is refused ``request_not_supported`` at the
    redirect URI — never read, never ignored — for a signed-in user too, and nothing is
    written."""
    sign_in(h)
    first_party(h)
    request_object = unsigned_request_object(
        {
            "client_id": ids(h)["client_id"],
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "openid email",
            "state": "st",
            "nonce": "n-0S6_WzA2Mj",
        }
    )
    for mode in ("query", "form_post"):
        answer = authorize(h, **wiki_request(h, request=request_object, response_mode=mode))
        values = query(answer) if mode == "query" else posted_form(answer)[1]
        assert values["error"] == "request_not_supported", values
        assert values["state"] == "st" and values["iss"] == ORIGIN and "code" not in values
    assert rows(h, "oauth_codes") == 0 and rows(h, "pending_authorizations") == 0


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(
    h: Harness,
) -> None:
    """``request_uri`` (Core §6.2): a Request Object by reference — an https URL, any URN
    but the PAR endpoint's — is refused ``request_uri_not_supported``: Passport never
    fetches it (no request leaves to an address a client names).  The one accepted is a
    ``request_uri`` of Passport's own PAR endpoint (RFC 9126 §4, tests/oidc/test_par.py)."""
    sign_in(h)
    first_party(h)
    for value in (
        "https://rp.example/request.jwt",
        "urn:example:request",
        "urn:ietf:params:oauth:request_uri",  # the prefix without its colon
    ):
        answer = authorize(h, **wiki_request(h, request_uri=value))
        assert query(answer)["error"] == "request_uri_not_supported", value
        assert query(answer)["state"] == "st"
    assert rows(h, "oauth_codes") == 0
    credentials = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    pushed = h.client.post(
        "/oauth2/par",
        data=wiki_request(h, state="pushed"),
        headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
    )
    assert pushed.status_code == 201, pushed.get_data(as_text=True)
    request_uri = body(pushed)["request_uri"]
    answer = authorize(h, client_id=ids(h)["client_id"], request_uri=request_uri)
    assert query(answer)["state"] == "pushed" and "code" in query(answer)
    assert rows(h, "oauth_codes") == 1


def test_oidcc_ensure_request_object_with_redirect_uri(h: Harness) -> None:
    """A Request Object naming another redirect URI: the refusal goes to the redirect URI
    of the plain parameters, registered and validated — never to the object's; and with
    no registered one among the plain parameters it is the error page, no redirect."""
    evil = "https://evil.example/cb"
    request_object = unsigned_request_object({"redirect_uri": evil, "response_type": "code"})
    answer = authorize(h, **wiki_request(h, request=request_object))
    assert answer.headers["Location"].startswith(REDIRECT + "?")
    assert query(answer)["error"] == "request_not_supported"
    for params in (
        {**wiki_request(h, request=request_object), "redirect_uri": evil},
        {k: v for k, v in wiki_request(h, request=request_object).items() if k != "redirect_uri"},
    ):
        page = authorize(h, **params)
        assert page.status_code == 400 and "Location" not in page.headers
        assert page.mimetype == "text/html"


def test_empty_request_parameters_are_absent(h: Harness) -> None:
    """RFC 6749 §3.1: a parameter without a value is as if omitted."""
    sign_in(h)
    first_party(h)
    answer = authorize(h, **wiki_request(h, request="", request_uri="", response_mode=""))
    assert "code" in query(answer)


# -- response modes ----------------------------------------------------------------------


def test_oidcc_response_mode_form_post(h: Harness) -> None:
    """Form Post Response Mode §2: the code, ``state`` and ``iss`` (RFC 9207) come as a
    page whose form posts them to the redirect URI by itself; the page's CSP allows
    that one script by its hash and a form to the redirect URI's origin only."""
    sign_in(h)
    first_party(h)
    answer = authorize(h, **wiki_request(h, response_mode="form_post", state="a&b<\"'>"))
    action, fields = posted_form(answer)
    assert action == REDIRECT
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == "a&b<\"'>" and fields["iss"] == ORIGIN
    issued = body(exchange(h, fields["code"]))
    assert "access_token" in issued and "id_token" in issued


def test_oidcc_response_mode_form_post_after_consent(h: Harness) -> None:
    """A request that waited for its user (pending authorization) is answered in the mode
    it asked for, once the user allows — or refuses (``access_denied``)."""
    sign_in(h)
    asked = authorize(h, **wiki_request(h, response_mode="form_post"))
    action, fields = posted_form(allow(h, asked))
    assert action == REDIRECT and set(fields) == {"code", "state", "iss"}
    asked = authorize(h, **wiki_request(h, response_mode="form_post", prompt="consent"))
    page = h.client.get(asked.headers["Location"])
    denied = h.client.post("/consent", data={**form_of(page), "decision": "deny"})
    action, fields = posted_form(denied)
    assert fields["error"] == "access_denied" and fields["state"] == "st"


def test_oidcc_response_mode_form_post_errors(h: Harness) -> None:
    """Errors after the redirect URI is validated go by the mode asked for too
    (``login_required`` of ``prompt=none``, ``unsupported_response_type``…); before it,
    the error page."""
    for extra, error in (
        ({"prompt": "none"}, "login_required"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
    ):
        answer = authorize(h, **wiki_request(h, response_mode="form_post", **extra))
        action, fields = posted_form(answer)
        assert action == REDIRECT
        assert fields["error"] == error and fields["state"] == "st" and fields["iss"] == ORIGIN
    page = authorize(
        h, **wiki_request(h, response_mode="form_post", redirect_uri="https://evil.example/")
    )
    assert page.status_code == 400 and "<form" not in page.get_data(as_text=True)


def test_oidcc_response_mode_query_explicit(h: Harness) -> None:
    sign_in(h)
    first_party(h)
    answer = authorize(h, **wiki_request(h, response_mode="query"))
    assert answer.status_code == 302 and "code" in query(answer)


@pytest.mark.parametrize("mode", ["fragment", "form_post.jwt", "web_message", "QUERY"])
def test_oidcc_response_mode_unsupported_is_refused(h: Harness, mode: str) -> None:
    """Only the code flow is supported: ``fragment`` (and any other mode) is
    ``invalid_request``, in the query — the code flow's default — and nothing is issued."""
    sign_in(h)
    first_party(h)
    answer = authorize(h, **wiki_request(h, response_mode=mode))
    assert answer.status_code == 302 and "#" not in answer.headers["Location"]
    assert query(answer)["error"] == "invalid_request" and query(answer)["state"] == "st"
    assert rows(h, "oauth_codes") == 0


def test_form_post_page_csp_names_the_redirect_uris_origin() -> None:
    """``form-action`` is the redirect URI's origin (scheme, host, port); a host CSP cannot
    name (an IPv6 literal) falls back to the scheme, never to a broken header."""
    from passport.pages.render import form_action_source

    assert form_action_source("https://app.example/cb?x=1") == "https://app.example"
    assert form_action_source("https://App.Example:8443/cb") == "https://app.example:8443"
    assert form_action_source("http://127.0.0.1:9/callback") == "http://127.0.0.1:9"
    assert form_action_source("http://[::1]:8080/cb") == "http:"
    assert form_action_source("javascript:alert(1)") == "'none'"


# -- discovery ---------------------------------------------------------------------------


def test_oidcc_discovery_says_what_the_authorization_endpoint_does(h: Harness) -> None:
    document = body(h.client.get("/.well-known/openid-configuration"))
    assert document["response_modes_supported"] == ["query", "form_post"]
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    assert "offline_access" in document["scopes_supported"]


# -- refresh tokens (Core §11) -----------------------------------------------------------


def refresh(h: Harness, value: str, **extra: str) -> Any:
    return token(h, grant_type="refresh_token", refresh_token=value, **extra)


def test_oidcc_refresh_token_default_application(h: Harness) -> None:
    """An application with ``refresh_tokens`` on (the default, and every application from
    before migration 0010) gets one with every code, as before."""
    sign_in(h)
    first_party(h)
    issued = body(exchange(h, query(authorize(h, **wiki_request(h)))["code"]))
    assert "refresh_token" in issued
    assert "access_token" in body(refresh(h, issued["refresh_token"]))


def test_oidcc_refresh_token_only_with_offline_access(h: Harness) -> None:
    """``refresh_tokens`` off: no refresh token for ``openid``; ``offline_access`` without
    ``prompt=consent`` is dropped (Core §11) — even after the user allowed it once — and
    with ``prompt=consent`` the user is asked, and the refresh token comes and rotates."""
    set_app(h, refresh_tokens=False)
    sign_in(h)
    issued = body(exchange(h, query(allow(h, authorize(h, **wiki_request(h))))["code"]))
    assert "refresh_token" not in issued and issued["scope"] == "openid"

    asked = authorize(h, **wiki_request(h, scope="openid offline_access", prompt="consent"))
    consent = h.client.get(asked.headers["Location"]).get_data(as_text=True)
    assert "Keep access while you are away" in consent
    answer = allow(h, asked)
    issued = body(exchange(h, query(answer)["code"]))
    assert issued["scope"] == "openid offline_access" and "refresh_token" in issued
    rotated = body(refresh(h, issued["refresh_token"]))
    assert "refresh_token" in rotated and rotated["scope"] == "openid offline_access"

    # allowed before, but no prompt=consent now: offline_access is ignored, no refresh token
    again = authorize(h, **wiki_request(h, scope="openid offline_access"))
    assert again.status_code == 302 and again.headers["Location"].startswith(REDIRECT)
    issued = body(exchange(h, query(again)["code"]))
    assert issued["scope"] == "openid" and "refresh_token" not in issued


def test_oidcc_refresh_token_offline_access_alone_without_consent_is_invalid_scope(
    h: Harness,
) -> None:
    """``scope=offline_access`` ignored (no ``prompt=consent``, third party) leaves
    nothing: ``invalid_scope``."""
    sign_in(h)
    answer = authorize(h, **wiki_request(h, scope="offline_access"))
    assert query(answer)["error"] == "invalid_scope"


def test_oidcc_refresh_token_first_party_offline_access(h: Harness) -> None:
    """A first-party application's ``offline_access`` counts without ``prompt=consent``:
    its administrator allowed it for its users (Core §11's "other conditions")."""
    set_app(h, refresh_tokens=False)
    sign_in(h)
    first_party(h)
    plain = body(exchange(h, query(authorize(h, **wiki_request(h)))["code"]))
    assert "refresh_token" not in plain
    answer = authorize(h, **wiki_request(h, scope="openid offline_access"))
    issued = body(exchange(h, query(answer)["code"]))
    assert issued["scope"] == "openid offline_access" and "refresh_token" in issued


def test_refresh_tokens_switched_off_stop_the_ones_without_offline_access(h: Harness) -> None:
    """Switched off, an application's refresh tokens issued without ``offline_access`` are
    refused (``invalid_grant``); those with it keep rotating; a refresh narrowed to leave
    ``offline_access`` out (RFC 6749 §6) gets no new refresh token."""
    sign_in(h)
    first_party(h)
    plain = body(exchange(h, query(authorize(h, **wiki_request(h)))["code"]))
    offline = body(
        exchange(h, query(authorize(h, **wiki_request(h, scope="openid offline_access")))["code"])
    )
    set_app(h, refresh_tokens=False)
    refused = refresh(h, plain["refresh_token"])
    assert refused.status_code == 400 and body(refused)["error"] == "invalid_grant"
    narrowed = body(refresh(h, offline["refresh_token"], scope="openid"))
    assert narrowed["scope"] == "openid" and "refresh_token" not in narrowed


def test_refresh_token_policy_reaches_consent_pages_through_the_pending_request(
    h: Harness,
) -> None:
    """``offline_access`` with ``prompt=consent`` for a user who still has to sign in: the
    pending authorization keeps it, and the answer is the refresh token."""
    set_app(h, refresh_tokens=False)
    asked = authorize(
        h, **wiki_request(h, scope="openid offline_access", prompt="consent"), extra="1"
    )
    login = h.client.get(asked.headers["Location"])
    signed_in = h.client.post(
        "/login", data={**form_of(login), "username": "alice", "password": PASSWORD}
    )
    answer = allow(h, signed_in)
    issued = body(exchange(h, query(answer)["code"]))
    assert "refresh_token" in issued and issued["scope"] == "openid offline_access"
    # the same way without offline_access: no refresh token
    asked = authorize(h, **wiki_request(h, prompt="consent"))
    issued = body(exchange(h, query(allow(h, asked))["code"]))
    assert "refresh_token" not in issued and issued["scope"] == "openid"
