"""``/consent``: allow or deny a pending authorization (OIDC Core §3.1.2.4).

Its handle is the only parameter that names what is decided; the application, the
scopes, the redirect URI are on the server (:mod:`passport.oidc.pending`), and so is
the fact that the user agreed — no client or page can send it.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from werkzeug import Request
from werkzeug import Response

from passport.oidc import pending
from passport.oidc.authorization import SCOPES
from passport.oidc.authorization import STALE_AUTHORIZATION
from passport.oidc.authorization import UNKNOWN_APPLICATION
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.pages import render
from passport.storage.models import Application
from passport.web.context import RequestContext

if TYPE_CHECKING:
    from passport.composition import Services


class ConsentPage(render.Page):
    def __init__(
        self, services: Services, context: ContextFactory, flow: AuthorizationEndpoint
    ) -> None:
        super().__init__(services, context)
        self.flow = flow

    def consent(self, request: Request) -> Response:
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        ctx = self.context(request, write=request.method == "POST")
        return ctx.respond(lambda: self._decide(request, ctx, params.get("authorization"), params))

    def _decide(
        self, request: Request, ctx: RequestContext, handle: str | None, params: dict[str, str]
    ) -> Response:
        session, identity = ctx.login_session, ctx.identity
        db = ctx.db
        row = self.flow.find_pending(db, request, handle)
        if row is None or handle is None:
            return render.error_page(STALE_AUTHORIZATION, "invalid_request")
        if (
            session is None
            or identity is None
            or row.session_hash is None
            or not hmac.compare_digest(row.session_hash, session.id_hash)
            or (row.login_required and not row.logged_in_at)
        ):
            # Not (or no longer) signed in here: the same check as every other step.
            user_id = identity.id if identity is not None else None
            return self.flow.advance(ctx, row, handle, session, user_id)
        asked = pending.request_of(row)
        app = db.get(Application, row.application_id)
        if app is None or not app.enabled:
            return render.error_page(UNKNOWN_APPLICATION, "invalid_client")
        if request.method != "POST":
            return self.form(
                request,
                "consent.html",
                application=app.name,
                username=identity.username,
                scopes=[SCOPES[s] for s in asked.scope.split() if s in SCOPES],
                apis=self.flow.resource_names(db, asked.resources),
                authorization=handle,
            )
        if params.get("decision") != "allow":
            return self.flow.deny(db, row)
        self.flow.remember_consent(
            db, identity.id, app.id, asked.scope, ctx.now, resources=asked.resources
        )
        row.consented_at = ctx.now
        return self.flow.advance(ctx, row, handle, session, identity.id)
