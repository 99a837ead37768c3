"""The authorization endpoint, ``/oauth2/authorize``: RFC 6749 §4.1 (``response_type=code``
only), PKCE (RFC 7636, ``S256`` only), OpenID Connect Core §3.1.2 (``nonce``,
``prompt``, ``max_age``, ``login_hint``, ``id_token_hint``), and ``iss`` in the response
(RFC 9207).

Errors go back to the client only once its ``redirect_uri`` is known to be registered
(RFC 6749 §4.1.2.1); before that they are shown on an error page, so that Passport
never redirects to an address an attacker chose.  From then on every answer, code or
error, goes back by the ``response_mode`` asked for: ``query`` (the default of the
code flow, OAuth 2.0 Multiple Response Type Encoding Practices §2.1) or ``form_post``
(OAuth 2.0 Form Post Response Mode: a page that posts it, :func:`render.form_post`).

What the request may ask and how much of it counts:

* ``scope``: values Passport does not know are ignored, not refused (RFC 6749 §3.3:
  the server "MAY fully or partially ignore the scope"; OIDC Core §3.1.2.1: "Scope
  values used that are not understood by an implementation SHOULD be ignored"); the
  token response's ``scope`` says what was granted (RFC 6749 §5.1).  Only when
  nothing known is left of a non-empty ``scope`` is it ``invalid_scope``.
* ``offline_access`` (OIDC Core §11) counts only with ``prompt=consent`` — the user is
  asked then, every time — or for a first-party application, whose administrator
  decided for its users; otherwise it is ignored like an unknown scope.
* ``resource`` (RFC 8707 §2, repeatable): the APIs the access token is to be for —
  each a resource identifier an enabled application registered
  (:func:`passport.oidc.tokens.resources_asked`), else ``invalid_target`` back to the
  client.  They are kept through the pending authorization and the code; the consent
  page names them (the user allows the application to reach those APIs as them), and
  a remembered consent covers only the resources it was given for.
* ``request`` and ``request_uri`` (OIDC Core §6) are refused, ``request_not_supported``
  and ``request_uri_not_supported``: a Request Object may say something the plain
  parameters do not, so answering as if it were not there would be wrong.  The one
  ``request_uri`` accepted is one the PAR endpoint issued (RFC 9126 §4,
  :mod:`passport.oidc.par`): its pushed parameters are the request, validated by the
  same :meth:`AuthorizationEndpoint.validate`; an application (or the server,
  ``require_par``) may require it (RFC 9126 §5-6).
* ``id_token_hint`` (OIDC Core §3.1.2.1) must be an ID token Passport issued
  (``invalid_request`` otherwise); when someone else is signed in, the user must sign
  in again — with ``prompt=none``, ``login_required``.
* ``acr_values`` (OIDC Core §3.1.2.1): the first value Passport publishes in
  ``acr_values_supported`` sets the class of sign-in the code needs; a session below it
  steps up (a second factor, or a passkey) before the code is issued, as does one below
  the application's ``mfa_policy`` (:mod:`passport.services.factors`).  Values Passport
  does not know are ignored (§15.1).  The ID token's ``acr`` says what was reached.
* ``display``, ``ui_locales`` and ``claims_locales`` are accepted and have no effect
  (OIDC Core §15.1: their use must simply not be an error): one page layout, one
  language (docs/oauth-design.md).
* any other parameter is ignored (OIDC Core §3.1.2.1, RFC 6749 §3.1: "The
  authorization server MUST ignore unrecognized request parameters").

A request that needs the user (to sign in, to allow) becomes a pending authorization
kept on the server (:mod:`passport.oidc.pending`); the hosted pages pass only its
handle, and continue it with :meth:`AuthorizationEndpoint.advance`.

The Passport session cookie is the single sign-on: signed in once, a user is not asked
again by the next application — and passing through here is activity, so the session's
sliding expiry runs as for any other request (the request scope's after-actions).
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.oidc import params as oauth_params
from passport.oidc import pending
from passport.oidc import pushed
from passport.oidc.base import Part
from passport.oidc.base import redirect
from passport.oidc.base import with_query
from passport.oidc.errors import AccessDenied
from passport.oidc.errors import ConsentRequired
from passport.oidc.errors import InteractionRequired
from passport.oidc.errors import InvalidRequest
from passport.oidc.errors import InvalidScope
from passport.oidc.errors import InvalidTarget
from passport.oidc.errors import LoginRequired
from passport.oidc.errors import OAuthError
from passport.oidc.errors import RequestNotSupported
from passport.oidc.errors import RequestUriNotSupported
from passport.oidc.errors import UnsupportedResponseType
from passport.oidc.pending import AuthorizationRequest
from passport.oidc.tokens import digest
from passport.oidc.tokens import resources_asked
from passport.oidc.tokens import split_resources
from passport.oidc.tokens import subject_of
from passport.pages import render
from passport.services import access
from passport.services import directory
from passport.services.factors import Level
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import Application
from passport.storage.models import AuthorizationCode
from passport.storage.models import Consent
from passport.storage.models import PendingAuthorization
from passport.storage.models import User
from passport.web.context import RequestContext

# RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED";
# ours is one minute — a code is redeemed by the client's back end at once.
CODE_LIFETIME = 60
SCOPES = {
    "openid": "Sign you in (your user id)",
    "profile": "See your name and username",
    "email": "See your email address",
    "groups": "See which groups you are in",
    "permissions": "See your permissions in this application",
    "offline_access": "Keep access while you are away",
}
# Every parameter that :meth:`AuthorizationEndpoint.check` and ``hinted_subject`` read —
# RFC 6749 §4.1.1, RFC 7636 §4.3, OAuth 2.0 Form Post Response Mode §2, OIDC Core
# §3.1.2.1, RFC 8707 §2 (``resource``, with every value) — and so all that a pushed
# request keeps (RFC 9126 §2.1: others are ignored here, RFC 6749 §3.1, and need not be
# stored; :mod:`passport.oidc.par`).  A parameter the reader starts to read is added
# here, and nowhere else.  ``client_id`` is not kept: it is the pushing client's, and
# ``request``/``request_uri`` are refused at the push.
AUTHORIZATION_PARAMETERS = frozenset(
    {
        "response_type",
        "redirect_uri",
        "scope",
        "state",
        "response_mode",
        "nonce",
        "prompt",
        "max_age",
        "login_hint",
        "id_token_hint",
        "code_challenge",
        "code_challenge_method",
        "resource",
        "acr_values",
    }
)
PROMPTS = frozenset({"none", "login", "consent"})  # OIDC Core §3.1.2.1 (no select_account)
# How an answer goes back: RFC 6749 §4.1.2 (query, the code flow's default) and OAuth 2.0
# Form Post Response Mode §2.  Not "fragment": only the code flow is supported, and a code
# must not go in a fragment (OAuth 2.0 Multiple Response Type Encoding Practices §2.1).
RESPONSE_MODES = ("query", "form_post")
# The scope columns of codes and tokens (RFC 6749 §3.3 gives no limit; ours is 500).
MAX_SCOPE_LENGTH = 500
# max_age must fit the database's INTEGER (and Python's timedelta): 68 years.
MAX_AGE_LIMIT = 2**31 - 1
# RFC 7636 §4.1-4.2: a verifier, and so an S256 challenge's input, is 43 to 128 characters.
PKCE_MIN, PKCE_MAX = 43, 128
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
STALE_AUTHORIZATION = (
    "This sign-in request has expired, was already used, or was started in another "
    "browser. Go back to the application and sign in from there again."
)
UNKNOWN_APPLICATION = "This application is not known to Passport."
NOT_ADMITTED = "The user may not sign in to this application."
UNUSABLE_REQUEST_URI = (
    "This sign-in request has expired or was already used. Go back to the application "
    "and sign in from there again."
)


class UnverifiedRedirect(InvalidRequest):
    """The ``redirect_uri`` is not one the client registered: no answer may go to it
    (RFC 6749 §4.1.2.1) — an error page at the authorization endpoint, a JSON error at
    the PAR endpoint (RFC 9126 §2.3)."""


class AuthorizationEndpoint(Part):
    def authorize(self, request: Request) -> Response:
        """GET or POST (OIDC Core §3.1.2.1) ``/oauth2/authorize``, with the request's own
        parameters or, by ``request_uri``, those the client pushed (RFC 9126 §4)."""
        self.services.keys.require()
        try:
            params = oauth_params.authorization(request, self.settings)
        except ClientError as exc:
            return render.client_error_page(exc)
        client_id = params.get("client_id", "")
        with self.services.db.session() as db:
            app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
            if app is None or not app.enabled or not client_id:
                return render.error_page(UNKNOWN_APPLICATION, "invalid_client")
            db.expunge(app)
        through_par = pushed.is_pushed(params.get("request_uri", ""))
        if through_par:
            stored = self._take_pushed(app, params["request_uri"])
            if stored is None:
                # RFC 9126 §4 "An expired request_uri MUST be rejected as invalid"; unknown,
                # used or another client's alike (invalid_request_uri, OIDC Core
                # §3.1.2.6).  No redirect: nothing here names a verified redirect URI.
                return render.error_page(UNUSABLE_REQUEST_URI, "invalid_request_uri")
            # RFC 9126 §4 (and RFC 9101 §6.3, whose request_uri it is): only the pushed
            # parameters count; any other in this request is ignored.
            params = oauth_params.Params({**stored, "client_id": client_id}, stored.repeated)
        try:
            asked = self.validate(app, params, through_par=through_par)
        except UnverifiedRedirect:
            return render.error_page(
                "The application asked to return to an address it has not registered.",
                "invalid_redirect_uri",
            )
        except OAuthError as error:
            return self.refuse_to_client(
                params.get("redirect_uri", ""),
                params.get("state"),
                error,
                self.response_mode_of(params),
            )
        ctx = self.context(request, write=True)
        return ctx.respond(lambda: self._start(request, ctx, app, asked))

    def _take_pushed(self, app: Application, request_uri: str) -> oauth_params.Params | None:
        """The parameters ``app`` pushed as ``request_uri``, used up in a transaction of
        their own (RFC 9126 §4: one-time use), whatever becomes of the request after."""
        with self.services.db.session(write=True) as db, db.begin():
            return pushed.take(db, request_uri, app.id, self.services.clock())

    def validate(
        self, app: Application, params: dict[str, str], *, through_par: bool
    ) -> AuthorizationRequest:
        """An authorization request of ``app``, whatever brought it: the parameters of
        ``/oauth2/authorize``, those pushed to ``/oauth2/par`` (RFC 9126 §2.1: validated
        "as it would an authorization request sent to the authorization endpoint"), and
        those again when their ``request_uri`` is used (§4: "as it would any other
        authorization request" — the application may have changed in between).

        Raises :class:`UnverifiedRedirect` when ``redirect_uri`` is not registered (RFC
        6749 §3.1.2.3, RFC 9700 §4.1.3: exact string match; one stored with a fragment
        is not, §3.1.2: :func:`~passport.services.directory.is_registered_redirect_uri`),
        else an
        :class:`OAuthError` that may go back to that ``redirect_uri``.  ``through_par``:
        the parameters came through the PAR endpoint — required when the application or the
        server says so (RFC 9126 §4, §5-6: refused ``invalid_request`` otherwise).
        """
        redirect_uri = params.get("redirect_uri", "")
        if not directory.is_registered_redirect_uri(redirect_uri, app.redirect_uris):
            raise UnverifiedRedirect("redirect_uri is not one the client registered.")
        if not through_par and (
            self.settings.require_par or app.require_pushed_authorization_requests
        ):
            raise InvalidRequest(
                "This client must push its authorization requests to the "
                "pushed_authorization_request_endpoint (RFC 9126)."
            )
        return self.check(app, redirect_uri, params)

    def check(
        self, app: Application, redirect_uri: str, params: dict[str, str]
    ) -> AuthorizationRequest:
        """Check what the client asked for (RFC 6749 §4.1.1, OIDC Core §3.1.2.1-2).

        Only these parameters count; any other (``_consented``, ``_logged_in``…) is ignored:
        nothing a client sends can say that the user signed in or agreed.
        """
        mode = params.get("response_mode") or "query"  # RFC 6749 §3.1: empty is absent
        if mode not in RESPONSE_MODES:
            raise InvalidRequest(
                "response_mode must be query or form_post (only the code flow is supported)."
            )
        # OIDC Core §6.1-6.2: refused, never ignored (empty is absent, RFC 6749 §3.1).
        if params.get("request"):
            raise RequestNotSupported("Request Objects (the request parameter) are not supported.")
        if params.get("request_uri"):  # one of the PAR endpoint's never gets here
            raise RequestUriNotSupported(
                "The request_uri parameter is supported only with a value from the "
                "pushed_authorization_request_endpoint (RFC 9126)."
            )
        if params.get("response_type") != "code":
            raise UnsupportedResponseType("Only response_type=code is supported.")
        prompts = set(params.get("prompt", "").split())
        if "none" in prompts and len(prompts) > 1:  # OIDC Core §3.1.2.1
            raise InvalidRequest("prompt=none cannot be combined.")
        scopes = self.granted_scopes(app, params.get("scope", ""), prompts)
        # RFC 7636 §4.3: without a method the challenge is "plain", which we do not accept
        # (RFC 9700 §2.1.1: S256 is the one to use).
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge and method != "S256":
            raise InvalidRequest("code_challenge_method must be S256.")
        if challenge and not (PKCE_MIN <= len(challenge) <= PKCE_MAX):
            raise InvalidRequest("code_challenge must be 43 to 128 characters.")
        # RFC 9700 §2.1.1: public clients MUST use PKCE.
        if not app.confidential and not challenge:
            raise InvalidRequest("Public clients must use PKCE (S256).")
        max_age: int | None = None
        if "max_age" in params:
            raw = params["max_age"]
            if not _ASCII_DIGITS.fullmatch(raw) or int(raw) > MAX_AGE_LIMIT:
                raise InvalidRequest(f"max_age must be a number of seconds up to {MAX_AGE_LIMIT}.")
            max_age = int(raw)
        for name in ("state", "nonce", "login_hint", "acr_values"):
            limit = pending.column_length(name)
            if len(params.get(name) or "") > limit:
                raise InvalidRequest(f"{name} is longer than {limit} characters.")
        resources = resources_asked(
            self.services.client_cache.current(), oauth_params.every(params, "resource")
        )
        return AuthorizationRequest(
            application_id=app.id,
            redirect_uri=redirect_uri,
            scope=" ".join(scopes),
            state=params.get("state"),
            nonce=params.get("nonce") or None,
            code_challenge=challenge or None,
            prompts=frozenset(prompts & PROMPTS),
            max_age=max_age,
            login_hint=params.get("login_hint") or None,
            response_mode=mode,
            hinted_subject=self.hinted_subject(params),
            resources=resources,
            acr_values=params.get("acr_values") or None,
        )

    def hinted_subject(self, params: dict[str, str]) -> str | None:
        """The ``sub`` of ``id_token_hint`` (OIDC Core §3.1.2.1), or None without one.

        The hint must be an ID token Passport issued (an expired one is still a hint, and
        Passport need not be its audience, ibid.); anything else is ``invalid_request``
        rather than ignored, since the client meant to name a user."""
        hint = params.get("id_token_hint")
        if not hint:  # RFC 6749 §3.1: empty is absent
            return None
        claims = self.tokens().id_token_hint_claims(hint)
        if claims is None:
            raise InvalidRequest("id_token_hint is not an ID token that Passport issued.")
        return str(claims["sub"])

    @staticmethod
    def granted_scopes(app: Application, raw_scope: str, prompts: set[str]) -> list[str]:
        """The scopes of ``raw_scope`` that the request can be granted, in order, once each.

        Unknown ones are left out (RFC 6749 §3.3; OIDC Core §3.1.2.1 "SHOULD be ignored"),
        and so is ``offline_access`` without ``prompt=consent`` unless the application is
        first-party: OIDC Core §11, "prompt parameter MUST be used with the value consent
        unless other conditions for processing the request permitting offline access to
        the requested resources are in place" — a first-party application's
        administrator allowed it for its users.  A ``scope`` of which nothing is left is
        ``invalid_scope`` (RFC 6749 §4.1.2.1): answering with an empty grant would leave
        the client to find out later.  ``Application.scopes`` does not bound these: it is
        what the client credentials grant may issue (RFC 7591 §2), never a user scope.
        """
        if len(raw_scope) > MAX_SCOPE_LENGTH:
            raise InvalidScope(f"scope is longer than {MAX_SCOPE_LENGTH}.")
        asked = list(dict.fromkeys(raw_scope.split()))
        granted = [s for s in asked if s in SCOPES]
        if "offline_access" in granted and not ("consent" in prompts or app.first_party):
            granted.remove("offline_access")
        if asked and not granted:
            raise InvalidScope("None of the scopes asked for is supported here.")
        return granted

    @staticmethod
    def response_mode_of(params: dict[str, str]) -> str:
        """How to answer a request that :meth:`check` refused: its ``response_mode`` when
        that is one Passport supports, else ``query`` (the code flow's default)."""
        mode = params.get("response_mode") or "query"
        return mode if mode in RESPONSE_MODES else "query"

    def _start(
        self, request: Request, ctx: RequestContext, app: Application, asked: AuthorizationRequest
    ) -> Response:
        """Answer at once when nothing is needed from the user (or ``prompt=none``); else keep
        the request as a pending authorization and send the browser to sign in or to allow.

        ``asked.hinted_subject``, of an ``id_token_hint``: signed in as someone else, the
        user is not the one the client named, so it is as if no one were signed in (OIDC
        Core §3.1.2.1: "otherwise, it SHOULD return an error, such as login_required")."""
        now = ctx.now
        session, identity = ctx.login_session, ctx.identity
        if session is None or identity is None:
            login_required = True
        else:
            # OIDC Core §3.1.2.1: prompt=login, and max_age (max_age=0 is prompt=login).
            age = now - session.created_at
            hinted = asked.hinted_subject
            login_required = (
                "login" in asked.prompts
                or (
                    asked.max_age is not None
                    and (asked.max_age == 0 or age > timedelta(seconds=asked.max_age))
                )
                or (hinted is not None and hinted != subject_of(identity.id))
            )
        db = ctx.db
        consent_required = identity is None or self.needs_consent(
            db, app, identity.id, asked, consented=False
        )
        # A session that signed in less strongly than the application or the request
        # asks must step up (services/factors.py) before a code is issued.
        step_up = (
            session is not None
            and identity is not None
            and level_of(session.amr) < self.required_level(db, app, identity.id, asked.acr_values)
        )
        # Who may sign in to the application (services/access.py), asked of a user
        # fully signed in (after a step-up: the answer is not for a password alone).
        refused: tuple[User | None, access.Admission] | None = None
        if not login_required and not step_up:
            assert identity is not None
            refused = self._refusal(ctx, app, identity.id)
        if "none" in asked.prompts:  # OIDC Core §3.1.2.6
            if login_required:
                ctx.refuse()
                return self.refuse_to(asked, LoginRequired("The user is not signed in."))
            if step_up:
                ctx.refuse()
                return self.refuse_to(
                    asked,
                    InteractionRequired(
                        "The user must sign in with a second factor for this application."
                    ),
                )
            if refused is not None:
                # RFC 6749 §4.1.2.1 access_denied (OIDC Core §3.1.2.6 lets prompt=none
                # answer any error code); the refusal's record is durable.
                ctx.refuse()
                return self.refuse_to(asked, AccessDenied(NOT_ADMITTED))
            if consent_required:
                ctx.refuse()
                return self.refuse_to(
                    asked, ConsentRequired("The user has not allowed this application.")
                )
        if not login_required and not consent_required and not step_up and refused is None:
            assert session is not None and identity is not None
            return self.issue_code(db, app, asked, identity.id, session, now)
        browser = request.cookies.get(pending.BROWSER_COOKIE)
        fresh_browser = not pending.valid_browser_binding(browser)
        if browser is None or fresh_browser:
            browser = pending.new_browser_binding()
        # A refused user's request waits for a fresh sign-in (someone else's): nothing
        # continues it for this session.
        fresh_sign_in = login_required or refused is not None
        handle = pending.start(
            db,
            asked,
            browser=browser,
            session_hash=None if fresh_sign_in or session is None else session.id_hash,
            login_required=fresh_sign_in,
            now=now,
        )
        if refused is not None:
            response = self.refused_page(app, asked, refused[0], refused[1], handle)
        else:
            step = "/login?" if login_required else "/login/verify?" if step_up else "/consent?"
            response = redirect(step + urlencode({"authorization": handle}))
        if fresh_browser:
            response.set_cookie(
                pending.BROWSER_COOKIE,
                browser,
                httponly=True,
                samesite="Lax",  # sent on the client's top-level redirect to us
                path="/",
                secure=self.secure(request),
            )
        return response

    def required_level(
        self, db: Session, app: Application, user_id: int, acr_values: str | None
    ) -> Level:
        """The class of sign-in a code for ``app`` needs for this user: what every sign-in
        of theirs needs (a factor they have, a group's rule, ``admin_mfa``), the
        application's ``mfa_policy`` (else the server's), raised by the request's
        ``acr_values`` (services/factors.py)."""
        factors = reading(self.settings, self.services.throttle, db)
        return factors.required_level(user_id, app.mfa_policy, acr_values)

    def needs_consent(
        self,
        db: Session,
        app: Application,
        user_id: int,
        asked: AuthorizationRequest,
        *,
        consented: bool,
    ) -> bool:
        """Whether the user must allow this (OIDC Core §3.1.2.4): not for a first-party
        application when so configured, always for ``prompt=consent``, else when the
        scopes asked, or the resources (RFC 8707), are not all among those allowed before."""
        if consented or (app.first_party and self.settings.consent_skip_first_party):
            return False
        if "consent" in asked.prompts:
            return True
        given = db.get(Consent, (user_id, app.id))
        return (
            given is None
            or not set(asked.scope.split()) <= set(given.scope.split())
            or not set(asked.resources) <= set(split_resources(given.resource))
        )

    @staticmethod
    def resource_names(db: Session, resources: tuple[str, ...]) -> list[tuple[str, str]]:
        """The APIs a consent grants access to: each resource's application name and its
        identifier (what the user is asked to allow, RFC 8707 §1: the token is usable
        there)."""
        named: list[tuple[str, str]] = []
        for uri in resources:
            server = directory.resource_server(db, uri)
            named.append((server.name if server is not None else uri, uri))
        return named

    def find_pending(
        self, db: Session, request: Request, handle: str | None
    ) -> PendingAuthorization | None:
        """The live pending authorization ``handle`` names, if this browser made it."""
        browser = request.cookies.get(pending.BROWSER_COOKIE)
        return pending.find(db, handle, browser, self.services.clock())

    def advance(
        self,
        ctx: RequestContext,
        row: PendingAuthorization,
        handle: str,
        session: LoginSessionInfo | None,
        user_id: int | None,
    ) -> Response:
        """The next step of a pending authorization: sign in, step up, be refused by
        the application's sign-in policy, allow, or the code."""
        db = ctx.db
        now = self.services.clock()
        if session is None or user_id is None or (row.login_required and not row.logged_in_at):
            return redirect("/login?" + urlencode({"authorization": handle}))
        if row.session_hash is None or not hmac.compare_digest(row.session_hash, session.id_hash):
            return render.error_page(STALE_AUTHORIZATION, "invalid_request")
        app = db.get(Application, row.application_id)
        asked = pending.request_of(row)
        if app is None or not app.enabled:
            pending.consume(db, row)
            return render.error_page(UNKNOWN_APPLICATION, "invalid_client")
        if asked.hinted_subject is not None and asked.hinted_subject != subject_of(user_id):
            # OIDC Core §3.1.2.1 ``id_token_hint``: "If the End-User identified by the ID
            # Token is not logged in or is logged in by the request, then the
            # Authorization Server returns a positive response; otherwise, it SHOULD return
            # an error, such as login_required."  Someone else signed in: the client asked
            # about its user, so it learns no one else's code.
            if not pending.consume(db, row):
                return render.error_page(STALE_AUTHORIZATION, "invalid_request")
            return self.refuse_to(
                asked, LoginRequired("The user who signed in is not the one the hint named.")
            )
        if level_of(session.amr) < self.required_level(db, app, user_id, asked.acr_values):
            # Signed in, but not strongly enough for this user, this application or this
            # request (services/factors.py): the second factor (or its enrolment) first.
            return redirect("/login/verify?" + urlencode({"authorization": handle}))
        refused = self._refusal(ctx, app, user_id)
        if refused is not None:
            # Not this user (services/access.py): no consent is asked, no code issued;
            # the request waits for someone else to sign in, or goes back denied.
            row.login_required, row.logged_in_at = True, None
            return self.refused_page(app, asked, refused[0], refused[1], handle)
        if self.needs_consent(db, app, user_id, asked, consented=row.consented_at is not None):
            return redirect("/consent?" + urlencode({"authorization": handle}))
        if not pending.consume(db, row):
            return render.error_page(STALE_AUTHORIZATION, "invalid_request")
        return self.issue_code(db, app, asked, user_id, session, now)

    @staticmethod
    def _refusal(
        ctx: RequestContext, app: Application, user_id: int
    ) -> tuple[User | None, access.Admission] | None:
        """None when the user may sign in to ``app`` (:func:`access.admission`, the one
        decision); else who and why, the refusal audited (durable: a ``prompt=none``
        refusal rolls the request back)."""
        user = ctx.db.get(User, user_id)
        admitted = access.admission(ctx.db, app, user) if user is not None else access.NOT_ALLOWED
        if admitted.allowed:
            return None
        if user is not None:
            record = access.refusal_record(
                app,
                user,
                admitted,
                door="authorize",
                at=ctx.now,
                ip=ctx.client_ip,
                user_agent=ctx.user_agent,
            )
            ctx.audit(record, durable=True)
        return user, admitted

    def refused_page(
        self,
        app: Application,
        asked: AuthorizationRequest,
        user: User | None,
        refused: access.Admission,
        handle: str,
    ) -> Response:
        """The user's page when the application's sign-in policy refuses them (403): it
        says so, offers to sign in as someone else (the pending request, by its handle),
        and "Back to <app>", which carries ``access_denied`` (RFC 6749 §4.1.2.1) with the
        ``state`` to the validated redirect URI by the request's response mode — a link
        for ``query``, a form the user submits for ``form_post``.  No code is issued."""
        values = self._with_state(
            asked.state, {"error": AccessDenied.error, "error_description": NOT_ADMITTED}
        )
        form_post = asked.response_mode == "form_post"
        return render.page(
            "refused.html",
            403,
            application=app.name,
            username=user.username if user is not None else "",
            reason=refused.reason,
            switch="/login?" + urlencode({"authorization": handle}),
            back_link=None if form_post else with_query(asked.redirect_uri, values),
            back_action=asked.redirect_uri,
            back_fields=list(values.items()),
        )

    def deny(self, db: Session, row: PendingAuthorization) -> Response:
        """The user said no (RFC 6749 §4.1.2.1 ``access_denied``); the request is used up."""
        asked = pending.request_of(row)
        if not pending.consume(db, row):
            return render.error_page(STALE_AUTHORIZATION, "invalid_request")
        return self.refuse_to(asked, AccessDenied("The user said no."))

    @staticmethod
    def remember_consent(
        db: Session,
        user_id: int,
        application_id: int,
        scope: str,
        now: datetime,
        resources: tuple[str, ...] = (),
    ) -> None:
        """Keep the user's agreement (the union with what they allowed before), the
        resources (RFC 8707) included."""
        existing = db.get(Consent, (user_id, application_id))
        if existing is None:
            db.add(
                Consent(
                    user_id=user_id,
                    application_id=application_id,
                    scope=scope,
                    granted_at=now,
                    resource=" ".join(resources) or None,
                )
            )
        else:
            existing.scope = " ".join(sorted(set(existing.scope.split()) | set(scope.split())))
            given = set(split_resources(existing.resource)) | set(resources)
            existing.resource = " ".join(sorted(given)) or None
            existing.granted_at = now

    def issue_code(
        self,
        db: Session,
        app: Application,
        asked: AuthorizationRequest,
        user_id: int,
        session: LoginSessionInfo,
        now: datetime,
    ) -> Response:
        """RFC 6749 §4.1.2: a single-use code, kept only as its SHA-256, bound to the
        client, the ``redirect_uri``, the PKCE challenge and the ``nonce``, and to the
        login session it was issued in (its ``auth_time``, OIDC Core §2; its ``sid``, which
        the tokens made from it keep: Back-Channel Logout 1.0 §2.3); with the resources
        asked for (RFC 8707 §2.1), which the token request may only narrow.

        Those resources are checked again here: between the request and the user's
        "Allow" the API may have been disabled or have given its identifier up (RFC 8707
        §2: ``invalid_target``), and a code must not name a resource no one serves."""
        try:
            resources_asked(self.services.client_cache.current(), list(asked.resources))
        except InvalidTarget as error:
            return self.refuse_to(asked, error)
        code = secrets.token_urlsafe(32)
        db.add(
            AuthorizationCode(
                code_hash=digest(code),
                application_id=app.id,
                user_id=user_id,
                redirect_uri=asked.redirect_uri,
                scope=asked.scope,
                nonce=asked.nonce,
                code_challenge=asked.code_challenge,
                auth_time=session.created_at,
                sid=session.sid,
                amr=session.amr,
                expires_at=now + timedelta(seconds=CODE_LIFETIME),
                resource=" ".join(asked.resources) or None,
            )
        )
        return self.back(asked.redirect_uri, asked.state, {"code": code}, asked.response_mode)

    def refuse_to(self, asked: AuthorizationRequest, error: OAuthError) -> Response:
        return self.refuse_to_client(asked.redirect_uri, asked.state, error, asked.response_mode)

    def refuse_to_client(
        self, redirect_uri: str, state: str | None, error: OAuthError, mode: str = "query"
    ) -> Response:
        """An error response to a registered ``redirect_uri`` (RFC 6749 §4.1.2.1)."""
        values = {"error": error.error, "error_description": error.description}
        return self.back(redirect_uri, state, values, mode)

    def back(
        self, redirect_uri: str, state: str | None, values: dict[str, str], mode: str = "query"
    ) -> Response:
        """The authorization response (RFC 6749 §4.1.2) with ``iss`` (RFC 9207): in the
        redirect's query, or posted by the browser (Form Post Response Mode §2, where
        the parameters are the same, "encoded in the body").  ``redirect_uri`` is a
        registered one, matched exactly."""
        values = self._with_state(state, values)
        if mode == "form_post":
            return render.form_post(redirect_uri, values)
        return redirect(with_query(redirect_uri, values))

    def _with_state(self, state: str | None, values: dict[str, str]) -> dict[str, str]:
        """An authorization response's parameters: ``state`` as the client sent it (RFC
        6749 §4.1.2) and ``iss`` (RFC 9207)."""
        if state is not None:
            values["state"] = state
        values["iss"] = self.issuer()
        return values
