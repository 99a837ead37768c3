"""``/login``: the sign-in form, alone (``?next=`` a path on Passport) or as a step of a
pending authorization (``?authorization=`` its handle, OIDC Core §3.1.2.3).

A username or password in the URL is refused (:data:`passport.oidc.params.FORM_SECRETS`);
the form shows only what Passport knows — the application's registered name and the
client's ``login_hint`` — never text a client chose to display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import EmailNotVerified
from passport.errors import ServiceUnavailable
from passport.oidc import params as oauth_params
from passport.oidc.authorization import STALE_AUTHORIZATION
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.oidc.base import redirect
from passport.pages import render
from passport.services.accounts import Caller
from passport.services.accounts import LoginResult
from passport.services.accounts import SecondStep
from passport.services.factors import STEP_COOKIE
from passport.services.factors import STEP_LIFETIME
from passport.services.factors import application_level
from passport.services.factors import combine_amr
from passport.services.factors import new_step_cookie
from passport.services.factors import valid_step_cookie
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

    @property
    def passkeys(self) -> bool:
        """Whether passkeys can be used here (a WebAuthn relying party is known)."""
        return bool(self.settings.relying_party_id)

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
        values["mail"] = self.settings.mail_enabled  # "Forgot your password?"
        if request.method != "POST":
            return self.form(request, "login.html", script=self.passkeys, **values)
        if not self.form_ok(request, params):
            return self.form(
                request,
                "login.html",
                403,
                script=self.passkeys,
                error=render.FORM_EXPIRED,
                **values,
            )
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
            accounts = ctx.accounts()
            remember = params.get("remember") == "true"
            if params.get("credential") and not params.get("password"):
                # A passkey, without a username (WebAuthn discoverable credential): one
                # that verifies the user is a sign-in of its own (services/factors.py).
                verified = accounts.factors().verify_passkey(
                    request.cookies.get(STEP_COOKIE),
                    params.get("credential"),
                    ip=caller.ip,
                    user_agent=caller.user_agent,
                    now=caller.now,
                )
                result: LoginResult | SecondStep = accounts.finish_sign_in(
                    caller,
                    verified.user,
                    amr=combine_amr(verified.amr, "mfa"),
                    remember=remember,
                    replacing=ctx.login_session,  # a fresh session id (no fixation)
                )
            else:
                result = accounts.login(
                    caller,
                    params.get("username"),
                    params.get("password"),
                    remember=remember,
                    replacing=ctx.login_session,  # a fresh session id at every sign-in
                )
            if isinstance(result, SecondStep):
                return self._second_step(request, ctx, result, remember, handle, values)
            return signed_in(
                self.flow, request, ctx, result, handle, values.get("next", "/account")
            )
        except ClientError as exc:
            ctx.refuse()  # the failed attempt's audit record is durable; nothing else stays
            response = self.form(
                request,
                "login.html",
                status_of(exc),
                script=self.passkeys,
                error=exc.message,
                unverified=isinstance(exc, EmailNotVerified),
                **values,
            )
            for name, value in headers_of(exc).items():
                response.headers[name] = value
            return response
        except ServiceUnavailable as exc:
            # Every hashing slot busy (passwords.BUSY_MESSAGE): the person gets the form back
            # with the reason, not the API's JSON; RFC 9110 §10.2.3 Retry-After.
            ctx.refuse()
            response = self.form(
                request, "login.html", 503, script=self.passkeys, error=exc.message, **values
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response

    def _second_step(
        self,
        request: Request,
        ctx: RequestContext,
        owed: SecondStep,
        remember: bool,
        handle: str | None,
        values: dict[str, Any],
    ) -> Response:
        """The password was right and a factor is owed: the half-way state is kept on
        the server for this browser (never in a parameter), and the browser goes on to
        prove the factor, or to enrol one."""
        cookie = request.cookies.get(STEP_COOKIE)
        if not valid_step_cookie(cookie):
            cookie = new_step_cookie()
        assert cookie is not None
        # One second step for what the sign-in and the application both ask (its policy,
        # its acr_values), rather than a step-up right after.
        level = owed.level
        row = self.flow.find_pending(ctx.db, request, handle) if handle is not None else None
        app = ctx.db.get(Application, row.application_id) if row is not None else None
        if row is not None and app is not None:
            level = max(level, application_level(self.settings, app.mfa_policy, row.acr_values))
        ctx.accounts().factors().put_step(
            cookie,
            "second-factor",
            ctx.now,
            user_id=owed.user.id,
            payload={
                "amr": "pwd",
                "remember": remember,
                "level": int(level),
                "authorization": handle,
                "next": values.get("next", "/account"),
            },
        )
        where = (
            {"authorization": handle} if handle is not None else {"next": values.get("next", "")}
        )
        page = "/login/enrol?" if owed.action == "enrol" else "/login/verify?"
        response = redirect(page + urlencode(where))
        set_step_cookie(self, request, response, cookie)
        return response


def set_step_cookie(page: render.Page, request: Request, response: Response, value: str) -> None:
    """The browser's ``passport_step`` cookie (the sign-in step it is in; HttpOnly, never
    sent by another site), as long as a step lives."""
    response.set_cookie(
        STEP_COOKIE,
        value,
        max_age=STEP_LIFETIME,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=page.secure(request),
    )


def signed_in(
    flow: AuthorizationEndpoint,
    request: Request,
    ctx: RequestContext,
    result: LoginResult,
    handle: str | None,
    next_path: str,
) -> Response:
    """A sign-in is complete: the session cookie goes out, and the browser goes on to
    ``next`` or to the next step of the pending authorization ``handle``, which records
    this fresh sign-in (what prompt=login / max_age asked for)."""
    ctx.start_session(result.session, result.token, result.user)
    if handle is None:
        return redirect(next_path)
    row = flow.find_pending(ctx.db, request, handle)
    if row is None:
        return render.error_page(STALE_AUTHORIZATION, "invalid_request")
    row.logged_in_at = result.session.created_at
    row.session_hash = result.session.id_hash
    return flow.advance(ctx, row, handle, result.session, result.user.id)
