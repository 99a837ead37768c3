"""``/admin``: the admin console — Passport administered in a browser.

One more adapter over the same operations as the API and the CLI
(:class:`passport.services.administration.Administration`, the read-only listings of
:mod:`passport.services.listings`): every rule — who may act on whom, what ends when a
user is disabled, what is audited — is theirs; the console parses a form, calls one
operation and shows the result.

Who may use it: a signed-in user holding any of Passport's own rights (``admin``,
``users:read``, ``users:write``, ``groups:write``, ``apps:write``, ``audit:read``), with a
session that proved what their sign-ins owe now (the step-up of the API's Number 8: sent
to ``/login/verify`` and back).  Each screen needs its read right, each action its write
right — checked by the operation itself, so a forged POST from a reader is refused (403)
whatever the page showed.  Pages have the hosted pages' CSP (no script), CSRF defence on
every POST and no caching.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.api.shapes import factors_json
from passport.api.shapes import session_json
from passport.errors import ClientError
from passport.errors import Invalid
from passport.oidc.base import redirect
from passport.pages import render
from passport.services import directory
from passport.services import listings
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.factors import Level
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import APPS_WRITE
from passport.services.policy import GROUPS_WRITE
from passport.services.policy import USERS_READ
from passport.services.policy import USERS_WRITE
from passport.services.policy import Actor
from passport.storage.models import AuditEvent
from passport.storage.models import User
from passport.web.context import RequestContext
from passport.web.errors import headers_of
from passport.web.errors import status_of

AUDIT_READ = "audit:read"
APPS_READ = "apps:read"
CONSOLE_RIGHTS = (USERS_READ, USERS_WRITE, GROUPS_WRITE, APPS_READ, APPS_WRITE, AUDIT_READ)
PAGE_SIZE = 25
USER_ACTIONS = ("disable", "enable", "logout", "reset-factors", "reset-password", "delete")


@dataclass(frozen=True)
class Admin:
    """The signed-in administrator of a console request."""

    actor: Actor
    user: User

    def may(self, right: str) -> bool:
        return self.actor.holds(right)


class ConsolePages(render.Page):
    """The screens of ``/admin``: dashboard, users, a user, the audit log."""

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
        owed = reading(self.settings, self.services.throttle, ctx.db).sign_in_level(user.id)
        if level_of(session.amr) < owed:
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
        self, request: Request, name: str, admin: Admin, status: int = 200, **values: Any
    ) -> Response:
        return self.form(
            request,
            name,
            status,
            me=admin.user.username,
            may=admin.may,
            **values,
        )

    # -- the dashboard -----------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            counts = {}
            if admin.may(USERS_READ) or admin.may(USERS_WRITE):
                counts = {
                    "users": listings.search_users(ctx.db, limit=1).total,
                    "disabled": listings.search_users(ctx.db, disabled=True, limit=1).total,
                    "unverified": listings.search_users(ctx.db, unverified=True, limit=1).total,
                }
            chart = None
            if admin.may(AUDIT_READ):
                chart = _chart(listings.sign_ins_per_hour(ctx.db, ctx.now), ctx.now)
            return self._screen(request, "console_home.html", admin, counts=counts, chart=chart)

        return self._run(request, screen)

    # -- users -------------------------------------------------------------------------
    def users(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(USERS_READ):
                return render.error_page("Reading users needs users:read.", status=403)
            notice = ""
            if request.method == "POST":  # an invitation (Administration.invite decides)
                groups = [g.strip() for g in (params.get("groups") or "").split(",") if g.strip()]
                invitation = self._administration(ctx, admin).invite(params.get("email"), groups)
                notice = f"An invitation is on its way to {invitation.email}."
            q = (params.get("q") or "").strip()
            state = params.get("state") or ""
            offset = _number(params.get("offset"))
            found = listings.search_users(
                ctx.db,
                q or None,
                {"disabled": True, "enabled": False}.get(state),
                offset,
                PAGE_SIZE,
                "username",
                unverified=state == "unverified",
            )
            return self._screen(
                request,
                "console_users.html",
                admin,
                users=found.items,
                page=found,
                q=q,
                state=state,
                notice=notice,
                mail=self.settings.mail_enabled,
                previous=_link(
                    "/admin/users",
                    q=q,
                    state=state,
                    offset=max(0, min(found.offset, found.total) - PAGE_SIZE),
                )
                if found.offset
                else None,
                next=_link("/admin/users", q=q, state=state, offset=found.offset + PAGE_SIZE)
                if found.offset + PAGE_SIZE < found.total
                else None,
            )

        return self._run(request, screen)

    def user(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(USERS_READ):  # the page it acts from shows the user
                return render.error_page("A user's page needs users:read.", status=403)
            administration = self._administration(ctx, admin)
            notice = ""
            ref = params.get("id") or ""
            if request.method == "POST":
                notice, ref = self._act(administration, params, ref)
                if not ref:  # deleted
                    return self._screen(
                        request, "console_done.html", admin, notice=notice, back="/admin/users"
                    )
            target, factors = administration.user_factors(ref)  # checks users:read
            sessions = [
                session_json(s, None)
                for s in self.services.sessions.list_for_user(target.id, ctx.now)
            ]
            events = (
                listings.audit_events(ctx.db, username=target.username, limit=10).items
                if admin.may(AUDIT_READ)
                else None
            )
            return self._screen(
                request,
                "console_user.html",
                admin,
                target=target,
                groups=listings.group_names_of(ctx.db, target.id),
                factors=factors_json(factors),
                sessions=sessions,
                events=events,
                notice=notice,
                actions=USER_ACTIONS,
            )

        return self._run(request, screen)

    def _act(
        self, administration: Administration, params: dict[str, str], ref: str
    ) -> tuple[str, str]:
        """One action on a user: the operation decides (rights, escalation, what ends,
        the audit record); returns what to tell and the user to show next ("" once
        deleted)."""
        action = params.get("action")
        if action == "disable":
            user = administration.set_user_disabled(ref, True)
            return f"{user.username} is disabled; their sessions and tokens ended.", ref
        if action == "enable":
            user = administration.set_user_disabled(ref, False)
            return f"{user.username} is enabled again.", ref
        if action == "logout":
            user, ended = administration.logout_everywhere(ref)
            return f"{ended} session(s) of {user.username} ended.", ref
        if action == "reset-factors":
            user, removed, ended = administration.reset_factors(ref)
            what = ", ".join(removed.methods()) or "none"
            return f"Second factors of {user.username} removed ({what}).", ref
        if action == "reset-password":
            user = administration.reset_password(ref, params.get("password"))
            return f"{user.username} has a new password; their sessions ended.", ref
        if action == "delete":
            target = administration.user_factors(ref)[0]
            if (params.get("confirm") or "") != target.username:
                raise _invalid("Type the username to confirm the deletion.", "confirm")
            name = administration.delete_user(ref)
            return f"{name} was deleted.", ""
        raise _invalid("Unknown action.", "action")

    # -- groups --------------------------------------------------------------------------
    def groups(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(USERS_READ) or admin.may(GROUPS_WRITE)):
                return render.error_page("Reading groups needs users:read.", status=403)
            notice = ""
            if request.method == "POST":  # a new group (Administration.create_group decides)
                made = self._administration(ctx, admin).create_group(
                    params.get("name"),
                    params.get("description"),
                    require_mfa=params.get("requiremfa") == "true",
                )
                notice = f"Group {made.name} created."
            return self._named_list(
                request, ctx, admin, params, listings.search_groups, "groups", notice=notice
            )

        return self._run(request, screen)

    def group(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(USERS_READ) or admin.may(GROUPS_WRITE)):
                return render.error_page("Reading groups needs users:read.", status=403)
            administration = self._administration(ctx, admin)
            ref = params.get("id") or ""
            notice = ""
            if request.method == "POST":
                notice, ref = self._group_act(administration, ctx, params, ref)
                if not ref:
                    return self._screen(
                        request, "console_done.html", admin, notice=notice, back="/admin/groups"
                    )
            found = directory.get_group(ctx.db, ref, "id")
            return self._screen(
                request,
                "console_group.html",
                admin,
                group=found,
                members=listings.members_of(ctx.db, found.id),
                notice=notice,
            )

        return self._run(request, screen)

    def _group_act(
        self,
        administration: Administration,
        ctx: RequestContext,
        params: dict[str, str],
        ref: str,
    ) -> tuple[str, str]:
        """One change of a group, by its operation (rights, escalation, audit)."""
        action = params.get("action")
        if action in ("add", "remove"):
            # A typed name is a username, never read as a row id ("001" is a name);
            # the page's own buttons name members by id.
            member = params.get("member") or ""
            if action == "add" or not (member.isascii() and member.isdigit()):
                found = directory.find_user_by_username(ctx.db, member, "member")
                member = str(found.id)
            group, user, changed = administration.change_membership(action == "add", ref, member)
            verb = "added to" if action == "add" else "removed from"
            return (f"{user.username} {verb} {group.name}." if changed else "Nothing changed."), ref
        if action == "update":
            group = administration.update_group(
                ref,
                name=params.get("name") or None,
                description=params.get("description"),
                require_mfa=params.get("requiremfa") == "true",
            )
            return f"Group {group.name} saved.", ref
        if action == "delete":
            group = directory.get_group(ctx.db, ref, "id")
            if (params.get("confirm") or "") != group.name:
                raise _invalid("Type the group's name to confirm the deletion.", "confirm")
            return f"Group {administration.delete_group(ref)} was deleted.", ""
        raise _invalid("Unknown action.", "action")

    # -- applications ---------------------------------------------------------------------
    def applications(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(APPS_READ) or admin.may(APPS_WRITE)):
                return render.error_page("Reading applications needs apps:read.", status=403)
            if request.method == "POST":  # Administration.create_application decides
                app, secret = self._administration(ctx, admin).create_application(
                    params.get("name"),
                    description=params.get("description"),
                    origins=(params.get("origins") or "").split(),
                    redirect_uris=(params.get("redirecturis") or "").split(),
                    confidential=params.get("public") != "true",
                )
                return self._secret(request, admin, app, secret, "registered")
            return self._named_list(
                request, ctx, admin, params, listings.search_applications, "applications"
            )

        return self._run(request, screen)

    def application(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not (admin.may(APPS_READ) or admin.may(APPS_WRITE)):
                return render.error_page("Reading applications needs apps:read.", status=403)
            administration = self._administration(ctx, admin)
            ref = params.get("id") or ""
            notice = ""
            if request.method == "POST":
                action = params.get("action")
                if directory.get_application(ctx.db, ref, "id").id == PASSPORT_APP_ID:
                    return render.error_page(
                        "Passport's own application is changed with the CLI, not here.",
                        status=403,
                    )
                if action == "rotate":
                    overlap = params.get("overlap") or "0"
                    if not (overlap.isascii() and overlap.isdigit() and len(overlap) < 10):
                        raise _invalid("The overlap is a number of seconds.", "overlap")
                    app, secret = administration.rotate_secret(ref, int(overlap))
                    return self._secret(request, admin, app, secret, "given a new secret")
                if action in ("enable", "disable"):
                    app = administration.set_application_enabled(ref, action == "enable")
                    notice = f"{app.name} is {'enabled' if app.enabled else 'disabled'}."
                elif action == "delete":
                    app = directory.get_application(ctx.db, ref, "id")
                    if (params.get("confirm") or "") != app.name:
                        raise _invalid("Type the application's name to confirm.", "confirm")
                    name = administration.delete_application(ref)
                    return self._screen(
                        request,
                        "console_done.html",
                        admin,
                        notice=f"{name} was deleted.",
                        back="/admin/applications",
                    )
                else:
                    raise _invalid("Unknown action.", "action")
            app = directory.get_application(ctx.db, ref, "id")
            return self._screen(request, "console_application.html", admin, app=app, notice=notice)

        return self._run(request, screen)

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
        found = search(ctx.db, q or None, _number(params.get("offset")), PAGE_SIZE, "name")
        later = found.offset + PAGE_SIZE
        shown: dict[str, Any] = {kind: found.items, **values}
        return self._screen(
            request,
            f"console_{kind}.html",
            admin,
            page=found,
            q=q,
            next=_link(f"/admin/{kind}", q=q, offset=later) if later < found.total else None,
            **shown,
        )

    def _secret(
        self, request: Request, admin: Admin, app: Any, secret: str | None, what: str
    ) -> Response:
        """The one page that shows a client secret: never again, never cached."""
        return self._screen(
            request, "console_secret.html", admin, app=app, secret=secret, what=what
        )

    # -- the audit log ---------------------------------------------------------------------------
    def audit(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(AUDIT_READ):
                return render.error_page("The audit log needs audit:read.", status=403)
            filters = {
                name: (params.get(name) or "").strip()
                for name in ("user", "application", "event", "outcome")
            }
            if params.get("format") in ("csv", "jsonl"):
                return _export(ctx, filters, params["format"])
            offset = _number(params.get("offset"))
            found = listings.audit_events(
                ctx.db,
                username=filters["user"] or None,
                application=filters["application"] or None,
                event=filters["event"] or None,
                outcome=filters["outcome"] or None,
                offset=offset,
                limit=PAGE_SIZE,
            )
            return self._screen(
                request,
                "console_audit.html",
                admin,
                events=found.items,
                page=found,
                filters=filters,
                next=_link("/admin/audit", **filters, offset=found.offset + PAGE_SIZE)
                if found.offset + PAGE_SIZE < found.total
                else None,
            )

        return self._run(request, screen)


EXPORT_LIMIT = 10_000
EXPORT_COLUMNS = (
    "ID",
    "At",
    "Event",
    "Outcome",
    "UserID",
    "Username",
    "ActorID",
    "Application",
    "IP",
    "UserAgent",
    "Detail",
)


def _export(ctx: RequestContext, filters: dict[str, str], kind: str) -> Response:
    """The audit events these filters select, newest first (at most
    :data:`EXPORT_LIMIT`), as CSV or JSON Lines, to download.  A CSV cell that a
    spreadsheet would read as a formula (``= + - @``, a tab or CR first) is prefixed with
    ``'`` (OWASP CSV injection)."""
    query = listings.audit_query(
        username=filters["user"] or None,
        application=filters["application"] or None,
        event=filters["event"] or None,
        outcome=filters["outcome"] or None,
    )
    rows = ctx.db.scalars(query.order_by(AuditEvent.id.desc()).limit(EXPORT_LIMIT)).all()
    records = [
        dict(
            zip(
                EXPORT_COLUMNS,
                (
                    e.id,
                    e.at.isoformat(),
                    e.event,
                    e.outcome,
                    e.user_id,
                    e.username,
                    e.actor_id,
                    e.application,
                    e.ip,
                    e.user_agent,
                    e.detail,
                ),
                strict=True,
            )
        )
        for e in rows
    ]
    if kind == "jsonl":
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        mimetype = "application/jsonl; charset=utf-8"
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        for record in records:
            writer.writerow([_cell(v) for v in record.values()])
        body, mimetype = out.getvalue(), "text/csv; charset=utf-8"
    response = Response(body, content_type=mimetype)
    stamp = ctx.now.strftime("%Y%m%dT%H%M%SZ")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{kind}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _invalid(message: str, source: str) -> ClientError:
    return Invalid(message, source=source)


def _number(raw: str | None) -> int:
    """A page offset from the query: digits only, else the first page."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 10 else 0


def _link(path: str, **values: Any) -> str:
    kept = {k: v for k, v in values.items() if v not in ("", None, 0)}
    return path + ("?" + urlencode(kept) if kept else "")


def _chart(hours: list[tuple[int, int]], now: datetime) -> dict[str, Any]:
    """Bars for an inline SVG (rendered by the template, no script): successes above the
    line, failures below, scaled to the busiest hour."""
    peak = max([1, *(ok for ok, _ in hours), *(failed for _, failed in hours)])
    width, height = 12, 60
    bars = []
    for index, (ok, failed) in enumerate(hours):
        x = index * (width + 2)
        up = round(ok / peak * height)
        down = round(failed / peak * height)
        bars.append({"x": x, "ok": ok, "failed": failed, "up": up, "down": down})
    start = now - timedelta(hours=len(hours) - 1)
    return {
        "bars": bars,
        "width": len(hours) * (width + 2),
        "height": height,
        "bar": width,
        "peak": peak,
        "total_ok": sum(ok for ok, _ in hours),
        "total_failed": sum(failed for _, failed in hours),
        "since": start.strftime("%Y-%m-%d %H:00"),
    }
