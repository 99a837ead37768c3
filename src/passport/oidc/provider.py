"""The OpenID Connect provider: hosted pages and protocol endpoints over Werkzeug.

Endpoints (paths as published in discovery):

* ``/.well-known/openid-configuration`` — OpenID Connect Discovery 1.0 §4
* ``/.well-known/jwks.json`` — RFC 7517
* ``/oauth2/authorize`` — RFC 6749 §4.1 (``code`` only), PKCE RFC 7636 (S256),
  OIDC Core §3.1.2 (``nonce``, ``prompt``, ``max_age``, ``login_hint``);
  errors go back to the client only once its ``redirect_uri`` is known to be
  registered (RFC 6749 §4.1.2.1), else they are shown on an error page.  A request
  that needs the user (to sign in, to allow) becomes a pending authorization kept on
  the server (:mod:`passport.oidc.pending`); the pages pass only its handle.
* ``/oauth2/token`` — ``authorization_code``, ``refresh_token``, ``client_credentials``;
  client authentication ``client_secret_basic``, ``client_secret_post``, ``none``
* ``/oauth2/userinfo`` — OIDC Core §5.3 (GET and POST, Bearer)
* ``/oauth2/introspect`` — RFC 7662; ``/oauth2/revoke`` — RFC 7009
* ``/login``, ``/consent``, ``/logout`` (RP-Initiated Logout 1.0) — hosted pages

The Passport session cookie is the single sign-on: signed in once, a user is not
asked again by the next application.  Credentials are read from POST bodies only: a
secret, code or token in a URL is refused (RFC 6749 §3.2, RFC 9700 §4.3.2 and the
``access_token`` query parameter that RFC 6750 §2.3 advises against), and so are a
username or password in a hosted page's URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import select_autoescape
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from werkzeug import Request
from werkzeug import Response

from passport.errors import ClientError
from passport.errors import ServiceUnavailable
from passport.errors import WrongLength
from passport.oidc import pending
from passport.oidc.keys import KeyConfigurationError
from passport.oidc.pending import AuthorizationRequest
from passport.oidc.tokens import Grant
from passport.oidc.tokens import Tokens
from passport.oidc.tokens import digest
from passport.services import clients
from passport.services.accounts import Caller
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import Application
from passport.storage.models import AuthorizationCode
from passport.storage.models import Consent
from passport.storage.models import OAuthToken
from passport.storage.models import PendingAuthorization
from passport.storage.models import User
from passport.web import binding
from passport.web import origins
from passport.web.context import RequestContext
from passport.web.errors import WebError
from passport.web.errors import headers_of
from passport.web.errors import status_of

if TYPE_CHECKING:
    from passport.composition import Services

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
CSS = (TEMPLATES / "passport.css").read_text()
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
PAGE_CSP = f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; frame-ancestors 'none'"
CSRF_COOKIE = "passport_csrf"
CODE_LIFETIME = 60
SCOPES = {
    "openid": "Sign you in (your user id)",
    "profile": "See your name and username",
    "email": "See your email address",
    "groups": "See which groups you are in",
    "permissions": "See your permissions in this application",
    "offline_access": "Keep access while you are away",
}
PROMPTS = frozenset({"none", "login", "consent"})
# Longest parameter value read at all; longer ones are refused, never cut or dropped.
MAX_PARAMETER_LENGTH = 8192
# The scope columns of codes and tokens (RFC 6749 §3.3 gives no limit; ours is 500).
MAX_SCOPE_LENGTH = 500
# max_age must fit the database's INTEGER (and Python's timedelta): 68 years.
MAX_AGE_LIMIT = 2**31 - 1
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
# Never accepted in a URL of the token, introspection, revocation or userinfo endpoint.
OAUTH_SECRETS = frozenset(
    {
        "client_secret",
        "client_assertion",
        "code",
        "code_verifier",
        "refresh_token",
        "token",
        "access_token",
        "password",
    }
)
# Never accepted in a URL of a hosted page (names as binding lower-cases them).
FORM_SECRETS = frozenset({"username", "password", "oldpassword", "newpassword"})
STALE_AUTHORIZATION = (
    "This sign-in request has expired, was already used, or was started in another "
    "browser. Go back to the application and sign in from there again."
)
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


class _LostRace(Exception):
    """Two refreshes of one token at once; the other one rotated it first."""

    def __init__(self, token_hash: str) -> None:
        super().__init__(token_hash)
        self.token_hash = token_hash


class OAuthError(Exception):
    """An OAuth error response (RFC 6749 5.2 / 4.1.2.1)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def _b64url_sha256(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


def _with_query(uri: str, params: dict[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _safe_next(value: str | None) -> str:
    """Only a path on Passport itself (no scheme, no host, no ``//``): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/account"
    if any(ord(c) < 32 for c in value):
        return "/account"
    return value


class Provider:
    def __init__(self, services: Services, context: Callable[..., RequestContext]) -> None:
        self.services = services
        self.settings = services.settings
        self.keys = services.keys
        self._context = context
        self._routes = {
            "/.well-known/openid-configuration": self.discovery,
            "/.well-known/jwks.json": self.jwks,
            "/oauth2/authorize": self.authorize,
            "/oauth2/token": self.token,
            "/oauth2/userinfo": self.userinfo,
            "/oauth2/introspect": self.introspect,
            "/oauth2/revoke": self.revoke,
            "/login": self.login,
            "/consent": self.consent,
            "/logout": self.logout,
            "/account": self.account,
        }

    def route(self, path: str) -> Any:
        return self._routes.get(path.rstrip("/") or "/")

    # -- helpers -------------------------------------------------------------------------
    def issuer(self) -> str:
        """The configured issuer (never the request's Host); 503 until there is one."""
        return self.services.issuer

    def tokens(self) -> Tokens:
        return self.services.tokens()

    def context(self, request: Request, *, write: bool) -> RequestContext:
        return self._context(request, write=write)

    def page(self, name: str, status: int = 200, **values: Any) -> Response:
        body = _env.get_template(name).render(css=CSS, **values)
        response = Response(body, status=status, content_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        response.headers["Cache-Control"] = "no-store"
        # not no-referrer: with it, browsers send "Origin: null" on the page's own forms
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def error_page(self, message: str, code: str = "", status: int = 400) -> Response:
        return self.page("error.html", status, message=message, code=code)

    def _csrf(self, request: Request, response_cookie: list[str]) -> str:
        token = request.cookies.get(CSRF_COOKIE)
        if not token or len(token) != 43:
            token = secrets.token_urlsafe(32)
            response_cookie.append(token)
        return token

    def _csrf_ok(self, request: Request, form: dict[str, Any]) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        given = str(form.get("csrf") or "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())

    def _form_page(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        new: list[str] = []
        csrf = self._csrf(request, new)
        response = self.page(name, status, csrf=csrf, **values)
        if new:
            response.set_cookie(
                CSRF_COOKIE,
                new[0],
                httponly=True,
                samesite="Strict",
                path="/",
                secure=self.settings.secure_cookies
                or origins.scheme(request, self.settings) == "https",
            )
        return response

    def _json(self, data: dict[str, Any], status: int = 200) -> Response:
        response = Response(json.dumps(data), status=status, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def _oauth_error(self, error: OAuthError) -> Response:
        response = self._json(
            {"error": error.error, "error_description": error.description}, error.status
        )
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="passport"'
        return response

    def _read(
        self,
        request: Request,
        *,
        query: bool,
        refuse_in_query: frozenset[str] = frozenset(),
    ) -> dict[str, str]:
        """The request's parameters: the POST body, and the query string if ``query``.

        A parameter of ``refuse_in_query`` in the URL is refused whatever the method: a
        secret in a URL ends up in logs, histories and ``Referer`` headers.  A value longer
        than :data:`MAX_PARAMETER_LENGTH` is refused, never silently dropped.
        """
        in_query = binding.parse_pairs(request.environ.get("QUERY_STRING", ""), "query string")
        leaked = sorted(name for name in in_query if name in refuse_in_query)
        if leaked:
            raise ClientError(
                f"'{leaked[0]}' must be sent in a POST body, never in the URL.",
                source=leaked[0],
            )
        values: dict[str, Any] = dict(in_query) if query else {}
        if request.method == "POST":
            if (request.content_length or 0) > self.settings.max_body_bytes:
                raise WebError("The request body is too large.", source="body", number=413)
            values.update(binding.parse_body(request))
        for name, value in values.items():
            if isinstance(value, str) and len(value) > MAX_PARAMETER_LENGTH:
                raise WrongLength(f"The parameter '{name[:64]}' is too long.", source=name[:64])
        return {k: v for k, v in values.items() if isinstance(v, str)}

    def _oauth_params(self, request: Request) -> dict[str, str]:
        """Token, introspection, revocation and userinfo: the POST body only (RFC 6749 §3.2,
        §4.1.3: parameters in the entity-body), and no credential in the URL."""
        return self._read(request, query=False, refuse_in_query=OAUTH_SECRETS)

    def _page_params(self, request: Request) -> dict[str, str]:
        """Hosted pages: a GET reads its URL, a POST its form only; never a credential in
        the URL."""
        return self._read(request, query=request.method != "POST", refuse_in_query=FORM_SECRETS)

    def _client(self, db: Session, request: Request, params: dict[str, Any]) -> Application:
        """Client authentication: secret_basic, secret_post, or none for public clients."""
        basic = clients.parse_basic(request.headers.get("Authorization"))
        now = self.services.clock()
        if basic is not None:
            app = clients.authenticate(db, basic, now)
            if app is None:
                raise OAuthError("invalid_client", "Client authentication failed.", 401)
            return app
        client_id = params.get("client_id", "")
        secret = params.get("client_secret")
        if secret:
            app = clients.authenticate(db, clients.BasicCredentials(client_id, secret), now)
            if app is None:
                raise OAuthError("invalid_client", "Client authentication failed.", 401)
            return app
        app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
        if app is None or app.confidential or not app.enabled:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        return app

    def _keys_ready(self) -> None:
        if not self.keys.configured:
            raise KeyConfigurationError(
                "OpenID Connect needs PASSPORT_KEY_ENCRYPTION_KEY (32 random bytes, base64url)"
            )

    # -- discovery -------------------------------------------------------------------------
    def discovery(self, request: Request) -> Response:
        issuer = self.issuer()
        return self._json(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth2/authorize",
                "token_endpoint": f"{issuer}/oauth2/token",
                "userinfo_endpoint": f"{issuer}/oauth2/userinfo",
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "introspection_endpoint": f"{issuer}/oauth2/introspect",
                "revocation_endpoint": f"{issuer}/oauth2/revoke",
                "end_session_endpoint": f"{issuer}/logout",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                ],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.settings.signing_alg],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "introspection_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "revocation_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": sorted(SCOPES),
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "amr",
                    "azp",
                    "name",
                    "preferred_username",
                    "email",
                    "email_verified",
                    "groups",
                    "permissions",
                ],
                "prompt_values_supported": ["none", "login", "consent"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    def jwks(self, request: Request) -> Response:
        self._keys_ready()
        response = self._json({"keys": self.keys.published(self.services.clock())})
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    # -- authorization endpoint ----------------------------------------------------------------
    def authorize(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._read(request, query=True)
        except ClientError as exc:
            return self.error_page(exc.message, status=status_of(exc))
        client_id = params.get("client_id", "")
        with self.services.db.session() as db:
            app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
            if app is None or not app.enabled or not client_id:
                return self.error_page(
                    "This application is not known to Passport.", "invalid_client"
                )
            redirect_uri = params.get("redirect_uri", "")
            if redirect_uri not in app.redirect_uris:
                return self.error_page(
                    "The application asked to return to an address it has not registered.",
                    "invalid_redirect_uri",
                )
            db.expunge(app)
        checked = self._authorization_request(app, redirect_uri, params)
        if isinstance(checked, OAuthError):
            return self._back(
                redirect_uri,
                params.get("state"),
                {"error": checked.error, "error_description": checked.description},
            )
        ctx = self.context(request, write=False)
        try:
            return self._start(request, ctx, app, checked)
        finally:
            ctx.close(commit=False)
            ctx.finish(committed=False)

    def _authorization_request(
        self, app: Application, redirect_uri: str, params: dict[str, str]
    ) -> AuthorizationRequest | OAuthError:
        """Check what the client asked for (RFC 6749 §4.1.1, OIDC Core §3.1.2.1-2).

        Only these parameters count; any other (``_consented``, ``_logged_in``…) is ignored:
        nothing a client sends can say that the user signed in or agreed.
        """
        if params.get("response_type") != "code":
            return OAuthError("unsupported_response_type", "Only response_type=code is supported.")
        raw_scope = params.get("scope", "")
        if len(raw_scope) > MAX_SCOPE_LENGTH:
            return OAuthError("invalid_scope", f"scope is longer than {MAX_SCOPE_LENGTH}.")
        scopes = raw_scope.split()
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            return OAuthError("invalid_scope", f"Unknown scope: {unknown[0][:50]}")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge and method != "S256":
            return OAuthError("invalid_request", "code_challenge_method must be S256.")
        if challenge and not (43 <= len(challenge) <= 128):
            return OAuthError("invalid_request", "code_challenge must be 43 to 128 characters.")
        if not app.confidential and not challenge:
            return OAuthError("invalid_request", "Public clients must use PKCE (S256).")
        prompts = set(params.get("prompt", "").split())
        if "none" in prompts and len(prompts) > 1:
            return OAuthError("invalid_request", "prompt=none cannot be combined.")
        max_age: int | None = None
        if "max_age" in params:
            raw = params["max_age"]
            if not _ASCII_DIGITS.fullmatch(raw) or int(raw) > MAX_AGE_LIMIT:
                return OAuthError(
                    "invalid_request", f"max_age must be a number of seconds up to {MAX_AGE_LIMIT}."
                )
            max_age = int(raw)
        for name in ("state", "nonce", "login_hint"):
            limit = pending.column_length(name)
            if len(params.get(name) or "") > limit:
                return OAuthError("invalid_request", f"{name} is longer than {limit} characters.")
        return AuthorizationRequest(
            application_id=app.id,
            redirect_uri=redirect_uri,
            scope=" ".join(dict.fromkeys(scopes)),
            state=params.get("state"),
            nonce=params.get("nonce") or None,
            code_challenge=challenge or None,
            prompts=frozenset(prompts & PROMPTS),
            max_age=max_age,
            login_hint=params.get("login_hint") or None,
        )

    def _start(
        self, request: Request, ctx: RequestContext, app: Application, asked: AuthorizationRequest
    ) -> Response:
        """Answer at once when nothing is needed from the user (or ``prompt=none``); else keep
        the request as a pending authorization and send the browser to sign in or to allow."""
        now = self.services.clock()
        session, identity = ctx.login_session, ctx.identity
        if session is None or identity is None:
            login_required = True
        else:
            # OIDC Core §3.1.2.1: prompt=login, and max_age (max_age=0 is prompt=login).
            age = now - session.created_at
            login_required = "login" in asked.prompts or (
                asked.max_age is not None
                and (asked.max_age == 0 or age > timedelta(seconds=asked.max_age))
            )
        with self.services.db.session(write=True) as db, db.begin():
            consent_required = identity is None or self._needs_consent(
                db, app, identity.id, asked, consented=False
            )
            if "none" in asked.prompts:  # OIDC Core §3.1.2.6
                if login_required:
                    return self._refuse(asked, "login_required", "The user is not signed in.")
                if consent_required:
                    return self._refuse(
                        asked, "consent_required", "The user has not allowed this application."
                    )
            if not login_required and not consent_required:
                assert session is not None and identity is not None
                return self._issue_code(db, app, asked, identity.id, session.created_at, now)
            browser = request.cookies.get(pending.BROWSER_COOKIE)
            fresh_browser = not pending.valid_browser_binding(browser)
            if browser is None or fresh_browser:
                browser = pending.new_browser_binding()
            handle = pending.start(
                db,
                asked,
                browser=browser,
                session_hash=None if login_required or session is None else session.id_hash,
                login_required=login_required,
                now=now,
            )
        response = self._redirect(
            ("/login?" if login_required else "/consent?") + urlencode({"authorization": handle})
        )
        if fresh_browser:
            response.set_cookie(
                pending.BROWSER_COOKIE,
                browser,
                httponly=True,
                samesite="Lax",  # sent on the client's top-level redirect to us
                path="/",
                secure=self._secure(request),
            )
        return response

    def _needs_consent(
        self,
        db: Session,
        app: Application,
        user_id: int,
        asked: AuthorizationRequest,
        *,
        consented: bool,
    ) -> bool:
        if consented or (app.first_party and self.settings.consent_skip_first_party):
            return False
        if "consent" in asked.prompts:
            return True
        given = db.get(Consent, (user_id, app.id))
        return given is None or not set(asked.scope.split()) <= set(given.scope.split())

    def _advance(
        self,
        db: Session,
        row: PendingAuthorization,
        handle: str,
        session: LoginSessionInfo | None,
        user_id: int | None,
    ) -> Response:
        """The next step of a pending authorization: sign in, allow, or the code."""
        now = self.services.clock()
        if session is None or user_id is None or (row.login_required and not row.logged_in_at):
            return self._redirect("/login?" + urlencode({"authorization": handle}))
        if row.session_hash is None or not hmac.compare_digest(row.session_hash, session.id_hash):
            return self.error_page(STALE_AUTHORIZATION, "invalid_request")
        app = db.get(Application, row.application_id)
        asked = pending.request_of(row)
        if app is None or not app.enabled:
            pending.consume(db, row)
            return self.error_page("This application is not known to Passport.", "invalid_client")
        if self._needs_consent(db, app, user_id, asked, consented=row.consented_at is not None):
            return self._redirect("/consent?" + urlencode({"authorization": handle}))
        if not pending.consume(db, row):
            return self.error_page(STALE_AUTHORIZATION, "invalid_request")
        return self._issue_code(db, app, asked, user_id, session.created_at, now)

    def _issue_code(
        self,
        db: Session,
        app: Application,
        asked: AuthorizationRequest,
        user_id: int,
        auth_time: datetime,
        now: datetime,
    ) -> Response:
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
                auth_time=auth_time,
                expires_at=now + timedelta(seconds=CODE_LIFETIME),
            )
        )
        return self._back(asked.redirect_uri, asked.state, {"code": code})

    def _refuse(self, asked: AuthorizationRequest, error: str, description: str) -> Response:
        values = {"error": error, "error_description": description}
        return self._back(asked.redirect_uri, asked.state, values)

    def _back(self, redirect_uri: str, state: str | None, values: dict[str, str]) -> Response:
        """The authorization response (RFC 6749 §4.1.2) with ``iss`` (RFC 9207)."""
        if state is not None:
            values["state"] = state
        values["iss"] = self.issuer()
        return self._redirect(_with_query(redirect_uri, values))

    @staticmethod
    def _redirect(location: str) -> Response:
        response = Response(status=302)
        response.headers["Location"] = location
        return response

    def _secure(self, request: Request) -> bool:
        return self.settings.secure_cookies or origins.scheme(request, self.settings) == "https"

    def _pending(
        self, db: Session, request: Request, handle: str | None
    ) -> PendingAuthorization | None:
        browser = request.cookies.get(pending.BROWSER_COOKIE)
        return pending.find(db, handle, browser, self.services.clock())

    # -- hosted pages ----------------------------------------------------------------------
    def login(self, request: Request) -> Response:
        try:
            params = self._page_params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=status_of(exc))
        handle = params.get("authorization")
        values: dict[str, Any] = {
            "next": _safe_next(params.get("next")),
            "application": "",
            "login_hint": "",
        }
        if handle is not None:
            with self.services.db.session() as db:
                row = self._pending(db, request, handle)
                app = db.get(Application, row.application_id) if row else None
                if row is None or app is None or not app.enabled:
                    return self.error_page(STALE_AUTHORIZATION, "invalid_request")
                # Only what Passport knows: the registered name, the client's hint.
                values = {
                    "authorization": handle,
                    "application": app.name,
                    "login_hint": row.login_hint or "",
                }
        if request.method != "POST":
            return self._form_page(request, "login.html", **values)
        if not self._csrf_ok(request, params) or not self._same_origin(request):
            return self._form_page(
                request, "login.html", 403, error="The form expired; please try again.", **values
            )
        ctx = self.context(request, write=True)
        committed = False
        try:
            caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
            previous = ctx.login_session
            accounts = ctx.accounts()
            result = accounts.login(
                caller,
                params.get("username"),
                params.get("password"),
                remember=params.get("remember") == "true",
            )
            if previous is not None:
                self.services.sessions.remove(previous.id_hash, ctx.db)
            ctx.start_session(result.session, result.token, result.user)
            response = self._redirect(values["next"]) if handle is None else None
            if handle is not None:
                row = self._pending(ctx.db, request, handle)
                if row is None:
                    response = self.error_page(STALE_AUTHORIZATION, "invalid_request")
                else:
                    # The fresh login that prompt=login / max_age asked for, in this session.
                    row.logged_in_at = result.session.created_at
                    row.session_hash = result.session.id_hash
                    response = self._advance(ctx.db, row, handle, result.session, result.user.id)
            ctx.close(commit=True)
            committed = True
        except ClientError as exc:
            ctx.close(commit=False)
            response = self._form_page(
                request, "login.html", status_of(exc), error=exc.message, **values
            )
            for name, value in headers_of(exc).items():
                response.headers[name] = value
            return response
        except ServiceUnavailable as exc:
            # Every hashing slot busy (passwords.BUSY_MESSAGE): the person gets the form back
            # with the reason, not the API's JSON; RFC 9110 §10.2.3 Retry-After.
            ctx.close(commit=False)
            response = self._form_page(request, "login.html", 503, error=exc.message, **values)
            response.headers["Retry-After"] = "5"
            return response
        finally:
            if not committed:
                ctx.close(commit=False)
            ctx.finish(committed=committed)
        assert response is not None
        ctx.apply_cookies(response)
        return response

    def _same_origin(self, request: Request) -> bool:
        origin = origins.request_origin(request)
        return origin is None or origin == origins.own_origin(request, self.settings)

    def consent(self, request: Request) -> Response:
        """Allow or deny a pending authorization (its handle is the only parameter that
        names what is decided; the rest is on the server)."""
        try:
            params = self._page_params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=status_of(exc))
        handle = params.get("authorization")
        if request.method == "POST" and (
            not self._csrf_ok(request, params) or not self._same_origin(request)
        ):
            return self.error_page("The form expired; please try again.", status=403)
        ctx = self.context(request, write=False)
        try:
            session, identity = ctx.login_session, ctx.identity
            with self.services.db.session(write=request.method == "POST") as db, db.begin():
                row = self._pending(db, request, handle)
                if row is None or handle is None:
                    return self.error_page(STALE_AUTHORIZATION, "invalid_request")
                if (
                    session is None
                    or identity is None
                    or row.session_hash is None
                    or not hmac.compare_digest(row.session_hash, session.id_hash)
                    or (row.login_required and not row.logged_in_at)
                ):
                    # Not (or no longer) signed in here: the same check as every other step.
                    user_id = identity.id if identity is not None else None
                    return self._advance(db, row, handle, session, user_id)
                asked = pending.request_of(row)
                app = db.get(Application, row.application_id)
                if app is None or not app.enabled:
                    return self.error_page(
                        "This application is not known to Passport.", "invalid_client"
                    )
                if request.method != "POST":
                    return self._form_page(
                        request,
                        "consent.html",
                        application=app.name,
                        username=identity.username,
                        scopes=[SCOPES[s] for s in asked.scope.split() if s in SCOPES],
                        authorization=handle,
                    )
                if params.get("decision") != "allow":
                    if not pending.consume(db, row):
                        return self.error_page(STALE_AUTHORIZATION, "invalid_request")
                    return self._refuse(asked, "access_denied", "The user said no.")
                self._remember_consent(db, identity.id, app.id, asked.scope, ctx.now)
                row.consented_at = ctx.now
                return self._advance(db, row, handle, session, identity.id)
        finally:
            ctx.close(commit=False)
            ctx.finish(committed=False)

    @staticmethod
    def _remember_consent(
        db: Session, user_id: int, application_id: int, scope: str, now: datetime
    ) -> None:
        existing = db.get(Consent, (user_id, application_id))
        if existing is None:
            db.add(
                Consent(user_id=user_id, application_id=application_id, scope=scope, granted_at=now)
            )
        else:
            existing.scope = " ".join(sorted(set(existing.scope.split()) | set(scope.split())))
            existing.granted_at = now

    def logout(self, request: Request) -> Response:
        """RP-Initiated Logout 1.0 §2-§3: ask the user, end the session, and return to the
        application only at a URI it registered, with its ``state``."""
        try:
            params = self._page_params(request)
            redirect_uri, client_id = self._logout_target(params)
        except ClientError as exc:
            return self.error_page(exc.message, "invalid_request", status=status_of(exc))
        state = params.get("state") or ""
        ctx = self.context(request, write=True)
        committed = False
        try:
            identity = ctx.identity
            if request.method != "POST" and identity is not None:
                return self._form_page(
                    request,
                    "logout.html",
                    username=identity.username,
                    redirect_uri=redirect_uri,
                    client_id=client_id,
                    state=state,
                )
            if request.method == "POST":
                if not self._csrf_ok(request, params) or not self._same_origin(request):
                    return self.error_page("The form expired; please try again.", status=403)
                session = ctx.login_session
                if session is not None:
                    user = ctx.user
                    ctx.accounts().logout(
                        Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now),
                        user,
                        session,
                    )
                    if user is not None:
                        self.services.notify_logout(ctx.db, user)
                ctx.end_session()
            ctx.close(commit=True)
            committed = True
        finally:
            if not committed:
                ctx.close(commit=False)
            ctx.finish(committed=committed)
        # Signed out now, or already: back to the application when it said where (§3).
        if redirect_uri:
            response = self._redirect(
                _with_query(redirect_uri, {"state": state}) if state else redirect_uri
            )
        else:
            response = self.page("logout.html", username="")
        ctx.apply_cookies(response)
        return response

    def _logout_target(self, params: dict[str, str]) -> tuple[str, str]:
        """``(post_logout_redirect_uri, client_id)`` to return to, or empty strings.

        RP-Initiated Logout 1.0 §2: ``id_token_hint`` must be an ID token we issued (an
        expired one is fine); its ``aud`` names the client when ``client_id`` does not, and
        must equal it when both are given.  The URI must be registered by that client,
        which must be enabled; with no client named there is nowhere to return to.
        """
        hint = params.get("id_token_hint")
        audience = None
        if hint:
            self._keys_ready()
            claims = self.tokens().id_token_hint_claims(hint)
            if claims is None:
                raise ClientError("id_token_hint is not an ID token that Passport issued.")
            audience = str(claims["aud"])
        client_id = params.get("client_id") or ""
        if client_id and audience and not hmac.compare_digest(client_id, audience):
            raise ClientError("id_token_hint was not issued to this client_id.")
        client_id = client_id or audience or ""
        uri = params.get("post_logout_redirect_uri") or ""
        if not uri or not client_id:
            return "", ""
        with self.services.db.session() as db:
            app = db.scalars(select(Application).where(Application.client_id == client_id)).first()
            if app is None or not app.enabled or uri not in app.redirect_uris:
                raise ClientError("The application asked to return to an unregistered address.")
        return uri, client_id

    def account(self, request: Request) -> Response:
        """The user's own page: profile, password change, sessions with "sign out"."""
        try:
            params = self._page_params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=status_of(exc))
        ctx = self.context(request, write=request.method == "POST")
        committed = False
        notice, error, status = "", "", 200
        try:
            # Plain values, not an entity of this request's transaction: a password change
            # counts its attempt before the transaction takes SQLite's write lock.
            view = ctx.identity
            current = ctx.login_session
            if view is None or current is None:
                return self._redirect("/login?" + urlencode({"next": "/account"}))
            if request.method == "POST":
                if not self._csrf_ok(request, params) or not self._same_origin(request):
                    return self.error_page("The form expired; please try again.", status=403)
                caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
                try:
                    if params.get("action") == "password":
                        user, token, info = ctx.accounts().change_password(
                            caller,
                            view.id,
                            current,
                            params.get("oldpassword"),
                            params.get("newpassword"),
                        )
                        ctx.start_session(info, token, user)
                        notice = "Your password was changed; your other sessions have ended."
                    elif params.get("action") == "end":
                        wanted = str(params.get("id", ""))
                        for item in self.services.sessions.list_for_user(view.id, ctx.now):
                            if item.id_hash[:16] == wanted:
                                self.services.sessions.remove(item.id_hash, ctx.db)
                                if item.id_hash == current.id_hash:
                                    ctx.end_session()
                                notice = "That session has ended."
                    ctx.close(commit=True)
                    committed = True
                except ClientError as exc:
                    ctx.close(commit=False)
                    error, status = exc.message, status_of(exc)
                if ctx.login_session is None:
                    response = self._redirect("/login?" + urlencode({"next": "/account"}))
                    ctx.apply_cookies(response)
                    return response
            mine = ctx.login_session
            sessions = [
                s.to_public(mine.id_hash if mine else None)
                for s in self.services.sessions.list_for_user(view.id, ctx.now)
            ]
            response = self._form_page(
                request,
                "account.html",
                status,
                user=view,
                sessions=sessions,
                notice=notice,
                error=error,
                min_length=self.settings.password_min_length,
            )
            ctx.apply_cookies(response)
            return response
        finally:
            if not committed:
                ctx.close(commit=False)
            ctx.finish(committed=committed)

    # -- token endpoint ----------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        self._keys_ready()
        if request.method != "POST":
            return self._oauth_error(OAuthError("invalid_request", "Use POST.", 405))
        # The signing key is loaded (or made) before the write transaction: on SQLite a
        # second writer inside it would wait for our own lock.
        self.keys.signing_key(self.services.clock())
        try:
            params = self._oauth_params(request)
            with self.services.db.session(write=True) as db, db.begin():
                app = self._client(db, request, params)
                grant_type = params.get("grant_type")
                if grant_type == "authorization_code":
                    body = self._code_grant(db, request, app, params)
                elif grant_type == "refresh_token":
                    body = self._refresh_grant(db, request, app, params)
                elif grant_type == "client_credentials":
                    body = self._client_credentials(db, request, app, params)
                else:
                    raise OAuthError("unsupported_grant_type", "Unsupported grant_type.")
            return self._json(body)
        except _LostRace as race:
            with self.services.db.session() as db:
                row = db.scalars(
                    select(OAuthToken).where(OAuthToken.token_hash == race.token_hash)
                ).first()
                if row is not None and row.successor:
                    return self._json(self.tokens().unseal(row.successor, race.token_hash))
            return self._oauth_error(OAuthError("invalid_grant", "The refresh token was used."))
        except OAuthError as error:
            if error.error == "invalid_grant" and getattr(error, "revoke", None):
                family, code_hash = error.revoke  # type: ignore[attr-defined]
                self._revoke_after_reuse(family, code_hash)
            return self._oauth_error(error)
        except ClientError as exc:
            return self._oauth_error(OAuthError("invalid_request", exc.message, status_of(exc)))

    def _revoke_after_reuse(self, family: str | None, code_hash: str | None) -> None:
        now = self.services.clock()
        with self.services.db.session(write=True) as db, db.begin():
            condition = (
                (OAuthToken.family == family) if family else (OAuthToken.code_hash == code_hash)
            )
            db.execute(
                update(OAuthToken)
                .where(condition, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    def _code_grant(
        self, db: Session, request: Request, app: Application, params: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.services.clock()
        code_hash = digest(params.get("code", ""))
        code = db.get(AuthorizationCode, code_hash, with_for_update=True)
        if code is None or code.application_id != app.id:
            raise OAuthError("invalid_grant", "The code is not valid.")
        if code.used_at is not None:
            error = OAuthError("invalid_grant", "The code was already used.")
            error.revoke = (None, code_hash)  # type: ignore[attr-defined]
            raise error
        if code.expires_at <= now:
            raise OAuthError("invalid_grant", "The code has expired.")
        if params.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization.")
        if code.code_challenge:
            verifier = params.get("code_verifier", "")
            if not (43 <= len(verifier) <= 128) or not hmac.compare_digest(
                _b64url_sha256(verifier), code.code_challenge
            ):
                raise OAuthError("invalid_grant", "code_verifier does not match.")
        elif params.get("code_verifier"):
            raise OAuthError("invalid_grant", "No code_challenge was given for this code.")
        code.used_at = now
        user = db.get(User, code.user_id)
        if user is None or user.disabled:
            raise OAuthError("invalid_grant", "The user can no longer sign in.")
        scopes = code.scope.split()
        grant = Grant(
            application=app,
            scope=code.scope,
            user=user,
            nonce=code.nonce,
            auth_time=code.auth_time,
            code_hash=code_hash,
            refresh=True,
            id_token="openid" in scopes,
        )
        return self.tokens().issue(db, grant, now)

    def _refresh_grant(
        self, db: Session, request: Request, app: Application, params: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.services.clock()
        tokens = self.tokens()
        token_hash = digest(params.get("refresh_token", ""))
        row = db.scalars(
            select(OAuthToken).where(
                OAuthToken.token_hash == token_hash, OAuthToken.kind == "refresh"
            )
        ).first()
        if (
            row is None
            or row.application_id != app.id
            or row.revoked_at is not None
            or row.expires_at <= now
        ):
            raise OAuthError("invalid_grant", "The refresh token is not valid.")
        if row.rotated_at is not None:
            grace = timedelta(seconds=self.settings.refresh_grace_seconds)
            if row.successor and now - row.rotated_at <= grace:
                return tokens.unseal(row.successor, token_hash)
            error = OAuthError("invalid_grant", "The refresh token was already used.")
            error.revoke = (row.family, None)  # type: ignore[attr-defined]
            raise error
        user = db.get(User, row.user_id) if row.user_id else None
        if user is None or user.disabled or not app.enabled:
            raise OAuthError("invalid_grant", "The user can no longer sign in.")
        scope = row.scope
        wanted = params.get("scope")
        if wanted:
            if not set(wanted.split()) <= set(scope.split()):
                raise OAuthError("invalid_scope", "A refresh cannot widen the scope.")
            scope = " ".join(wanted.split())
        grant = Grant(
            application=app,
            scope=scope,
            user=user,
            auth_time=row.auth_time,
            family=row.family,
            refresh=True,
            id_token="openid" in scope.split(),
        )
        body = tokens.issue(db, grant, now)
        claimed = db.execute(
            update(OAuthToken)
            .where(OAuthToken.id == row.id, OAuthToken.rotated_at.is_(None))
            .values(rotated_at=now, successor=tokens.seal(body, token_hash))
        )
        if not getattr(claimed, "rowcount", 0):
            raise _LostRace(token_hash)  # a concurrent refresh won: answer as it did
        return body

    def _client_credentials(
        self, db: Session, request: Request, app: Application, params: dict[str, Any]
    ) -> dict[str, Any]:
        """RFC 6749 §4.4: only scopes the application was registered for (RFC 7591 §2
        ``scope``); without ``scope``, all of them (the "pre-defined default" of §3.3)."""
        if not app.confidential:
            raise OAuthError("unauthorized_client", "Public clients cannot use this grant.")
        registered = list(dict.fromkeys(app.scopes))
        requested = params.get("scope")
        if requested is None or not requested.strip():
            wanted = registered
        else:
            if len(requested) > MAX_SCOPE_LENGTH:
                raise OAuthError("invalid_scope", f"scope is longer than {MAX_SCOPE_LENGTH}.")
            wanted = list(dict.fromkeys(requested.split()))
            for item in wanted:
                if not _SCOPE_TOKEN.fullmatch(item) or item not in registered or item in SCOPES:
                    raise OAuthError(
                        "invalid_scope",
                        f"The scope '{item[:50]}' is not registered for this client.",
                    )
        scope = " ".join(s for s in wanted if s not in SCOPES)
        if len(scope) > MAX_SCOPE_LENGTH:
            raise OAuthError("invalid_scope", f"scope is longer than {MAX_SCOPE_LENGTH}.")
        grant = Grant(application=app, scope=scope)
        return self.tokens().issue(db, grant, self.services.clock())

    # -- resource endpoints ------------------------------------------------------------------
    def _bearer(self, request: Request, params: dict[str, Any]) -> str:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip()
        return str(params.get("access_token", "")) if request.method == "POST" else ""

    def userinfo(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._oauth_params(request)
        except ClientError as exc:
            return self._oauth_error(OAuthError("invalid_request", exc.message, status_of(exc)))
        token = self._bearer(request, params)
        now = self.services.clock()
        with self.services.db.session() as db:
            tokens = self.tokens()
            live = tokens.live(db, token, now)
            if (
                live is None
                or live.user is None
                or live.row.kind != "access"
                or "openid" not in live.row.scope.split()
            ):
                response = self._json({"error": "invalid_token"}, 401)
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            return self._json(tokens.user_claims(db, live.user, live.application, live.row.scope))

    def introspect(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._oauth_params(request)
            with self.services.db.session() as db:
                app = self._client(db, request, params)
                if app.client_id is None or not app.confidential:
                    raise OAuthError("invalid_client", "Client authentication failed.", 401)
                live = self.tokens().live(db, params.get("token", ""), self.services.clock())
                if live is None or live.application.id != app.id:
                    return self._json({"active": False})
                row, user = live.row, live.user
                return self._json(
                    {
                        "active": True,
                        "scope": row.scope,
                        "client_id": app.client_id,
                        "token_type": "refresh_token" if row.kind == "refresh" else "Bearer",
                        "exp": int(row.expires_at.timestamp()),
                        "iat": int(row.created_at.timestamp()),
                        "sub": f"user-{row.user_id}" if row.user_id else app.client_id,
                        "aud": app.client_id,
                        "iss": self.issuer(),
                        **({"username": user.username} if user else {}),
                    }
                )
        except OAuthError as error:
            return self._oauth_error(error)
        except ClientError as exc:
            return self._oauth_error(OAuthError("invalid_request", exc.message, status_of(exc)))

    def revoke(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._oauth_params(request)
            with self.services.db.session(write=True) as db, db.begin():
                app = self._client(db, request, params)
                row = db.scalars(
                    select(OAuthToken).where(
                        OAuthToken.token_hash == digest(params.get("token", ""))
                    )
                ).first()
                if row is not None and row.application_id == app.id:
                    now = self.services.clock()
                    if row.kind == "refresh":
                        self.tokens().revoke_family(db, row.family, now)
                    else:
                        row.revoked_at = now
            return Response(status=200)
        except OAuthError as error:
            return self._oauth_error(error)
        except ClientError as exc:
            return self._oauth_error(OAuthError("invalid_request", exc.message, status_of(exc)))
