"""The console's health screen: is this Passport well, and is anything piling up.

Who may see it: any holder of a console right, not only ``admin``.  Everything on it is
a count or an up/down state — the package version, whether the database answers and
its schema is current (the readiness probe's own check,
:func:`passport.services.health.readiness`, which ``/readyz`` already tells anyone who
can reach it), Redis's state, the mail outbox and back-channel logout backlogs, the
number of active sessions — with no account, address, URL, host or key, so it gives a
delegated administrator (a help desk asked "why did my mail not come?") nothing their
right does not already reach.  No secret is ever put on the page: the database and
Redis are named by kind, never by URL (a URL may carry a password)."""

from __future__ import annotations

from importlib import metadata

from werkzeug import Request
from werkzeug import Response

import passport
from passport.oidc import backchannel
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.services import health
from passport.services import mail
from passport.web.context import RequestContext


def package_version() -> str:
    """The installed package's version (the source tree's when not installed)."""
    try:
        return metadata.version("passport")
    except metadata.PackageNotFoundError:
        return passport.__version__


class HealthScreens(ConsoleBase):
    """The console's health screen."""

    # -- health ------------------------------------------------------------------------------
    def health(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            services = self.services
            ready = health.readiness(services.db, services.redis)
            try:
                active: int | None = services.sessions.count_active(ctx.now)
            except health.UNREACHABLE:
                active = None
            return self._screen(
                request,
                "console_health.html",
                admin,
                version=package_version(),
                database=services.db.engine.dialect.name,
                ready=ready,
                mail_enabled=self.settings.mail_enabled,
                outbox=mail.outbox_state(ctx.db) if ready.schema_current else None,
                backlog=backchannel.backlog(ctx.db) if ready.schema_current else None,
                active=active,
                session_store="Redis" if services.redis is not None else "database",
            )

        return self._run(request, screen)
