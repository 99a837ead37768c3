"""``/logout``: RP-Initiated Logout 1.0 (the ``end_session_endpoint`` of discovery).

A GET asks the signed-in user to confirm (§2: the OP "SHOULD ask the End-User whether
to log out", and MUST without a hint of the current session: Passport always asks, so
that no link can sign a user out); the POST ends the Passport session, queues
back-channel logout tokens naming its ``sid`` for the applications signed in through
it (:mod:`passport.oidc.backchannel`) and returns to the application only at a URI it
registered as a post-logout redirect URI (§3 ``post_logout_redirect_uris``, apart from
its login redirect URIs), with its ``state`` (§3) — also when the user was already signed out.
Without such a URI the user sees Passport's own "signed out" page: never an open
redirect.

§2: "The OP MUST support the use of the HTTP GET and POST methods", a POST carrying the
parameters form-serialized.  Two POSTs come here, told apart by the ``csrf`` field that
only Passport's own confirmation form carries:

* the confirmation form's, which signs the user out — only with this browser's CSRF
  token, from Passport's own origin (:meth:`~passport.pages.render.Page.form_ok`): a
  cross-site POST never signs anyone out (logout CSRF; §2: the OP asks);
* an application's, cross-site, without a token: a logout *request*, answered as its GET
  is — the question when the user is signed in.  A cross-site POST does not carry the
  session's ``SameSite=Lax`` cookie, so a user who looks signed out may not be: the POST
  is then sent on as a GET (303 See Other, RFC 9110 §15.4.4) with the same parameters,
  a top-level navigation that does carry it, where the rules of the GET decide.  Nothing
  reaches a redirect before the parameters are checked as the GET checks them.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from sqlalchemy import select
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc.base import redirect
from passport.oidc.base import with_query
from passport.pages import render
from passport.services import directory
from passport.services.accounts import Caller
from passport.storage.models import Application
from passport.web.context import RequestContext
from passport.web.errors import status_of

# RP-Initiated Logout 1.0 §2 (and §3's ``state``): the parameters of a logout request,
# what an application's POST hands on to the GET.
REQUEST_PARAMETERS = (
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
)


class LogoutPage(render.Page):
    def logout(self, request: Request) -> Response:
        try:
            params = oauth_params.page(request, self.settings)
            redirect_uri, client_id, refused = self._target(params)
        except ClientError as exc:
            return render.error_page(exc.message, "invalid_request", status=status_of(exc))
        state = params.get("state") or ""
        # Only Passport's own confirmation form posts a ``csrf`` field (module docstring).
        confirming = request.method == "POST" and "csrf" in params
        ctx = self.context(request, write=True)
        return ctx.respond(
            lambda: self._logout(
                request, ctx, params, redirect_uri, client_id, state, refused, confirming
            )
        )

    def _logout(
        self,
        request: Request,
        ctx: RequestContext,
        params: dict[str, str],
        redirect_uri: str,
        client_id: str,
        state: str,
        refused: bool,
        confirming: bool,
    ) -> Response:
        identity = ctx.identity
        if not confirming and identity is not None:
            return self.form(
                request,
                "logout.html",
                username=identity.username,
                redirect_uri=redirect_uri,
                client_id=client_id,
                state=state,
                refused=refused,
            )
        if not confirming and request.method == "POST":
            # An application's POST that shows no session: perhaps only because the
            # cross-site POST left the SameSite=Lax cookie behind — ask again as a GET.
            carried = {name: params[name] for name in REQUEST_PARAMETERS if params.get(name)}
            return see_other("/logout" + ("?" + urlencode(carried) if carried else ""))
        if confirming:
            if not self.form_ok(request, params):
                ctx.refuse()
                return render.error_page(render.FORM_EXPIRED, status=403)
            session = ctx.login_session
            if session is not None:
                caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
                ctx.accounts().sign_out(caller, ctx.user, session)
            ctx.end_session()
        # Signed out now, or already (§2: a logout request is idempotent, and a signed-out
        # user is sent back all the same): to the application when it said where, with
        # its ``state`` (§3), keeping the registered URI's own query.
        if redirect_uri:
            return redirect(with_query(redirect_uri, {"state": state}) if state else redirect_uri)
        return render.page("logout.html", username="", refused=refused)

    def _target(self, params: dict[str, str]) -> tuple[str, str, bool]:
        """``(post_logout_redirect_uri, client_id, refused)``: where to return to (or
        empty strings), and whether a return address was asked for and refused.

        RP-Initiated Logout 1.0 §2: ``id_token_hint`` must be an ID token we issued (an
        expired one is fine: :meth:`Tokens.id_token_hint_claims`); its ``aud`` names the
        client when ``client_id`` does not, and must equal it when both are given — a
        hint that fails is an error (§4: what fails validation is not used), the user
        stays signed in.  §3: the URI must be one the named client registered (exactly)
        as a ``post_logout_redirect_uri`` — not one of its login redirect URIs (§2: "MUST
        NOT perform post-logout redirection to a URI not registered for that purpose";
        a login callback reached with a ``state`` the link's author chose is not a
        return address), and not one stored with a ``#`` before the fragment rule
        (:func:`~passport.services.directory.is_registered_redirect_uri`) — and the
        client must be enabled; else Passport does not
        redirect (§4), and the sign-out goes on to Passport's own "signed out" page.
        With no client named there is nowhere to return to.
        """
        hint = params.get("id_token_hint")
        audience = None
        if hint:
            self.services.keys.require()
            claims = self.tokens().id_token_hint_claims(hint)
            if claims is None:
                raise ClientError("id_token_hint is not an ID token that Passport issued.")
            audience = str(claims["aud"])
        client_id = params.get("client_id") or ""
        if client_id and audience and not hmac.compare_digest(client_id, audience):
            raise ClientError("id_token_hint was not issued to this client_id.")
        client_id = client_id or audience or ""
        uri = params.get("post_logout_redirect_uri") or ""
        if not uri:
            return "", "", False
        if not client_id:
            return "", "", True
        with self.services.db.session() as db:
            app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
            if (
                app is None
                or not app.enabled
                or not directory.is_registered_redirect_uri(uri, app.post_logout_redirect_uris)
            ):
                return "", "", True
        return uri, client_id, False


def see_other(location: str) -> Response:
    """303 See Other (RFC 9110 §15.4.4): the browser follows with a GET."""
    response = Response(status=303)
    response.headers["Location"] = location
    return response
