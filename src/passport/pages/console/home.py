"""The console's dashboard: counts of users, active sessions, sign-ins per hour over the
last day."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Any

from werkzeug import Request
from werkzeug import Response

from passport.pages.console.base import AUDIT_READ
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.services import health
from passport.services import listings
from passport.services.policy import USERS_READ
from passport.services.policy import USERS_WRITE
from passport.web.context import RequestContext


class HomeScreens(ConsoleBase):
    """The console's dashboard: counts of users, sign-ins per hour over the last day."""

    # -- the dashboard -----------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            counts = {}
            if admin.may(USERS_READ) or admin.may(USERS_WRITE):
                found = listings.user_counts(ctx.db)
                counts = {
                    "users": found.users,
                    "disabled": found.disabled,
                    "unverified": found.unverified,
                }
            chart = None
            if admin.may(AUDIT_READ):
                chart = _chart(listings.sign_ins_per_hour(ctx.db, ctx.now), ctx.now)
            try:  # a count, like the health screen's: any console right sees it
                active: int | None = self.services.sessions.count_active(ctx.now)
            except health.UNREACHABLE:
                active = None
            return self._screen(
                request, "console_home.html", admin, counts=counts, chart=chart, active=active
            )

        return self._run(request, screen)


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
