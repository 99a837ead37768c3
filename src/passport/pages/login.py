"""``/login``: the sign-in form, alone (``?next=`` a path on Passport) or as a step of a
pending authorization (``?authorization=`` its handle, OIDC Core §3.1.2.3).

A username or password in the URL is refused (:data:`passport.oidc.params.FORM_SECRETS`);
the form shows only what Passport knows — the application's registered name and the
client's ``login_hint`` — never text a client chose to display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import ServiceUnavailable
from passport.oidc import params as oauth_params
from passport.oidc.authorization import STALE_AUTHORIZATION
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.oidc.base import redirect
from passport.pages import render
from passport.services.accounts import Caller
from passport.storage.models import Application
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

if TYPE_CHECKING:
    from passport.composition import Services


def safe_next(value: str | None) -> str:
    """Only a path on Passport itself (no scheme, no host, no ``//``): no open redirect.
    Printable ASCII only (RFC 3986 §2: a URI is ASCII; a raw DEL or UTF-8 byte in
    ``Location`` is dropped or mangled by servers and browsers): anything else, and
    anything odd, goes to ``/account``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account"
    if any(not 32 < ord(c) < 127 for c in value):
        return "/account"
    return value


class LoginPage(render.Page):
    def __init__(
        self, services: Services, context: ContextFactory, flow: AuthorizationEndpoint
    ) -> None:
        super().__init__(services, context)
        self.flow = flow

    def login(self, request: Request) -> Response:
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return render.client_error_page(exc)
        handle = params.get("authorization")
        values: dict[str, Any] = {
            "next": safe_next(params.get("next")),
            "application": "",
            "login_hint": "",
        }
        if handle is not None:
            with self.services.db.session() as db:
                row = self.flow.find_pending(db, request, handle)
                app = db.get(Application, row.application_id) if row else None
                if row is None or app is None or not app.enabled:
                    return render.error_page(STALE_AUTHORIZATION, "invalid_request")
                # Only what Passport knows: the registered name, the client's hint.
                values = {
                    "authorization": handle,
                    "application": app.name,
                    "login_hint": row.login_hint or "",
                }
        if request.method != "POST":
            return self.form(request, "login.html", **values)
        if not self.form_ok(request, params):
            return self.form(request, "login.html", 403, error=render.FORM_EXPIRED, **values)
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._sign_in(request, ctx, params, handle, values))

    def _sign_in(
        self,
        request: Request,
        ctx: RequestContext,
        params: dict[str, str],
        handle: str | None,
        values: dict[str, Any],
    ) -> Response:
        try:
            caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
            previous = ctx.login_session
            result = ctx.accounts().login(
                caller,
                params.get("username"),
                params.get("password"),
                remember=params.get("remember") == "true",
                replacing=previous,  # a fresh session id at every sign-in (no fixation)
            )
            ctx.start_session(result.session, result.token, result.user)
            if handle is None:
                return redirect(values["next"])
            row = self.flow.find_pending(ctx.db, request, handle)
            if row is None:
                return render.error_page(STALE_AUTHORIZATION, "invalid_request")
            # The fresh login that prompt=login / max_age asked for, in this session.
            row.logged_in_at = result.session.created_at
            row.session_hash = result.session.id_hash
            return self.flow.advance(ctx.db, row, handle, result.session, result.user.id)
        except ClientError as exc:
            ctx.refuse()  # the failed attempt's audit record is durable; nothing else stays
            response = self.form(request, "login.html", status_of(exc), error=exc.message, **values)
            for name, value in headers_of(exc).items():
                response.headers[name] = value
            return response
        except ServiceUnavailable as exc:
            # Every hashing slot busy (passwords.BUSY_MESSAGE): the person gets the form back
            # with the reason, not the API's JSON; RFC 9110 §10.2.3 Retry-After.
            ctx.refuse()
            response = self.form(request, "login.html", 503, error=exc.message, **values)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
