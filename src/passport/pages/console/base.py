"""What every screen of the admin console shares: the guard (:meth:`ConsoleBase._admin`:
who may use the console at all, the step-up), the request's scope and transaction
(:meth:`ConsoleBase._run`), the page with the console's frame and, on the two pages that
use it, its script (:meth:`ConsoleBase._screen`), paging.  What the console is and what
it decides: :mod:`passport.pages.console`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import Invalid
from passport.oidc.base import redirect
from passport.pages import render
from passport.services import listings
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.factors import Level
from passport.services.factors import level_of
from passport.services.factors import needed
from passport.services.factors import reading
from passport.services.policy import APPS_WRITE
from passport.services.policy import GROUPS_WRITE
from passport.services.policy import USERS_READ
from passport.services.policy import USERS_WRITE
from passport.services.policy import Actor
from passport.storage.models import User
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

AUDIT_READ = "audit:read"
APPS_READ = "apps:read"
CONSOLE_RIGHTS = (USERS_READ, USERS_WRITE, GROUPS_WRITE, APPS_READ, APPS_WRITE, AUDIT_READ)
PAGE_SIZE = 25


@dataclass(frozen=True)
class Admin:
    """The signed-in administrator of a console request."""

    actor: Actor
    user: User

    def may(self, right: str) -> bool:
        return self.actor.holds(right)


class ConsoleBase(render.Page):
    """The guard and the steps every screen of ``/admin`` takes (the screens are in
    the modules beside this one)."""

    # -- the guard -------------------------------------------------------------------------------
    def _admin(self, request: Request, ctx: RequestContext) -> Admin | Response:
        """The administrator, or the answer for someone who is not one (yet)."""
        here = request.full_path.rstrip("?") if request.method == "GET" else request.path
        user, session = ctx.user, ctx.login_session
        if user is None or session is None:
            return redirect("/login?" + urlencode({"next": here}))
        actor = Actor.administrator(ctx.db, user)
        if not any(actor.holds(right) for right in CONSOLE_RIGHTS):
            return render.error_page(
                "The admin console is for holders of Passport's own rights.", status=403
            )
        factors = reading(self.settings, self.services.throttle, ctx.db)
        owed = factors.sign_in_level(user.id)
        if level_of(session.amr) < owed:
            if needed(factors.summary(user.id), session.amr, owed) == "enrol":
                # No factor that proves what is owed: /login/enrol enrols only on a sign-in
                # that proved what the user's sign-ins owe (Factors.ensure_recent), which
                # this session never did.  A new sign-in asks for the enrolment after the
                # password; the page says so rather than sending them round in a circle.
                return self.form(
                    request,
                    "console_enrol_first.html",
                    403,
                    next="/login?" + urlencode({"next": here}),
                    passkey=owed >= Level.PASSKEY,
                )
            if owed < Level.PASSKEY:
                return redirect("/login/verify?" + urlencode({"next": here}))
            return render.error_page("Sign in with a passkey to administer Passport.", status=403)
        return Admin(actor, user)

    def _run(
        self,
        request: Request,
        screen: Callable[[RequestContext, Admin, dict[str, str]], Response],
    ) -> Response:
        """Parse, guard and run one screen in the request's scope; a refusal rolls back
        (durable audit records stay) and shows its page with its status."""
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        ctx = self.context(request, write=request.method == "POST")

        def work() -> Response:
            admin = self._admin(request, ctx)
            if isinstance(admin, Response):
                if admin.status_code >= 400:
                    ctx.refuse()
                return admin
            try:
                return screen(ctx, admin, params)
            except ClientError as exc:
                ctx.refuse()
                response = render.error_page(exc.message, status=status_of(exc))
                for name, value in headers_of(exc).items():
                    response.headers[name] = value
                return response

        return ctx.respond(work)

    def _administration(self, ctx: RequestContext, admin: Admin) -> Administration:
        caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
        return Administration(
            ctx.accounts(), admin.actor, caller, origins_changed=ctx.origins_changed
        )

    def _screen(
        self,
        request: Request,
        name: str,
        admin: Admin,
        status: int = 200,
        *,
        script: bool = False,
        **values: Any,
    ) -> Response:
        """A console page; with ``script``, one of the two that load the console's script
        (by its URL and SRI hash, under the CSP that allows scripts from Passport itself)."""
        if script:
            values |= {
                "console_js": render.CONSOLE_JS_URL,
                "console_js_integrity": render.CONSOLE_JS_INTEGRITY,
            }
        response = self.form(
            request,
            name,
            status,
            script=script,
            me=admin.user.username,
            may=admin.may,
            **values,
        )
        if script:
            response.headers["Content-Security-Policy"] = render.console_csp(
                self.settings.issuer or request.host_url
            )
        return response

    def _named_list(
        self,
        request: Request,
        ctx: RequestContext,
        admin: Admin,
        params: dict[str, str],
        search: Callable[..., listings.Page[Any]],
        kind: str,
        **values: Any,
    ) -> Response:
        """A list of groups or applications searched by name (``q``), a page at a time:
        ``console_<kind>.html`` with the rows as ``<kind>``."""
        q = (params.get("q") or "").strip()
        found = search(ctx.db, q or None, offset_of(params.get("offset")), PAGE_SIZE, "name")
        later = found.offset + PAGE_SIZE
        shown: dict[str, Any] = {kind: found.items, **values}
        return self._screen(
            request,
            f"console_{kind}.html",
            admin,
            page=found,
            q=q,
            next=link(f"/admin/{kind}", q=q, offset=later) if later < found.total else None,
            **shown,
        )

    def _secret(
        self, request: Request, admin: Admin, app: Any, secret: str | None, what: str
    ) -> Response:
        """The one page that shows a client secret: never again, never cached; its copy
        button is the console's script."""
        return self._screen(
            request,
            "console_secret.html",
            admin,
            script=secret is not None,
            app=app,
            secret=secret,
            what=what,
        )


def invalid(message: str, source: str) -> ClientError:
    return Invalid(message, source=source)


def offset_of(raw: str | None) -> int:
    """A page offset from the query: digits only, else the first page."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 10 else 0


def link(path: str, **values: Any) -> str:
    kept = {k: v for k, v in values.items() if v not in ("", None, 0)}
    return path + ("?" + urlencode(kept) if kept else "")
