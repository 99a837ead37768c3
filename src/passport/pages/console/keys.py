"""The console's signing keys: their states, and rotating them (``admin`` only).

The states are :func:`passport.oidc.keys.key_states` and the rotation is
:meth:`passport.services.administration.Administration.rotate_signing_keys`, the same as
``passport keys list|rotate``.  Seeing and rotating both need ``admin``: the keys sign
every application's tokens, so they are Passport-wide, not a delegated part of it."""

from __future__ import annotations

from werkzeug import Request
from werkzeug import Response

from passport.oidc.base import redirect
from passport.oidc.keys import NOT_CONFIGURED
from passport.oidc.keys import key_states
from passport.pages import render
from passport.pages.console.base import Admin
from passport.pages.console.base import ConsoleBase
from passport.pages.console.base import invalid
from passport.services.kek import KeyConfigurationError
from passport.services.permissions import ADMIN
from passport.web.context import RequestContext

ROTATED = "rotated"


class KeyScreens(ConsoleBase):
    """The console's signing keys: their states, and rotating them."""

    # -- signing keys ------------------------------------------------------------------------
    def keys(self, request: Request) -> Response:
        def screen(ctx: RequestContext, admin: Admin, params: dict[str, str]) -> Response:
            ring = self.services.keys
            if request.method == "POST":  # Administration.rotate_signing_keys decides
                if params.get("action") != "rotate":
                    raise invalid("Say what to do with the keys (rotate).", "action")
                if not ring.configured:
                    return render.error_page("Cannot rotate: " + NOT_CONFIGURED + ".", status=409)
                self._administration(ctx, admin).rotate_signing_keys(ring)
                # Seen after the commit (the keys are read outside this transaction).
                return redirect(f"/admin/keys?done={ROTATED}")
            if not admin.may(ADMIN):
                return render.error_page("The signing keys need the right admin.", status=403)
            states, problem = [], ""
            if not ring.configured:
                problem = "Signing keys cannot be read: " + NOT_CONFIGURED + "."
            else:
                try:
                    states = key_states(ring, ctx.now)
                except KeyConfigurationError as exc:  # a key this KEK cannot open
                    problem = str(exc)
            return self._screen(
                request,
                "console_keys.html",
                admin,
                keys=states,
                problem=problem,
                delay=self.settings.key_rotation_delay,
                notice="New keys published: they sign once their time comes."
                if params.get("done") == ROTATED
                else "",
            )

        return self._run(request, screen)
