"""Rendering a hosted page: templates, the Content-Security-Policy, the forms' CSRF token.

Every page is a complete HTML document with its one stylesheet inline; the CSP
allows that stylesheet by its hash and nothing else (no script at all — the one
exception is the form-post answer below), and no page may be framed
(``frame-ancestors 'none'``, against clickjacking of the consent and login forms).
Forms carry a CSRF token that must equal an ``HttpOnly``, ``SameSite=Strict`` cookie
(OWASP ASVS V3.5, double-submit), compared in constant time; the ``Origin`` check of
:meth:`passport.oidc.base.Part.same_origin` comes on top of it.

The form-post answer (:func:`form_post`, OAuth 2.0 Form Post Response Mode §2) is the
one page with a script: the authorization response must reach the client as a POST,
which only the browser can send, so the page submits its form by itself.  Its CSP
allows exactly that script by its SHA-256, the stylesheet by its, and a form
submitted to the redirect URI's origin only (``form-action``); without JavaScript a
``<noscript>`` button sends the same form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import select_autoescape
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import Part
from passport.web.errors import WebError
from passport.web.errors import headers_of
from passport.web.errors import status_of

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSS = (TEMPLATES / "passport.css").read_text()
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
PAGE_CSP = f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; frame-ancestors 'none'"
# The passkey pages' one script (WebAuthn needs JavaScript), served by Passport itself
# at a URL naming its hash (cached for good); it fetches challenges from Passport only.
# No ``form-action``: a sign-in form's answer redirects to the application, and browsers
# hold form-action to redirects after a form post too.
PASSKEY_JS = (TEMPLATES / "passkey.js").read_bytes()
PASSKEY_JS_URL = "/assets/passkey-" + hashlib.sha256(PASSKEY_JS).hexdigest()[:16] + ".js"
# The console's one script (the client secret's copy button, the audit log's live tail),
# served the same way; it polls ``/admin/audit/tail`` on Passport's own origin.  The
# pages name it with its SRI hash too.
CONSOLE_JS = (TEMPLATES / "console.js").read_bytes()
CONSOLE_JS_URL = "/assets/console-" + hashlib.sha256(CONSOLE_JS).hexdigest()[:16] + ".js"
CONSOLE_JS_INTEGRITY = "sha384-" + base64.b64encode(hashlib.sha384(CONSOLE_JS).digest()).decode()
SCRIPT_PAGE_CSP = (
    f"default-src 'none'; script-src 'self'; connect-src 'self'; "
    f"style-src 'sha256-{CSS_HASH}'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def console_csp(origin: str) -> str:
    """The CSP of the console's two script pages: the console's script by its exact URL
    on Passport's origin (CSP 3 §6.7.2.9: a source with a path matches that file), not
    ``'self'``, which would also run any other script-shaped answer of Passport's — a
    JSONP call names a function of its caller's choosing — should the page ever carry an
    injected ``<script>``."""
    return SCRIPT_PAGE_CSP.replace(
        "script-src 'self'", f"script-src {origin.rstrip('/')}{CONSOLE_JS_URL}"
    )


CSRF_COOKIE = "passport_csrf"
_CSRF_LENGTH = 43  # secrets.token_urlsafe(32)
FORM_EXPIRED = "The form expired; please try again."
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
# The form-post page's one script, allowed by its hash.  ``HTMLFormElement.prototype.submit``
# rather than ``form.submit()``: a field named "submit" cannot shadow it.
FORM_POST_SCRIPT = "HTMLFormElement.prototype.submit.call(document.forms[0]);"
FORM_POST_SCRIPT_HASH = base64.b64encode(
    hashlib.sha256(FORM_POST_SCRIPT.encode()).digest()
).decode()
# CSP 3 host-source: host-char = ALPHA / DIGIT / "-" (no IPv6 literal, nothing else).
_CSP_HOST = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def page(name: str, status: int = 200, *, script: bool = False, **values: Any) -> Response:
    """The template ``name`` as a complete, uncached page under the pages' CSP (with
    ``script``: the passkey script allowed, from Passport's own origin only)."""
    body = _env.get_template(name).render(
        css=CSS, passkey_js=PASSKEY_JS_URL if script else None, **values
    )
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = SCRIPT_PAGE_CSP if script else PAGE_CSP
    response.headers["Cache-Control"] = "no-store"
    # not no-referrer: with it, browsers send "Origin: null" on the page's own forms
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def error_page(message: str, code: str = "", status: int = 400) -> Response:
    return page("error.html", status, message=message, code=code)


