"""``/account``: the user's own page — profile, password change, sessions with "sign out".

Not OpenID Connect at all: a page of Passport's own, with the pages' CSRF defence.
A change runs in the request's scope; the page shown after it is rendered once the
scope has committed, so that it lists the sessions as they now are (a password
change ends the others; "sign out" ends one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.api.shapes import session_json
from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import redirect
from passport.pages import render
from passport.pages.login import set_step_cookie
from passport.pages.second_factor import reader
from passport.services.accounts import Caller
from passport.services.factors import FACTOR_ACTIONS
from passport.services.factors import STEP_COOKIE
from passport.services.factors import FactorSummary
from passport.services.factors import TotpEnrolment
from passport.services.factors import combine_amr
from passport.services.factors import new_step_cookie
from passport.services.factors import valid_step_cookie
from passport.services.identity import Identity
from passport.services.identity import identity_of
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import User
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

_SIGN_IN = "/login?" + urlencode({"next": "/account"})


@dataclass
class _Outcome:
    """What the scope decided, for the page rendered after it."""

    view: Identity | None = None
    notice: str = ""
    error: str = ""
    status: int = 200
    headers: dict[str, str] | None = None
    codes: list[str] | None = None  # new recovery codes, shown once
    step_cookie: str | None = None  # a new passport_step cookie (a factor being set up)
    enrolment: TotpEnrolment | None = None  # an authenticator app being set up


class AccountPage(render.Page):
    def account(self, request: Request) -> Response:
        try:
            params = oauth_params.page(request, self.settings)
        except ClientError as exc:
            return render.client_error_page(exc)
        ctx = self.context(request, write=request.method == "POST")
        outcome = _Outcome()
        answered = ctx.respond(lambda: self._act(request, ctx, params, outcome))
        if outcome.view is None:  # sent to sign in, or refused: the scope's answer
            return answered
        mine = ctx.login_session
        with self.services.db.session() as db:
            summary = reader(self.services, db).summary(outcome.view.id)
        recent = mine is not None and ctx.now - mine.created_at <= timedelta(
            seconds=self.settings.reauthentication_window
        )
        sessions = [
            session_json(s, mine.id_hash if mine else None)
            for s in self.services.sessions.list_for_user(outcome.view.id, ctx.now)
        ]
        response = self.form(
            request,
            "account.html",
            outcome.status,
            user=outcome.view,
            sessions=sessions,
            notice=outcome.notice,
            error=outcome.error,
            min_length=self.settings.password_min_length,
            factors=summary,
            recent=recent,
            passkeys_possible=bool(self.settings.relying_party_id),
            codes=outcome.codes,
            enrolment=outcome.enrolment,
            reauthenticate="/login?" + urlencode({"next": "/account"}),
            mail=self.settings.mail_enabled,
            script=bool(self.settings.relying_party_id),
        )
        for name, value in (outcome.headers or {}).items():
            response.headers[name] = value
        if outcome.step_cookie is not None:
            set_step_cookie(self, request, response, outcome.step_cookie)
        # The scope's cookies (a new session after a password change) go with the page.
        for cookie in answered.headers.getlist("Set-Cookie"):
            response.headers.add("Set-Cookie", cookie)
        return response

    def _act(
        self, request: Request, ctx: RequestContext, params: dict[str, str], outcome: _Outcome
    ) -> Response:
        """Do what the form asked; an empty answer means "render the page after me"."""
        # Plain values, not an entity of this request's transaction: a password change
        # counts its attempt before the transaction takes SQLite's write lock.
        view, current = ctx.identity, ctx.login_session
        if view is None or current is None:
            return redirect(_SIGN_IN)
        if request.method == "POST":
            if not self.form_ok(request, params):
                ctx.refuse()
                return render.error_page(render.FORM_EXPIRED, status=403)
            caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
            try:
                if params.get("action") == "password":
                    user, token, info = ctx.accounts().change_password(
                        caller,
                        view.id,
                        current,
                        params.get("oldpassword"),
                        params.get("newpassword"),
                    )
                    ctx.start_session(info, token, user)
                    outcome.notice = "Your password was changed; your other sessions have ended."
                elif params.get("action") == "email":
                    changed = (
                        ctx.accounts()
                        .lifecycle()
                        .change_email(caller, view.id, params.get("password"), params.get("email"))
                    )
                    view = identity_of(changed)
                    outcome.notice = (
                        "Your email address was changed; open the link we sent to it to "
                        "confirm it. The old address was told."
                        if self.settings.mail_enabled
                        else "Your email address was changed."
                    )
                elif params.get("action") == "verify":
                    if view.email:
                        ctx.accounts().lifecycle().request_verification(caller, view.email)
                    outcome.notice = "A confirmation link is on its way to your address."
                elif params.get("action") in FACTOR_ACTIONS:
                    # Read apart from this transaction: a code's attempt is counted
                    # before it writes (services/factors.py).
                    with self.services.db.session() as db:
                        holder = db.get(User, view.id)
                        had = reader(self.services, db).summary(view.id)
                        if holder is not None:
                            db.expunge(holder)
                    if holder is None or holder.disabled:  # since the page was shown
                        return redirect(_SIGN_IN)
                    self._factor(request, ctx, params, holder, current, outcome, had)
                elif params.get("action") == "end":
                    owner = ctx.user
                    if owner is None:  # disabled since the page was shown
                        return redirect(_SIGN_IN)
                    ended = ctx.accounts().end_own_session(caller, owner, params.get("id"))
                    if ended.id_hash == current.id_hash:
                        ctx.end_session()
                    outcome.notice = "That session has ended."
            except ClientError as exc:
                ctx.refuse()
                outcome.error, outcome.status = exc.message, status_of(exc)
                outcome.headers = headers_of(exc)
            if ctx.login_session is None:  # the user ended this very session
                return redirect(_SIGN_IN)
        outcome.view = view
        return Response(status=204)

    def _factor(
        self,
        request: Request,
        ctx: RequestContext,
        params: dict[str, str],
        user: User,
        current: LoginSessionInfo,
        outcome: _Outcome,
        had: FactorSummary,
    ) -> None:
        """A change to the user's second factors (services/factors.py decides)."""
        factors = ctx.accounts().factors()
        action = params.get("action")
        ip, agent, now = ctx.client_ip, ctx.user_agent, ctx.now
        proved = ""  # what adding a factor proved (its RFC 8176 values)
        if action == "passkey-add":
            row = factors.add_passkey(
                request.cookies.get(STEP_COOKIE),
                user,
                params.get("credential"),
                params.get("name"),
                via="account",
                session=current,
                ip=ip,
                user_agent=agent,
                now=now,
            )
            outcome.notice = "Your passkey was added."
            proved = ("swk" if row.backup_eligible else "hwk") + " mfa"
        elif action == "passkey-rename":
            factors.rename_passkey(user, params.get("id"), params.get("name"), ctx.now)
            outcome.notice = "The passkey was renamed."
        elif action == "passkey-remove":
            factors.remove_passkey(
                user, params.get("id"), current, ip=ip, user_agent=agent, now=now
            )
            outcome.notice = "The passkey was removed."
        elif action == "totp-start":
            cookie = request.cookies.get(STEP_COOKIE)
            if not valid_step_cookie(cookie):
                cookie = new_step_cookie()
                outcome.step_cookie = cookie
            assert cookie is not None
            outcome.enrolment = factors.totp_start(cookie, user, current, ctx.now, via="account")
        elif action == "totp-confirm":
            factors.totp_confirm(
                request.cookies.get(STEP_COOKIE),
                user,
                params.get("code"),
                via="account",
                session=current,
                ip=ip,
                user_agent=agent,
                now=now,
            )
            outcome.notice = "Your authenticator app was added."
            proved = "otp"
        elif action == "totp-remove":
            factors.remove_totp(user, current, ip=ip, user_agent=agent, now=now)
            outcome.notice = "Your authenticator app was removed."
        elif action == "recovery-new":
            outcome.codes = factors.new_recovery_codes(
                user, session=current, ip=ip, user_agent=agent, now=now
            )
            outcome.notice = "New recovery codes were made; the old ones no longer work."
        if action in ("passkey-add", "totp-confirm") and not had.any:
            # The first factor: recovery codes to go with it, shown once, and every other
            # session (signed in with the password alone) ends.
            outcome.codes = factors.new_recovery_codes(
                user, session=None, ip=ip, user_agent=agent, now=now
            )
            caller = Caller(ip=ip, user_agent=agent, now=now)
            accounts = ctx.accounts()
            if accounts.end_other_sessions(caller, user, keep=current.id_hash):
                outcome.notice += " Your other sessions have ended."
            # This session just proved the factor too: it goes on as a sign-in with it (a
            # new cookie, the same sid), as one made through /login/verify would.
            result = accounts.finish_sign_in(
                caller,
                user,
                amr=combine_amr(current.amr, proved),
                remember=current.remember,
                replacing=current,
            )
            ctx.start_session(result.session, result.token, result.user)
