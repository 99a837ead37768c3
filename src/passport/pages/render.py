"""Rendering a hosted page: templates, the Content-Security-Policy, the forms' CSRF token.

Every page is a complete HTML document with its one stylesheet inline; the CSP
allows that stylesheet by its hash and nothing else (no script at all), and no page
may be framed (``frame-ancestors 'none'``, against clickjacking of the consent and
login forms).  Forms carry a CSRF token that must equal an ``HttpOnly``,
``SameSite=Strict`` cookie (OWASP ASVS V3.5, double-submit), compared in constant
time; the ``Origin`` check of :meth:`passport.oidc.base.Part.same_origin` comes on
top of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import select_autoescape
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc.base import Part
from passport.web.errors import WebError
from passport.web.errors import headers_of
from passport.web.errors import status_of

TEMPLATES = Path(__file__).resolve().parent / "templates"
CSS = (TEMPLATES / "passport.css").read_text()
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
PAGE_CSP = f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; frame-ancestors 'none'"
CSRF_COOKIE = "passport_csrf"
_CSRF_LENGTH = 43  # secrets.token_urlsafe(32)
FORM_EXPIRED = "The form expired; please try again."
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def page(name: str, status: int = 200, **values: Any) -> Response:
    """The template ``name`` as a complete, uncached page under the pages' CSP."""
    body = _env.get_template(name).render(css=CSS, **values)
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = PAGE_CSP
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


def form_page(
    request: Request, name: str, status: int = 200, *, secure: bool, **values: Any
) -> Response:
    """A page with a form: the browser's CSRF token in the form (a new one, and its
    cookie, when the browser has none)."""
    token = request.cookies.get(CSRF_COOKIE)
    fresh = not token or len(token) != _CSRF_LENGTH
    if fresh:
        token = secrets.token_urlsafe(32)
    response = page(name, status, csrf=token, **values)
    if fresh:
        assert token is not None
        response.set_cookie(
            CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=secure
        )
    return response


class Page(Part):
    """A hosted page: its forms carry the CSRF token, and a post must bring it back from
    Passport's own origin."""

    def form(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        return form_page(request, name, status, secure=self.secure(request), **values)

    def form_ok(self, request: Request, params: dict[str, str]) -> bool:
        """The post carries this browser's CSRF token and comes from Passport itself."""
        return csrf_ok(request, params) and self.same_origin(request)