def client_error_page(exc: ClientError, code: str = "") -> Response:
    """A domain error (a refused parameter, a body too large) as the error page, with
    the status and headers of the one table in :mod:`passport.web.errors`."""
    response = error_page(exc.message, code, status_of(exc))
    for name, value in headers_of(exc).items():
        response.headers[name] = value
    return response


def refusal(request: Request, error: WebError) -> Response:
    """How a page answers a refusal of the routing map (405 with ``Allow``, 404…)."""
    return client_error_page(error)


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    """The form's ``csrf`` field equals the CSRF cookie (constant-time)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = form.get("csrf") or ""
    # Only a token of the form Passport issues (32 random bytes): a short value a
    # sibling site managed to plant as a cookie is not one.
    return len(cookie) == _CSRF_LENGTH and hmac.compare_digest(cookie.encode(), given.encode())


def _script(body: bytes) -> Response:
    """A script at a URL naming its hash: cached for good, never sniffed as anything else."""
    response = Response(body, content_type="text/javascript; charset=utf-8")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def passkey_script(request: Request) -> Response:
    """``/assets/passkey-<hash>.js``: the passkey script, immutable at its URL."""
    return _script(PASSKEY_JS)


def console_script(request: Request) -> Response:
    """``/assets/console-<hash>.js``: the console's script, immutable at its URL."""
    return _script(CONSOLE_JS)


def form_page(
    request: Request,
    name: str,
    status: int = 200,
    *,
    secure: bool,
    script: bool = False,
    **values: Any,
) -> Response:
    """A page with a form: the browser's CSRF token in the form (a new one, and its
    cookie, when the browser has none)."""
    token = request.cookies.get(CSRF_COOKIE)
    fresh = not token or len(token) != _CSRF_LENGTH
    if fresh:
        token = secrets.token_urlsafe(32)
    response = page(name, status, script=script, csrf=token, **values)
    if fresh:
        assert token is not None
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=secure
        )
    return response


class Page(Part):
    """A hosted page: its forms carry the CSRF token, and a post must bring it back from
    Passport's own origin."""

    def form(
        self,
        request: Request,
        name: str,
        status: int = 200,
        *,
        script: bool = False,
        **values: Any,
    ) -> Response:
        return form_page(
            request, name, status, secure=self.secure(request), script=script, **values
        )

    def parsed(self, request: Request) -> dict[str, str] | Response:
        """The page's parameters (a GET's query, a POST's form), or the answer to a
        refusal: a malformed parameter (its error page), or a POST without this
        browser's CSRF token from Passport itself (403)."""
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return client_error_page(exc)
        if request.method == "POST" and not self.form_ok(request, params):
            return error_page(FORM_EXPIRED, status=403)
        return params

    def form_ok(self, request: Request, params: dict[str, str]) -> bool:
        """The post carries this browser's CSRF token and comes from Passport itself."""
        return csrf_ok(request, params) and self.same_origin(request)


def form_action_source(uri: str) -> str:
    """The CSP source expression of ``uri``'s origin (``https://app.example:8443``), for
    ``form-action``.  A host CSP cannot name (an IPv6 literal: CSP 3 §2.3.1 host-char
    is letters, digits and "-") falls back to the scheme alone (``http:``); so does
    anything else that could not be a source (no character of it reaches the header)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "'none'"
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        return f"{scheme}:"
    if not _CSP_HOST.fullmatch(host):
        return f"{scheme}:"
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def form_post(action: str, fields: dict[str, str]) -> Response:
    """An authorization response by OAuth 2.0 Form Post Response Mode §2: an HTML page
    whose form posts ``fields`` to ``action`` (the validated redirect URI) by itself.

    Its CSP: the one script by its hash (no other inline code, no script source),
    the stylesheet by its hash, ``form-action`` the redirect URI's origin, no framing
    and no ``<base>``.  Never cached (§2, and RFC 6749 §5.1: it carries a code).  The
    referrer policy ``origin`` sends the client Passport's origin, never the URL of the
    page (which may name the authorization request), and keeps the ``Origin`` of the
    POST a real one (under ``same-origin`` or ``no-referrer`` it would be ``null``)."""
    body = _env.get_template("form_post.html").render(
        css=CSS, action=action, fields=list(fields.items()), script=FORM_POST_SCRIPT
    )
    response = Response(body, status=200, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'sha256-{FORM_POST_SCRIPT_HASH}'; "
        f"style-src 'sha256-{CSS_HASH}'; form-action {form_action_source(action)}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "origin"
    return response
