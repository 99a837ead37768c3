"""The pages that links sent by mail open: ``/password/forgot``, ``/password/reset``,
``/email/verify`` and ``/invite`` (:mod:`passport.services.lifecycle` decides).

No JavaScript, the pages' CSP and CSRF defence.  Opening a link (a GET, which mail
scanners and link previews also make) only checks it and shows a form; the POST of
that form, from Passport's own origin with this browser's CSRF token, uses it.  The
token travels in the form, and the pages' referrer policy (``same-origin``) keeps the
URL that carries it from other sites.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import Invalid
from passport.pages import render
from passport.services.accounts import Caller
from passport.services.lifecycle import BAD_LINK
from passport.services.lifecycle import INVITE
from passport.services.lifecycle import RESET
from passport.services.lifecycle import invited_groups
from passport.services.lifecycle import link_hash
from passport.services.lifecycle import valid_for
from passport.services.mail import NO_MAIL
from passport.storage.models import EmailLink
from passport.storage.models import Invitation
from passport.storage.models import User
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

_SIGN_IN = "/login"


def _caller(ctx: RequestContext) -> Caller:
    return Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)


def _done(heading: str, message: str, link: str = _SIGN_IN, text: str = "Sign in") -> Response:
    return render.page("done.html", heading=heading, message=message, link=link, link_text=text)


def _bad_link(exc: ClientError, again: str, again_text: str) -> Response:
    response = render.page(
        "done.html",
        status_of(exc),
        heading="This link does not work",
        error=exc.message,
        link=again,
        link_text=again_text,
    )
    for name, value in headers_of(exc).items():
        response.headers[name] = value
    return response


class RecoveryPages(render.Page):
    """The four pages; each POST is one call of :class:`Lifecycle`."""

    def _scope(
        self,
        request: Request,
        act: Callable[[RequestContext, dict[str, str]], Response],
        refused: Callable[[ClientError, dict[str, str]], Response],
    ) -> Response:
        """Run ``act`` in the request's scope; a refusal rolls back (durable audit records
        stay) and answers ``refused``'s page."""
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        if not self.settings.mail_enabled:
            return render.error_page(NO_MAIL, status=403)
        ctx = self.context(request, write=request.method == "POST")

        def work() -> Response:
            try:
                return act(ctx, params)
            except ClientError as exc:
                ctx.refuse()
                return refused(exc, params)

        return ctx.respond(work)

    def _again(self, request: Request, name: str, exc: ClientError, email: str) -> Response:
        """The form again, with the refusal's message and status."""
        response = self.form(request, name, status_of(exc), error=exc.message, email=email)
        for header, value in headers_of(exc).items():
            response.headers[header] = value
        return response

    # -- a forgotten password ------------------------------------------------------------------
    def forgot(self, request: Request) -> Response:
        lifetime = valid_for(self.settings.password_reset_lifetime)

        def act(ctx: RequestContext, params: dict[str, str]) -> Response:
            email = params.get("email") or ""
            if request.method == "GET":
                return self.form(request, "forgot.html", email=email[:254])
            ctx.accounts().lifecycle().request_password_reset(_caller(ctx), email)
            return self.form(request, "forgot.html", sent=True, email=email, valid_for=lifetime)

        def refused(exc: ClientError, params: dict[str, str]) -> Response:
            return self._again(request, "forgot.html", exc, email=(params.get("email") or "")[:254])

        return self._scope(request, act, refused)

    def reset(self, request: Request) -> Response:
        forgot = "/password/forgot"

        def act(ctx: RequestContext, params: dict[str, str]) -> Response:
            lifecycle = ctx.accounts().lifecycle()
            token = params.get("token")
            user = lifecycle.check_reset(token, ctx.now)
            if request.method == "GET":
                return self._reset_form(request, token or "", user.username)
            password, confirm = params.get("newpassword") or "", params.get("confirm")
            if confirm is not None and confirm != password:
                ctx.refuse()
                return self._reset_form(
                    request, token or "", user.username, "The two passwords differ.", 400
                )
            lifecycle.reset_password(_caller(ctx), token, password)
            current = ctx.login_session
            if current is not None and current.user_id == user.id:
                ctx.end_session()
            return _done(
                "Your password was changed",
                "Every session of the account has ended. Sign in with the new password.",
            )

        def refused(exc: ClientError, params: dict[str, str]) -> Response:
            if exc.source == "token":
                return _bad_link(exc, forgot, "Ask for a new link")
            # The link is still good (nothing was used): the form again, with why.
            token = params.get("token") or ""
            with self.services.db.session() as db:
                link = db.get(EmailLink, link_hash(RESET, token))
                user = db.get(User, link.user_id) if link and link.user_id else None
                name = user.username if user else ""
            return self._reset_form(request, token, name, exc.message, status_of(exc))

        return self._scope(request, act, refused)

    def _reset_form(
        self, request: Request, token: str, username: str, error: str = "", status: int = 200
    ) -> Response:
        return self.form(
            request,
            "reset.html",
            status,
            token=token,
            username=username,
            error=error,
            min_length=self.settings.password_min_length,
        )

    # -- verifying an address ---------------------------------------------------------------------
    def verify(self, request: Request) -> Response:
        lifetime = valid_for(self.settings.email_verification_lifetime)

        def act(ctx: RequestContext, params: dict[str, str]) -> Response:
            lifecycle = ctx.accounts().lifecycle()
            token = params.get("token")
            if token is None:  # no link: ask for a new one
                email = params.get("email") or ""
                if request.method == "GET":
                    return self.form(request, "verify_email.html", email=email[:254])
                lifecycle.request_verification(_caller(ctx), email)
                return self.form(
                    request, "verify_email.html", sent=True, email=email, valid_for=lifetime
                )
            if request.method == "GET":
                user = lifecycle.check_verification(token, ctx.now)
                return self.form(
                    request,
                    "verify_email.html",
                    token=token,
                    email=user.email or "",
                    username=user.username,
                )
            user = lifecycle.verify_email(_caller(ctx), token)
            return _done(
                "Your address is confirmed",
                f"{user.email} is now the confirmed address of the account {user.username}.",
                "/account",
                "Your account",
            )

        def refused(exc: ClientError, params: dict[str, str]) -> Response:
            if exc.source == "token":
                return _bad_link(exc, "/email/verify", "Ask for a new link")
            return self._again(
                request, "verify_email.html", exc, email=(params.get("email") or "")[:254]
            )

        return self._scope(request, act, refused)

    # -- an invitation ----------------------------------------------------------------------
    def invite(self, request: Request) -> Response:
        def act(ctx: RequestContext, params: dict[str, str]) -> Response:
            lifecycle = ctx.accounts().lifecycle()
            token = params.get("token")
            invitation = lifecycle.check_invitation(token, ctx.now)
            if request.method == "POST":
                password = params.get("password") or ""
                confirm = params.get("confirm")
                if confirm is not None and confirm != password:
                    raise Invalid("The two passwords differ.", source="confirm")
                user = lifecycle.accept_invitation(
                    _caller(ctx),
                    token,
                    params.get("username"),
                    password,
                    params.get("displayname"),
                )
                return _done(
                    "Your account is ready",
                    f"Sign in as {user.username} with the password you chose.",
                )
            groups = [g.name for g in invited_groups(ctx.db, invitation.id)]
            return self._invite_form(request, token or "", invitation.email, groups)

        def refused(exc: ClientError, params: dict[str, str]) -> Response:
            if exc.source == "token":
                return _bad_link(exc, _SIGN_IN, "Sign in")
            token = params.get("token") or ""
            with self.services.db.session() as db:
                link = db.get(EmailLink, link_hash(INVITE, token))
                found = (
                    db.get(Invitation, link.invitation_id) if link and link.invitation_id else None
                )
                invitation = found.email if found else None
            if invitation is None:
                return _bad_link(Invalid(BAD_LINK, source="token"), _SIGN_IN, "Sign in")
            return self._invite_form(
                request,
                params.get("token") or "",
                invitation,
                [],
                error=exc.message,
                status=status_of(exc),
                username=(params.get("username") or "")[:64],
                display_name=(params.get("displayname") or "")[:128],
            )

        return self._scope(request, act, refused)

    def _invite_form(
        self,
        request: Request,
        token: str,
        email: str,
        groups: list[str],
        *,
        error: str = "",
        status: int = 200,
        username: str = "",
        display_name: str = "",
    ) -> Response:
        return self.form(
            request,
            "invite.html",
            status,
            token=token,
            email=email,
            groups=groups,
            error=error,
            username=username,
            display_name=display_name,
            min_length=self.settings.password_min_length,
        )
