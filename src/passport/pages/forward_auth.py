"""``/forward-auth``: the door a reverse proxy asks before it passes a request on to a
site Passport guards, and ``/forward-auth/return``: the way back to that site after
signing in.  The decision is :func:`passport.services.forward_auth.decide`; this module
reads what the proxies send and answers in the form each expects.

What each proxy sends (``docs/forward-auth.md`` has their configurations):

* nginx ``auth_request``: ``X-Original-URL`` (absolute) and ``X-Original-Method``, set
  by ``proxy_set_header`` in the configuration.  Without a session the answer is 401
  with the login URL in ``Location``, which nginx's ``error_page 401 =302`` sends on.
* Traefik ForwardAuth and Caddy ``forward_auth``: ``X-Forwarded-Method``,
  ``-Proto``, ``-Host``, ``-Uri``.  Without a session the answer is a 302 to Passport's
  login page, which returns through ``/forward-auth/return``.

Exactly one of the two forms: a check carrying both is refused (403), since proxies
pass the client's own headers into the check — a client of Caddy could otherwise send
``X-Original-URL`` naming another page than the one it asks for; the shipped
configurations clear the other form, and Traefik's copies only ``Cookie``.

These headers are believed **only from a peer in** ``trusted_proxies``
(:func:`passport.web.origins.from_trusted_proxy`); any other peer gets 400, whatever it
sends: the endpoint has nothing to decide about without them, and a refusal tells an
operator at once that the proxy's address is missing from the setting (ignoring the
headers would answer for Passport's own host, which is no site).  A request that could
reach a site without its proxy is the site's own exposure, not Passport's.

The answer 200 carries the identity (header names from the settings
``forward_auth_*_header``): only ever values from Passport's database, each made safe by
:func:`passport.services.forward_auth.header_value` (printable ASCII as is, anything
else RFC 8187 ``UTF-8''…`` percent-encoded: never a CR or LF).  The proxy copies them
onto the request it passes on, replacing any the client sent.  It also carries
``Cookie`` (Traefik's and Caddy's form): the request's cookies without Passport's
(:func:`~passport.services.forward_auth.site_cookies`), for Traefik, whose
``authResponseHeaders`` puts it in place of the request's (nginx and Caddy remove the
session with patterns of their own and ignore it).

``/forward-auth/return?rd=<URL>``: ``rd`` must be an ``http``/``https`` URL of a host an
application registered for forward-auth (:func:`~passport.services.forward_auth.return_target`;
anything else 400, no open redirect).  Signed in: 302 there.  Not signed in: 302 to
``/login?next=/forward-auth/return?rd=…`` — the login page's ``next`` stays a path on
Passport (:func:`passport.pages.login.safe_next` is not widened); the external return
is this separate, validated parameter, and it survives the second-factor steps because
``next`` does.
"""

from __future__ import annotations

from urllib.parse import quote
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import redirect
from passport.oidc.pending import BROWSER_COOKIE
from passport.pages import render
from passport.services import forward_auth
from passport.services.factors import STEP_COOKIE
from passport.services.forward_auth import Decision
from passport.services.forward_auth import Original
from passport.services.forward_auth import Verdict
from passport.services.forward_auth import header_value
from passport.web import origins
from passport.web.context import RequestContext

RETURN_PATH = "/forward-auth/return"
NOT_FROM_PROXY = (
    "Forward-auth answers the reverse proxies named in Passport's trusted_proxies only."
)
BAD_REQUEST = (
    "The proxy did not say which request to check: send X-Original-URL (nginx) or "
    "X-Forwarded-Method, -Proto, -Host and -Uri (Traefik, Caddy) — a plain http or https "
    "URL of a host name."
)
AMBIGUOUS = (
    "The check carries both X-Original-URL and X-Forwarded-Uri/-Method: configure the "
    "proxy to send one form only (docs/forward-auth.md)."
)
BAD_RETURN = "This is not an address of a site Passport guards."


def _plain(text: str, status: int) -> Response:
    response = Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


