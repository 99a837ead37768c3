"""The second step of a sign-in: ``/login/verify`` (prove a second factor: a passkey, an
authenticator app's code, a recovery code), ``/login/enrol`` (get a first one when one
is owed), ``/login/continue`` (go on after the recovery codes were shown), and
``/webauthn/options`` (a WebAuthn challenge for the passkey script).

Who is signing in is never a parameter: it is either the half-way state that a right
password left on the server (a ``second-factor`` :class:`~passport.storage.models.SignInStep`
bound to this browser's ``passport_step`` cookie), or — for a step-up that an
application's policy or ``acr_values`` asks of a signed-in user — the browser's
session.  The rules are in :mod:`passport.services.factors`; this module parses, calls
and renders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import NotSignedIn
from passport.oidc import params as oauth_params
from passport.oidc.authorization import STALE_AUTHORIZATION
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.oidc.base import redirect
from passport.pages import render
from passport.pages.login import safe_next
from passport.pages.login import set_step_cookie
from passport.pages.login import signed_in
from passport.services.accounts import Caller
from passport.services.audit import AuditRecord
from passport.services.factors import STEP_COOKIE
from passport.services.factors import Factors
from passport.services.factors import FactorSummary
from passport.services.factors import Level
from passport.services.factors import Verified
from passport.services.factors import combine_amr
from passport.services.factors import level_of
from passport.services.factors import needed
from passport.services.factors import new_step_cookie
from passport.services.factors import valid_step_cookie
from passport.services.sessions import LoginSessionInfo
from passport.services.throttle import challenge_key
from passport.storage.models import Application
from passport.storage.models import User
from passport.web import origins
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

if TYPE_CHECKING:
    from passport.composition import Services

SECOND_FACTOR = "second-factor"


def _no_audit(record: AuditRecord, *, durable: bool = False) -> None:
    """Reading writes no audit record."""


def _no_after(action: Callable[[], None]) -> None:
    """Reading queues nothing."""


NOBODY = "Your sign-in expired; please sign in again."


@dataclass
class Subject:
    """Who this step is for, and where the sign-in goes on to."""

    user: User
    amr: str  # what the sign-in proved so far
    remember: bool
    level: Level  # what it must reach
    handle: str | None  # the pending authorization, if any
    next: str
    session: LoginSessionInfo | None  # a step-up's session (None: half-way sign-in)


def reader(services: Services, db: Session) -> Factors:
    """The factor rules over a read session: what a page shows and who signs in are
    read before the request's transaction writes, so that the throttle counters can
    still be counted first (on SQLite, that transaction's write lock would hold up the
    counters' own)."""
    return Factors(services.settings, services.throttle, db, _no_audit, _no_after)


class SecondFactorPage(render.Page):
    def __init__(
        self, services: Services, context: ContextFactory, flow: AuthorizationEndpoint
    ) -> None:
        super().__init__(services, context)
        self.flow = flow

    # -- who ----------------------------------------------------------------------------
    def _subject(
        self, request: Request, ctx: RequestContext, params: dict[str, str]
    ) -> tuple[Subject | None, FactorSummary | None]:
        """Who this step is for (an entity detached from a read session), and their
        factors."""
        with self.services.db.session() as db:
            subject = self._find_subject(request, ctx, params, db)
            if subject is None:
                return None, None
            summary = reader(self.services, db).summary(subject.user.id)
            db.expunge(subject.user)
            return subject, summary

    def _find_subject(
        self, request: Request, ctx: RequestContext, params: dict[str, str], db: Session
    ) -> Subject | None:
        factors = reader(self.services, db)
        cookie = request.cookies.get(STEP_COOKIE)
        step = factors.find_step(cookie, SECOND_FACTOR, ctx.now)
        if step is not None and step.user_id is not None:
            data = factors.payload(step)
            user = db.get(User, step.user_id)
            if user is None or user.disabled:
                return None
            return Subject(
                user=user,
                amr=str(data.get("amr", "pwd")),
                remember=bool(data.get("remember")),
                level=Level(int(data.get("level", Level.MFA))),
                handle=data.get("authorization"),
                next=safe_next(data.get("next")),
                session=None,
            )
        session, identity = ctx.login_session, ctx.identity
        if session is None or identity is None:
            return None
        user = db.get(User, identity.id)
        if user is None or user.disabled:
            return None
        handle = params.get("authorization")
        level = factors.sign_in_level(user.id)
        if handle is not None:
            row = self.flow.find_pending(db, request, handle)
            app = db.get(Application, row.application_id) if row is not None else None
            if row is None or app is None:
                return None
            level = factors.required_level(user.id, app.mfa_policy, row.acr_values)
        return Subject(
            user=user,
            amr=session.amr,
            remember=session.remember,
            level=max(level, Level.MFA),
            handle=handle,
            next=safe_next(params.get("next")),
            session=session,
        )

    @staticmethod
    def _where(subject: Subject) -> dict[str, Any]:
        return (
            {"authorization": subject.handle}
            if subject.handle is not None
            else {"next": subject.next}
        )

    @staticmethod
    def _expired() -> Response:
        return render.error_page(NOBODY)

    def _enough(self, request: Request, ctx: RequestContext, subject: Subject) -> Response:
        """Nothing more is owed: a half-way sign-in finishes, a signed-in user goes on."""
        if subject.session is None:
            return self._finish(request, ctx, subject, Verified(subject.user, ""))
        if subject.handle is None:
            return redirect(subject.next)
        row = self.flow.find_pending(ctx.db, request, subject.handle)
        if row is None:
            return render.error_page(STALE_AUTHORIZATION, "invalid_request")
        return self.flow.advance(ctx, row, subject.handle, subject.session, subject.user.id)

    # -- /login/verify --------------------------------------------------------------------
    def verify(self, request: Request) -> Response:
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._verify(request, ctx, params))

    def _step(
        self, request: Request, ctx: RequestContext, params: dict[str, str], here: str
    ) -> tuple[Subject, FactorSummary] | Response:
        """Who this step is for and their factors, when ``here`` (``verify`` or ``enrol``)
        is what they must do now; else the answer: expired, done, or the other page."""
        subject, summary = self._subject(request, ctx, params)
        if subject is None or summary is None:
            return self._expired()
        action = needed(summary, subject.amr, subject.level)
        if action == "":
            return self._enough(request, ctx, subject)
        if action != here:
            return redirect(f"/login/{action}?" + urlencode(self._where(subject)))
        return subject, summary

    def _verify(self, request: Request, ctx: RequestContext, params: dict[str, str]) -> Response:
        found = self._step(request, ctx, params, "verify")
        if isinstance(found, Response):
            return found
        subject, summary = found
        factors = ctx.accounts().factors()
        # A passkey is asked for: the user's passkeys only — unless they have none yet,
        # then the factor they have first, and the passkey is enrolled after it.
        passkey_only = subject.level >= Level.PASSKEY and bool(summary.passkeys)
        values: dict[str, Any] = {
            **self._where(subject),
            "username": subject.user.username,
            "passkey": bool(summary.passkeys),
            "totp": summary.totp and not passkey_only,
            "recovery": summary.recovery_codes > 0 and not passkey_only,
            "passkey_only": passkey_only,
        }
        if request.method != "POST":
            return self.form(request, "verify.html", script=bool(summary.passkeys), **values)
        caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
        method = params.get("method") or ""
        try:
            if method == "passkey":
                verified = factors.verify_passkey(
                    request.cookies.get(STEP_COOKIE),
                    params.get("credential"),
                    ip=caller.ip,
                    user_agent=caller.user_agent,
                    now=caller.now,
                )
                if verified.user.id != subject.user.id:
                    raise NotSignedIn("That passkey is not yours.", source="credential")
            elif passkey_only:
                raise NotSignedIn("This application needs a passkey.", source="method")
            else:
                verified = factors.verify_code(
                    subject.user.id,
                    method,
                    params.get("code"),
                    ip=caller.ip,
                    user_agent=caller.user_agent,
                    now=caller.now,
                )
            return self._finish(request, ctx, subject, verified)
        except ClientError as exc:
            ctx.refuse()  # durable audit records and throttle counts stay
            response = self.form(
                request,
                "verify.html",
                status_of(exc),
                script=bool(summary.passkeys),
                error=exc.message,
                **values,
            )
            for name, value in headers_of(exc).items():
                response.headers[name] = value
            return response

    def _finish(
        self,
        request: Request,
        ctx: RequestContext,
        subject: Subject,
        verified: Verified,
        *,
        codes: list[str] | None = None,
    ) -> Response:
        """The factor is proved: the half-way state is used up, the session starts (or a
        step-up's replaces the old one, keeping its ``sid``), and the sign-in goes on —
        through a page first when there is something to show (new recovery codes, the
        codes left after using one)."""
        caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
        accounts = ctx.accounts()
        amr = combine_amr(subject.amr, verified.amr)
        if subject.session is None and codes is None and level_of(amr) < subject.level:
            # Proved, but still below what this sign-in owes (a passkey asked of a user
            # who has proved an authenticator app): no session yet; the half-way state
            # remembers what was proved, and the next step is asked.
            factors = accounts.factors()
            step = factors.find_step(request.cookies.get(STEP_COOKIE), SECOND_FACTOR, ctx.now)
            if step is None:
                return self._expired()
            step.payload = json.dumps({**factors.payload(step), "amr": amr})
            action = needed(factors.summary(subject.user.id), amr, subject.level) or "verify"
            return redirect(f"/login/{action}?" + urlencode(self._where(subject)))
        if subject.session is None and (
            accounts.factors().take_step(request.cookies.get(STEP_COOKIE), SECOND_FACTOR, ctx.now)
            is None
        ):
            return self._expired()  # another request finished this sign-in
        result = accounts.finish_sign_in(
            caller,
            subject.user,
            amr=amr,
            remember=subject.remember,
            replacing=ctx.login_session,
        )
        if codes is None and verified.recovery_left is None:
            return signed_in(self.flow, request, ctx, result, subject.handle, subject.next)
        ctx.start_session(result.session, result.token, result.user)
        if subject.handle is not None:
            row = self.flow.find_pending(ctx.db, request, subject.handle)
            if row is not None:
                row.logged_in_at = result.session.created_at
                row.session_hash = result.session.id_hash
        return self.form(
            request,
            "continue.html",
            codes=codes or [],
            left=verified.recovery_left,
            **self._where(subject),
        )

    # -- /login/continue ------------------------------------------------------------------
    def go_on(self, request: Request) -> Response:
        """After the page that showed recovery codes: on to the application (or ``next``)."""
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return render.client_error_page(exc)
        if not self.form_ok(request, params):
            return render.error_page(render.FORM_EXPIRED, status=403)
        handle = params.get("authorization")
        if handle is None:
            return redirect(safe_next(params.get("next")))
        ctx = self.context(request, write=True)

        def proceed() -> Response:
            row = self.flow.find_pending(ctx.db, request, handle)
            if row is None:
                return render.error_page(STALE_AUTHORIZATION, "invalid_request")
            identity = ctx.identity
            user_id = identity.id if identity is not None else None
            return self.flow.advance(ctx, row, handle, ctx.login_session, user_id)

        return ctx.respond(proceed)

    # -- /login/enrol ---------------------------------------------------------------------
    def enrol(self, request: Request) -> Response:
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        ctx = self.context(request, write=True)
        cookie = request.cookies.get(STEP_COOKIE)
        fresh = None if valid_step_cookie(cookie) else new_step_cookie()
        answered = ctx.respond(lambda: self._enrol(request, ctx, params, cookie or fresh or ""))
        if fresh is not None:
            set_step_cookie(self, request, answered, fresh)
        return answered

    def _enrol(
        self, request: Request, ctx: RequestContext, params: dict[str, str], cookie: str
    ) -> Response:
        found = self._step(request, ctx, params, "enrol")
        if isinstance(found, Response):
            return found
        subject, summary = found
        factors = ctx.accounts().factors()
        if subject.session is not None and not factors.is_recent(subject.session, ctx.now):
            # Enrolling from an old session: a fresh sign-in first, which keeps the
            # pending authorization (or next) and comes back here.
            return redirect("/login?" + urlencode(self._where(subject)))
        passkey_only = subject.level >= Level.PASSKEY
        caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
        error, status, headers = "", 200, {}
        if request.method == "POST":
            try:
                if params.get("action") == "passkey":
                    row = factors.add_passkey(
                        cookie,
                        subject.user,
                        params.get("credential"),
                        params.get("name"),
                        via="enrol",
                        session=subject.session,
                        ip=caller.ip,
                        user_agent=caller.user_agent,
                        now=caller.now,
                    )
                    amr = ("swk" if row.backup_eligible else "hwk") + " mfa"
                elif passkey_only:
                    raise NotSignedIn("This application needs a passkey.", source="action")
                else:
                    factors.totp_confirm(
                        cookie,
                        subject.user,
                        params.get("code"),
                        via="enrol",
                        session=subject.session,
                        ip=caller.ip,
                        user_agent=caller.user_agent,
                        now=caller.now,
                    )
                    amr = "otp"
                if not summary.any:  # the first factor: other sessions end
                    keep = subject.session.id_hash if subject.session is not None else None
                    ctx.accounts().end_other_sessions(caller, subject.user, keep=keep)
                # The first factor brings recovery codes; a user who had codes keeps them
                # (they were not shown here, and this page must not replace them).
                codes = (
                    factors.new_recovery_codes(
                        subject.user,
                        ip=caller.ip,
                        user_agent=caller.user_agent,
                        now=caller.now,
                        session=None,
                    )
                    if summary.recovery_codes == 0
                    else None
                )
                return self._finish(request, ctx, subject, Verified(subject.user, amr), codes=codes)
            except ClientError as exc:
                ctx.refuse()
                error, status, headers = exc.message, status_of(exc), headers_of(exc)
        values: dict[str, Any] = {
            **self._where(subject),
            "username": subject.user.username,
            "passkeys_possible": bool(self.settings.relying_party_id),
        }
        if not passkey_only:
            try:
                enrolment = factors.totp_start(
                    cookie, subject.user, subject.session, ctx.now, via="enrol"
                )
            except ClientError as exc:
                return render.client_error_page(exc)
            values.update(secret=enrolment.secret, qr=enrolment.qr_svg, uri=enrolment.uri)
        response = self.form(
            request,
            "enrol.html",
            status,
            script=bool(self.settings.relying_party_id),
            error=error,
            passkey_only=passkey_only,
            **values,
        )
        for name, value in headers.items():
            response.headers[name] = value
        return response

    # -- /webauthn/options ----------------------------------------------------------------
    def options(self, request: Request) -> Response:
        """A WebAuthn challenge for the passkey script, kept for this browser: ``signin``
        (any passkey of Passport's, no username), ``verify`` (the signing-in user's),
        ``register`` (a new passkey for the signed-in or enrolling user)."""
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return _json({"error": exc.message}, status_of(exc))
        if not self.form_ok(request, params):
            return _json({"error": render.FORM_EXPIRED}, 403)
        # Every challenge is a row anyone can make: counted per address, before the
        # request's transaction (SQLite's write lock).
        attempt = self.services.throttle.reserve(
            [challenge_key(origins.client_ip(request, self.settings))], self.services.clock()
        )
        if attempt.wait:
            response = _json({"error": "Too many passkey requests; try again later."}, 429)
            response.headers["Retry-After"] = str(attempt.wait)
            return response
        cookie = request.cookies.get(STEP_COOKIE)
        fresh = None if valid_step_cookie(cookie) else new_step_cookie()
        value = cookie if fresh is None else fresh
        assert value is not None
        ctx = self.context(request, write=True)

        def make() -> Response:
            factors = ctx.accounts().factors()
            purpose = params.get("purpose")
            try:
                if purpose == "signin":
                    return _text(factors.authentication_options(value, ctx.now))
                if purpose == "register":  # the account page: the signed-in user only
                    session, identity = ctx.login_session, ctx.identity
                    holder = ctx.user
                    if session is None or identity is None or holder is None:
                        return _json({"error": NOBODY}, 401)
                    return _text(
                        factors.registration_options(
                            value, holder, ctx.now, via="account", session=session
                        )
                    )
                if purpose not in ("verify", "enrol"):
                    return _json(
                        {"error": "purpose must be signin, verify, enrol or register."}, 400
                    )
                subject, summary = self._subject(request, ctx, params)
                if subject is None or summary is None:
                    return _json({"error": NOBODY}, 401)
                if purpose == "verify":
                    return _text(
                        factors.authentication_options(value, ctx.now, user_id=subject.user.id)
                    )
                if needed(summary, subject.amr, subject.level) != "enrol":
                    return _json({"error": "Prove the factor you have first."}, 403)
                return _text(
                    factors.registration_options(
                        value, subject.user, ctx.now, via="enrol", session=subject.session
                    )
                )
            except ClientError as exc:
                ctx.refuse()
                return _json({"error": exc.message}, status_of(exc))

        response = ctx.respond(make)
        if fresh is not None:
            set_step_cookie(self, request, response, fresh)
        return response


def _text(body: str) -> Response:
    response = Response(body, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(value: dict[str, Any], status: int = 200) -> Response:
    response = _text(json.dumps(value))
    response.status_code = status
    return response
