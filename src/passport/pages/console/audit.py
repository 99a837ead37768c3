"""The console's audit log: filters, pages, CSV and JSON Lines export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC
from datetime import datetime
from typing import Any

from werkzeug import Request
from werkzeug import Response

from passport.pages import render
from passport.pages.console.base import AUDIT_READ
from passport.pages.console.base import PAGE_SIZE
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.pages.console.base import link
from passport.pages.console.base import offset_of
from passport.services import listings
from passport.storage.models import AuditEvent
from passport.web.context import RequestContext


class AuditScreens(ConsoleBase):
    """The console's audit log: filters, pages, CSV and JSON Lines export."""

    # -- the audit log ---------------------------------------------------------------------------
    def audit(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(AUDIT_READ):
                return render.error_page("The audit log needs audit:read.", status=403)
            filters = _filters(params)
            if params.get("format") in ("csv", "jsonl"):
                return _export(ctx, filters, params["format"])
            offset = offset_of(params.get("offset"))
            found = listings.audit_events(
                ctx.db,
                **_selection(filters),
                offset=offset,
                limit=PAGE_SIZE,
            )
            return self._screen(
                request,
                "console_audit.html",
                admin,
                script=True,
                # Following shows what happens from now on: not for a page of the past.
                follow=offset == 0 and not filters["until"],
                newest=found.items[0].id if found.items else 0,
                events=found.items,
                page=found,
                filters=filters,
                next=link("/admin/audit", **filters, offset=found.offset + PAGE_SIZE)
                if found.offset + PAGE_SIZE < found.total
                else None,
            )

        return self._run(request, screen)

    def audit_tail(self, request: Request) -> Response:
        """``GET /admin/audit/tail?after=<id>``: the newest events (at most
        :data:`listings.TAIL_LIMIT`, newest first) after ``after`` that the audit log's
        filters select, as JSON for the page's live tail; ``last`` is the id to ask
        after next.  The same guard and right as the page; never cached."""

        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            if not admin.may(AUDIT_READ):
                return _json({"error": "The audit log needs audit:read."}, 403)
            raw = params.get("after") or "0"
            if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS):
                return _json({"error": "after is the id of an audit event."}, 400)
            after = int(raw)
            filters = _filters(params)
            events = (
                []  # past any id the database can hold: nothing is after it
                if after > MAX_EVENT_ID
                else listings.audit_after(
                    ctx.db,
                    after,
                    **_named(filters),
                )
            )
            return _json(
                {
                    "events": [
                        {
                            "id": e.id,
                            "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                            "event": e.event,
                            "outcome": e.outcome,
                            "username": e.username,
                            "application": e.application,
                            "ip": e.ip,
                            "detail": e.detail,
                        }
                        for e in events
                    ],
                    "last": max([after, *(e.id for e in events)]),
                },
                200,
            )

        return self._run(request, screen)


# audit_events.id is a BIGINT (an INTEGER on SQLite, 64 bits too).
MAX_EVENT_ID = 2**63 - 1
MAX_ID_DIGITS = 19


FILTERS = ("user", "application", "event", "outcome", "since", "until")


def _filters(params: dict[str, str]) -> dict[str, str]:
    """The audit log's filters as typed (kept in the pager's and the downloads' links)."""
    return {name: (params.get(name) or "").strip() for name in FILTERS}


def _selection(filters: dict[str, str]) -> dict[str, Any]:
    """The filters as :func:`listings.audit_query` takes them: ``since`` (inclusive) and
    ``until`` (exclusive) are times in UTC as a browser's ``datetime-local`` field sends
    them (``2026-11-26T20:00``), or with a zone; anything else is a 400."""
    return _named(filters) | {
        "since": _moment(filters["since"], "since"),
        "until": _moment(filters["until"], "until"),
    }


def _named(filters: dict[str, str]) -> dict[str, Any]:
    """The filters that name something (user, application, event, outcome), for the
    page, the downloads and the live tail alike."""
    return {
        "username": filters["user"] or None,
        "application": filters["application"] or None,
        "event": filters["event"] or None,
        "outcome": filters["outcome"] or None,
    }


def _moment(value: str, source: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(
            f"'{source}' is a time like 2026-11-26T20:00 (UTC), or with its zone.", source
        ) from None


def _json(body: object, status: int) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, content_type="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


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
    query = listings.audit_query(**_selection(filters))
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
