"""``/Account/...``: registration, login sessions and password change.

Writes are POST only and take credentials from the body, never the URL.
The rules themselves live in :mod:`passport.services.accounts`.
"""

from __future__ import annotations

from typing import Any

from passport.api import API
from passport.api.shapes import public_user
from passport.api.shapes import session_json
from passport.errors import NotFound
from passport.errors import NotSignedIn
from passport.errors import SecondFactorRequired
from passport.services import applications
from passport.services.accounts import SecondStep
from passport.services.factors import Level
from passport.services.factors import acr_of
from passport.services.factors import amr_list
from passport.services.factors import combine_amr
from passport.web.controller import Controller
from passport.web.registry import expose

PASSWORDS = ("password",)
LIMITS = {"username": 254, "email": 254, "displayName": 128, "application": 100}


@API.controller("Account")
class AccountController(Controller):
    @expose(
        "POST",
        cross_origin=True,
        secrets=PASSWORDS,
        max_length=LIMITS,
        statuses=(400, 403, 409, 429),
    )
    def register(
        self,
        username: str | None,
        password: str | None,
        email: str | None,
        displayName: str | None,
    ) -> dict[str, Any]:
        """Create an account (when self-registration is switched on)."""
        user = self.accounts().register(self.caller, username, password, email, displayName)
        return {"User": public_user(user)}

    @expose(
        "POST",
        cross_origin=True,
        secrets=(*PASSWORDS, "code"),
        max_length={**LIMITS, "code": 64, "method": 16},
        statuses=(400, 401, 403, 404, 429),
    )
    def login(
        self,
        username: str | None,
        password: str | None,
        application: str | None,
        remember: bool | None,
        code: str | None,
        method: str | None,
    ) -> dict[str, Any]:
        """Sign in with username (or email) and password; sets the session cookie.

        An account that owes a second factor answers Number 8 (401) without ``code``;
        with ``code`` (``method`` ``totp``, the default, or ``recovery``) it is checked
        in the same call.  Passkeys, and enrolling a first factor, need the sign-in page."""
        app_name = ""
        if application:
            with self.ctx.services.db.session() as db:  # not the write transaction: no lock held
                found = applications.find_by_name(db, application)
            if found is None:
                raise NotFound(
                    f"Could not find application '{application}'.",
                    source="application",
                    value=application,
                )
            app_name = found.name
        accounts = self.accounts()
        result = accounts.login(
            self.caller,
            username,
            password,
            remember=bool(remember),
            application=app_name,
            replacing=self.ctx.login_session,
        )
        left: int | None = None
        if isinstance(result, SecondStep):
            if result.action == "enrol" or result.level > Level.MFA:
                raise SecondFactorRequired(
                    "This account must sign in with a passkey or enrol a second factor: "
                    "use the sign-in page.",
                    source="code",
                )
            if not code:
                raise SecondFactorRequired(
                    "This account has a second factor: send the authenticator app's code "
                    "(or a recovery code with method=recovery) as code.",
                    source="code",
                )
            verified = accounts.factors().verify_code(
                result.user.id,
                method or "totp",
                code,
                ip=self.caller.ip,
                user_agent=self.caller.user_agent,
                now=self.caller.now,
                application=app_name,
            )
            left = verified.recovery_left
            result = accounts.finish_sign_in(
                self.caller,
                verified.user,
                amr=combine_amr("pwd", verified.amr),
                remember=bool(remember),
                application=app_name,
                replacing=self.ctx.login_session,
            )
        self.ctx.start_session(result.session, result.token, result.user)
        answer: dict[str, Any] = {"User": public_user(result.user)}
        answer["Amr"] = amr_list(result.session.amr)
        if left is not None:
            answer["RecoveryCodesLeft"] = left
        return answer

    @expose("GET", cross_origin=True, jsonp=True)
    def status(self) -> dict[str, Any]:
        """Whether the request's session is logged in, as whom, and how (``Amr``: RFC 8176
        methods; ``Acr``: the class of the sign-in, :mod:`passport.services.factors`)."""
        identity, session = self.ctx.identity, self.ctx.login_session
        if identity is None or session is None:
            return {"User": None}
        return {
            "User": public_user(identity),
            "Amr": amr_list(session.amr),
            "Acr": acr_of(session.amr),
        }

    @expose("POST", cross_origin=True)
    def logout(self) -> dict[str, Any]:
        """End this session on the server and clear the cookie."""
        self.accounts().sign_out(self.caller, self.ctx.user, self.ctx.login_session)
        self.ctx.end_session()
        return {"LoggedOut": True}

    @expose("POST", secrets=("oldPassword", "newPassword"), statuses=(400, 401, 429))
    def changePassword(
        self,
        oldPassword: str | None,
        newPassword: str | None,
    ) -> dict[str, Any]:
        """Change your password; every other session of yours ends."""
        # Who, without loading the user in this request's transaction: the service counts
        # the attempt before it takes the write lock.
        identity, current = self.ctx.identity, self.ctx.login_session
        if identity is None or current is None:
            raise NotSignedIn("You must be logged in.", source="session")
        user, token, info = self.accounts().change_password(
            self.caller, identity.id, current, oldPassword, newPassword
        )
        self.ctx.start_session(info, token, user)
        return {"User": public_user(user)}

    @expose("GET", statuses=(401,))
    def sessions(self) -> dict[str, Any]:
        """Your active sessions: created, last seen, IP, browser, and which one is this."""
        user = self.require_user()
        current = self.ctx.login_session
        items = self.accounts().sessions_of(user.id, self.ctx.now)
        return {"Sessions": [session_json(s, current.id_hash if current else None) for s in items]}

    @expose("POST", max_length={"id": 64}, statuses=(400, 401, 404))
    def endSession(self, id: str | None) -> dict[str, Any]:
        """End one of your sessions, named by the ``ID`` that ``sessions`` lists."""
        user = self.require_user()
        ended = self.accounts().end_own_session(self.caller, user, id)
        current = self.ctx.login_session
        if current is not None and ended.id_hash == current.id_hash:
            self.ctx.end_session()
        return {"Ended": id}

    # -- the lifecycle by email (passport.services.lifecycle) -----------------------------
    @expose("POST", cross_origin=True, max_length={"email": 254}, statuses=(400, 403, 429))
    def requestPasswordReset(self, email: str | None) -> dict[str, Any]:
        """Ask for a password reset link by email.  The answer is the same whether an
        account has the address or not (no enumeration); the link works once, for
        ``password_reset_lifetime`` seconds, and dies with a later request or a sign-in."""
        self.accounts().lifecycle().request_password_reset(self.caller, email)
        return {"Requested": True}

    @expose(
        "POST",
        cross_origin=True,
        secrets=("token", "newPassword"),
        max_length={"token": 64},
        statuses=(400,),
    )
    def resetPassword(self, token: str | None, newPassword: str | None) -> dict[str, Any]:
        """Set a new password with the token of a reset link; every session and token of
        the account ends (this browser's too: sign in again)."""
        user = self.accounts().lifecycle().reset_password(self.caller, token, newPassword)
        current = self.ctx.login_session
        if current is not None and current.user_id == user.id:
            self.ctx.end_session()
        return {"User": public_user(user)}

    @expose(
        "POST", cross_origin=True, secrets=("token",), max_length={"token": 64}, statuses=(400,)
    )
    def verifyEmail(self, token: str | None) -> dict[str, Any]:
        """Confirm an email address with the token of a verification link."""
        user = self.accounts().lifecycle().verify_email(self.caller, token)
        return {"User": public_user(user)}

    @expose("POST", cross_origin=True, max_length={"email": 254}, statuses=(400, 403, 429))
    def requestVerification(self, email: str | None) -> dict[str, Any]:
        """Ask for a new verification link for an unverified address; the same answer
        whether an account has it or not."""
        self.accounts().lifecycle().request_verification(self.caller, email)
        return {"Requested": True}

    @expose(
        "POST",
        secrets=("password",),
        max_length={"email": 254},
        statuses=(400, 401, 403, 409, 429),
    )
    def changeEmail(self, password: str | None, email: str | None) -> dict[str, Any]:
        """Change your email address, proving your password: the new address is
        unverified until its link is used, and the old one is told."""
        identity = self.ctx.identity
        if identity is None or self.ctx.login_session is None:
            raise NotSignedIn("You must be logged in.", source="session")
        user = self.accounts().lifecycle().change_email(self.caller, identity.id, password, email)
        return {"User": public_user(user)}

    @expose(
        "POST",
        cross_origin=True,
        secrets=("token", "password"),
        max_length={**LIMITS, "token": 64},
        statuses=(400, 409),
    )
    def acceptInvitation(
        self,
        token: str | None,
        username: str | None,
        password: str | None,
        displayName: str | None,
    ) -> dict[str, Any]:
        """Make the account an administrator invited you to make: your username and
        password; the invited address, verified; the invitation's groups.  Then sign in."""
        user = (
            self.accounts()
            .lifecycle()
            .accept_invitation(self.caller, token, username, password, displayName)
        )
        return {"User": public_user(user)}