class ForwardAuthPage(render.Page):
    def check(self, request: Request) -> Response:
        """``/forward-auth`` (any method: nginx and Caddy send GET, Traefik the original)."""
        if not origins.from_trusted_proxy(request, self.settings):
            return _plain(NOT_FROM_PROXY, 400)
        headers = request.headers
        nginx = "X-Original-URL" in headers
        if nginx and ("X-Forwarded-Uri" in headers or "X-Forwarded-Method" in headers):
            # Both forms: one of them came from the client through a proxy that passes
            # the client's headers on (Caddy and Traefik copy them into the check, nginx
            # too unless cleared).  Which one the proxy set cannot be told: refused.
            return _plain(AMBIGUOUS, 403)
        if nginx:
            asked = forward_auth.original_from_url(
                headers.get("X-Original-Method", "GET"), headers.get("X-Original-URL", "")
            )
        else:
            asked = forward_auth.original(
                headers.get("X-Forwarded-Method", ""),
                headers.get("X-Forwarded-Proto", ""),
                headers.get("X-Forwarded-Host", ""),
                headers.get("X-Forwarded-Uri", ""),
            )
        if asked is None:
            # Denied, not 400: nginx turns any answer but 2xx, 401 and 403 into a 500 of
            # its own; a request Passport cannot read is a request it does not let in.
            return _plain(BAD_REQUEST, 403)
        ctx = self.context(request, write=False)
        return ctx.respond(lambda: self._answer(ctx, asked, nginx=nginx))

    def _answer(self, ctx: RequestContext, asked: Original, *, nginx: bool) -> Response:
        session = ctx.login_session
        # The hot connection, no transaction: the check only reads (one statement in
        # the common case, services/forward_auth.py ``decide``).
        with self.services.db.hot_read() as conn:
            decision = forward_auth.decide(conn, self.settings, asked, session)
        verdict = decision.verdict
        if verdict is Verdict.ALLOW:
            # The site's cookies for Traefik's form only: nginx ignores the answer's
            # Cookie, and a copy of big cookies overflowed its buffer (a third review).
            cookies = "" if nginx else ctx.request.headers.get("Cookie", "")
            return self._identity(decision, cookies)
        if verdict is Verdict.UNKNOWN_SITE:
            return render.error_page(decision.reason, status=403)
        if verdict is Verdict.SIGN_IN:
            login = self.issuer() + login_url(asked.url)
            if nginx:
                # nginx passes on no answer of auth_request but its status: its
                # configuration takes this Location (auth_request_set) for the 302 of its
                # error_page 401 — the login URL, encoded once, here.
                response = _plain("Sign in to Passport first.", 401)
                response.headers["Location"] = login
                return response
            return redirect(login)
        return render.error_page(decision.reason, status=403)

    def _identity(self, decision: Decision, cookies: str) -> Response:
        settings = self.settings
        response = Response(status=200)
        # The site's own cookies without Passport's session, for a proxy that passes the
        # answer's Cookie on in place of the request's (Traefik's authResponseHeaders).
        kept = forward_auth.site_cookies(cookies, self._passport_cookies())
        if kept:
            response.headers["Cookie"] = kept
        response.headers["Cache-Control"] = "no-store"
        response.headers[settings.forward_auth_user_header] = header_value(decision.username)
        response.headers[settings.forward_auth_name_header] = header_value(decision.display_name)
        response.headers[settings.forward_auth_email_header] = header_value(decision.email)
        response.headers[settings.forward_auth_groups_header] = ",".join(
            header_value(group, list_item=True) for group in decision.groups
        )
        return response

    def _passport_cookies(self) -> frozenset[str]:
        """Every cookie Passport sets: the session, and its pages' host-only ones."""
        return frozenset(
            {self.settings.session_cookie_name, render.CSRF_COOKIE, STEP_COOKIE, BROWSER_COOKIE}
        )

    def back(self, request: Request) -> Response:
        """``/forward-auth/return?rd=``: on to the guarded page once signed in."""
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return render.client_error_page(exc)
        ctx = self.context(request, write=False)

        def answer() -> Response:
            target = forward_auth.return_target(ctx.db, params.get("rd"))
            if target is None:
                return render.error_page(BAD_RETURN, status=400)
            if ctx.identity is None:
                return redirect(login_url(target))
            return redirect(target)

        return ctx.respond(answer)


def login_url(target: str) -> str:
    """Passport's login page, returning to ``target`` (a guarded site's URL) through
    ``/forward-auth/return``: ``next`` stays a path on Passport."""
    return "/login?" + urlencode({"next": RETURN_PATH + "?rd=" + quote(target, safe="")})
