"""The OpenID Connect provider: hosted pages and protocol endpoints over Werkzeug.

Endpoints (paths as published in discovery):

* ``/.well-known/openid-configuration`` — OpenID Connect Discovery 1.0 §4
* ``/.well-known/jwks.json`` — RFC 7517
* ``/oauth2/authorize`` — RFC 6749 §4.1 (``code`` only), PKCE RFC 7636 (S256),
  OIDC Core §3.1.2 (``nonce``, ``prompt``, ``max_age``, ``login_hint``);
  errors go back to the client only once its ``redirect_uri`` is known to be
  registered (RFC 6749 §4.1.2.1), else they are shown on an error page
* ``/oauth2/token`` — ``authorization_code``, ``refresh_token``, ``client_credentials``;
  client authentication ``client_secret_basic``, ``client_secret_post``, ``none``
* ``/oauth2/userinfo`` — OIDC Core §5.3 (GET and POST, Bearer)
* ``/oauth2/introspect`` — RFC 7662; ``/oauth2/revoke`` — RFC 7009
* ``/login``, ``/consent``, ``/logout`` (RP-Initiated Logout 1.0) — hosted pages

The Passport session cookie is the single sign-on: signed in once, a user is not
asked again by the next application.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from pathlib import Path
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
from passport.oidc.keys import KeyConfigurationError
from passport.oidc.keys import KeyRing
from passport.oidc.tokens import Grant
from passport.oidc.tokens import Tokens
from passport.oidc.tokens import digest
from passport.services import clients
from passport.services.accounts import Caller
from passport.services.identity import identity_of
from passport.storage.models import Application
from passport.storage.models import AuthorizationCode
from passport.storage.models import Consent
from passport.storage.models import OAuthToken
from passport.storage.models import User
from passport.web import binding
from passport.web import origins
from passport.web.context import RequestContext

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
    def __init__(self, app: Any) -> None:
        self.app = app
        self.settings = app.settings
        self.keys = KeyRing(app.db, app.settings)
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
        issuer: str | None = self.settings.issuer
        if not issuer:
            raise KeyConfigurationError(
                "OpenID Connect needs PASSPORT_PUBLIC_URL (the issuer) outside SQLite"
            )
        return issuer

    def tokens(self) -> Tokens:
        return Tokens(self.settings, self.keys, self.issuer())

    def context(self, request: Request, *, write: bool) -> RequestContext:
        return RequestContext(
            self.app,
            request,
            client_ip=origins.client_ip(request, self.settings),
            write=write,
            sessions_allowed=True,
        )

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

    def _params(self, request: Request) -> dict[str, Any]:
        values = binding.parse_pairs(request.environ.get("QUERY_STRING", ""), "query string")
        if request.method == "POST":
            if (request.content_length or 0) > self.settings.max_body_bytes:
                raise ClientError("The request body is too large.", source="body", number=413)
            for key, value in binding.parse_body(request).items():
                values[key] = value
        return {k: v for k, v in values.items() if isinstance(v, str) and len(v) <= 4096}

    def _client(self, db: Session, request: Request, params: dict[str, Any]) -> Application:
        """Client authentication: secret_basic, secret_post, or none for public clients."""
        basic = clients.parse_basic(request.headers.get("Authorization"))
        now = self.app.clock()
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
        response = self._json({"keys": self.keys.published(self.app.clock())})
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    # -- authorization endpoint ----------------------------------------------------------------
    def authorize(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._params(request)
        except ClientError as exc:
            return self.error_page(exc.message)
        ctx = self.context(request, write=False)
        try:
            with self.app.db.session() as db:
                app = db.scalars(
                    select(Application).where(Application.client_id == params.get("client_id", ""))
                ).first()
                if app is None or not app.enabled or not params.get("client_id"):
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
            return self._authorize(request, ctx, app, redirect_uri, params)
        finally:
            ctx.close(commit=False)

    def _authorize(
        self,
        request: Request,
        ctx: RequestContext,
        app: Application,
        redirect_uri: str,
        params: dict[str, Any],
    ) -> Response:
        state = params.get("state")
        issuer = self.issuer()

        def back(values: dict[str, str]) -> Response:
            if state is not None:
                values["state"] = state
            values["iss"] = issuer
            response = Response(status=302)
            response.headers["Location"] = _with_query(redirect_uri, values)
            return response

        def fail(error: str, description: str) -> Response:
            return back({"error": error, "error_description": description})

        if params.get("response_type") != "code":
            return fail("unsupported_response_type", "Only response_type=code is supported.")
        scopes = params.get("scope", "").split()
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            return fail("invalid_scope", f"Unknown scope: {unknown[0][:50]}")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge and method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256.")
        if challenge and not (43 <= len(challenge) <= 128):
            return fail("invalid_request", "code_challenge must be 43 to 128 characters.")
        if not app.confidential and not challenge:
            return fail("invalid_request", "Public clients must use PKCE (S256).")
        prompts = set(params.get("prompt", "").split())
        if "none" in prompts and len(prompts) > 1:
            return fail("invalid_request", "prompt=none cannot be combined.")
        max_age = params.get("max_age")
        if max_age is not None and not max_age.isdigit():
            return fail("invalid_request", "max_age must be a number of seconds.")

        now = self.app.clock()
        session = ctx.login_session
        identity = ctx.identity
        fresh = session is not None and identity is not None
        if fresh and max_age is not None and session is not None:
            fresh = now - session.created_at <= timedelta(seconds=int(max_age))
        if "login" in prompts and fresh and params.get("_logged_in") != "1":
            fresh = False
        if not fresh:
            if "none" in prompts:
                return fail("login_required", "The user is not signed in.")
            return self._to_login(request, params, app)
        assert session is not None and identity is not None

        scope = " ".join(dict.fromkeys(scopes))
        skip = app.first_party and self.settings.consent_skip_first_party
        with self.app.db.session() as db:
            consent = db.get(Consent, (identity.id, app.id))
            covered = consent is not None and set(scopes) <= set(consent.scope.split())
        if not skip and (not covered or "consent" in prompts) and params.get("_consented") != "1":
            if "none" in prompts:
                return fail("consent_required", "The user has not allowed this application.")
            return self._redirect("/consent?" + urlencode(self._without(params, "_consented")))

        code = secrets.token_urlsafe(32)
        with self.app.db.session(write=True) as db, db.begin():
            db.add(
                AuthorizationCode(
                    code_hash=digest(code),
                    application_id=app.id,
                    user_id=identity.id,
                    redirect_uri=redirect_uri,
                    scope=scope,
                    nonce=params.get("nonce"),
                    code_challenge=challenge,
                    auth_time=session.created_at,
                    expires_at=now + timedelta(seconds=CODE_LIFETIME),
                )
            )
        return back({"code": code})

    @staticmethod
    def _without(params: dict[str, Any], *names: str) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in names}

    @staticmethod
    def _redirect(location: str) -> Response:
        response = Response(status=302)
        response.headers["Location"] = location
        return response

    def _to_login(self, request: Request, params: dict[str, Any], app: Application) -> Response:
        back = "/oauth2/authorize?" + urlencode(
            {**self._without(params, "_logged_in"), "_logged_in": "1"}
        )
        query = {"next": back, "application": app.name}
        if params.get("login_hint"):
            query["login_hint"] = params["login_hint"]
        return self._redirect("/login?" + urlencode(query))

    # -- hosted pages ----------------------------------------------------------------------
    def login(self, request: Request) -> Response:
        try:
            params = self._params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=exc.status)
        values = {
            "next": _safe_next(params.get("next")),
            "application": params.get("application", "")[:100],
            "login_hint": params.get("login_hint", "")[:254],
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
                self.app.sessions.remove(previous.id_hash, ctx.db)
            ctx.start_session(result.session, result.token, result.user)
            ctx.close(commit=True)
            committed = True
        except ClientError as exc:
            ctx.close(commit=False)
            response = self._form_page(
                request, "login.html", exc.status, error=exc.message, **values
            )
            for name, value in exc.headers.items():
                response.headers[name] = value
            return response
        finally:
            ctx.finish(committed=committed)
        response = self._redirect(values["next"])
        ctx.apply_cookies(response)
        return response

    def _same_origin(self, request: Request) -> bool:
        origin = origins.request_origin(request)
        return origin is None or origin == origins.own_origin(request, self.settings)

    def consent(self, request: Request) -> Response:
        try:
            params = self._params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=exc.status)
        ctx = self.context(request, write=False)
        try:
            identity = ctx.identity
            if identity is None:
                return self._redirect("/login?" + urlencode({"next": request.full_path}))
            if request.method == "POST":
                target = params.get("next", "")
                if not self._csrf_ok(request, params) or not self._same_origin(request):
                    return self.error_page("The form expired; please try again.", status=403)
                if not target.startswith("/oauth2/authorize?"):
                    return self.error_page("Nothing to allow here.")
                query = binding.parse_pairs(target.split("?", 1)[1], "query string")
            else:
                query = params
            with self.app.db.session() as db:
                app = db.scalars(
                    select(Application).where(Application.client_id == query.get("client_id", ""))
                ).first()
                if app is None or query.get("redirect_uri") not in app.redirect_uris:
                    return self.error_page(
                        "This application is not known to Passport.", "invalid_client"
                    )
                db.expunge(app)
            scopes = [s for s in query.get("scope", "").split() if s in SCOPES]
            if request.method != "POST":
                next_url = "/oauth2/authorize?" + urlencode(query)
                return self._form_page(
                    request,
                    "consent.html",
                    application=app.name,
                    username=identity.username,
                    scopes=[SCOPES[s] for s in scopes],
                    next=next_url,
                )
            if params.get("decision") != "allow":
                values = {
                    "error": "access_denied",
                    "error_description": "The user said no.",
                    "iss": self.issuer(),
                }
                if "state" in query:
                    values["state"] = query["state"]
                return self._redirect(_with_query(query["redirect_uri"], values))
            with self.app.db.session(write=True) as db, db.begin():
                existing = db.get(Consent, (identity.id, app.id))
                if existing is None:
                    db.add(
                        Consent(
                            user_id=identity.id,
                            application_id=app.id,
                            scope=" ".join(scopes),
                            granted_at=ctx.now,
                        )
                    )
                else:
                    existing.scope = " ".join(sorted(set(existing.scope.split()) | set(scopes)))
                    existing.granted_at = ctx.now
            return self._redirect("/oauth2/authorize?" + urlencode({**query, "_consented": "1"}))
        finally:
            ctx.close(commit=False)

    def logout(self, request: Request) -> Response:
        try:
            params = self._params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=exc.status)
        redirect_uri = params.get("post_logout_redirect_uri", "")
        if redirect_uri and not self._logout_target_ok(redirect_uri, params):
            return self.error_page(
                "The application asked to return to an unregistered address.", "invalid_request"
            )
        ctx = self.context(request, write=True)
        committed = False
        try:
            identity = ctx.identity
            if request.method != "POST":
                return self._form_page(
                    request,
                    "logout.html",
                    username=identity.username if identity else "",
                    redirect_uri=redirect_uri,
                    state=params.get("state", ""),
                )
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
                    self.app.notify_logout(ctx.db, user)
            ctx.end_session()
            ctx.close(commit=True)
            committed = True
        finally:
            if not committed:
                ctx.close(commit=False)
            ctx.finish(committed=committed)
        if redirect_uri:
            target = (
                _with_query(redirect_uri, {"state": params["state"]})
                if params.get("state")
                else redirect_uri
            )
            response = self._redirect(target)
        else:
            response = self.page("logout.html", username="")
        ctx.apply_cookies(response)
        return response

    def account(self, request: Request) -> Response:
        """The user's own page: profile, password change, sessions with "sign out"."""
        try:
            params = self._params(request)
        except ClientError as exc:
            return self.error_page(exc.message, status=exc.status)
        ctx = self.context(request, write=request.method == "POST")
        committed = False
        notice, error, status = "", "", 200
        try:
            user = ctx.user
            current = ctx.login_session
            if user is None or current is None:
                return self._redirect("/login?" + urlencode({"next": "/account"}))
            view = identity_of(user)  # plain values: the entity goes with the transaction
            if request.method == "POST":
                if not self._csrf_ok(request, params) or not self._same_origin(request):
                    return self.error_page("The form expired; please try again.", status=403)
                caller = Caller(ip=ctx.client_ip, user_agent=ctx.user_agent, now=ctx.now)
                try:
                    if params.get("action") == "password":
                        token, info = ctx.accounts().change_password(
                            caller,
                            user,
                            current,
                            params.get("oldpassword"),
                            params.get("newpassword"),
                        )
                        ctx.start_session(info, token, user)
                        notice = "Your password was changed; your other sessions have ended."
                    elif params.get("action") == "end":
                        wanted = str(params.get("id", ""))
                        for item in self.app.sessions.list_for_user(user.id, ctx.now):
                            if item.id_hash[:16] == wanted:
                                self.app.sessions.remove(item.id_hash, ctx.db)
                                if item.id_hash == current.id_hash:
                                    ctx.end_session()
                                notice = "That session has ended."
                    ctx.close(commit=True)
                    committed = True
                except ClientError as exc:
                    ctx.close(commit=False)
                    error, status = exc.message, exc.status
                if ctx.login_session is None:
                    response = self._redirect("/login?" + urlencode({"next": "/account"}))
                    ctx.apply_cookies(response)
                    return response
            mine = ctx.login_session
            sessions = [
                s.to_public(mine.id_hash if mine else None)
                for s in self.app.sessions.list_for_user(view.id, ctx.now)
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

    def _logout_target_ok(self, uri: str, params: dict[str, Any]) -> bool:
        """post_logout_redirect_uri must be registered by the client named by client_id."""
        with self.app.db.session() as db:
            query = select(Application.redirect_uris)
            if params.get("client_id"):
                query = query.where(Application.client_id == params["client_id"])
            return any(uri in listed for listed in db.scalars(query))

    # -- token endpoint ----------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        self._keys_ready()
        if request.method != "POST":
            return self._oauth_error(OAuthError("invalid_request", "Use POST.", 405))
        # The signing key is loaded (or made) before the write transaction: on SQLite a
        # second writer inside it would wait for our own lock.
        self.keys.signing_key(self.app.clock())
        try:
            params = self._params(request)
            with self.app.db.session(write=True) as db, db.begin():
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
            with self.app.db.session() as db:
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
            return self._oauth_error(OAuthError("invalid_request", exc.message, exc.status))

    def _revoke_after_reuse(self, family: str | None, code_hash: str | None) -> None:
        now = self.app.clock()
        with self.app.db.session(write=True) as db, db.begin():
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
        now = self.app.clock()
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
        now = self.app.clock()
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
        if user is None or user.disabled:
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
        if not app.confidential:
            raise OAuthError("unauthorized_client", "Public clients cannot use this grant.")
        scope = " ".join(s for s in params.get("scope", "").split() if s not in SCOPES)
        grant = Grant(application=app, scope=scope)
        return self.tokens().issue(db, grant, self.app.clock())

    # -- resource endpoints ------------------------------------------------------------------
    def _bearer(self, request: Request, params: dict[str, Any]) -> str:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip()
        return str(params.get("access_token", "")) if request.method == "POST" else ""

    def userinfo(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._params(request)
        except ClientError:
            params = {}
        token = self._bearer(request, params)
        now = self.app.clock()
        with self.app.db.session() as db:
            tokens = self.tokens()
            row = tokens.find(db, token, now)
            usable = (
                row is not None
                and row.kind == "access"
                and row.user_id is not None
                and "openid" in row.scope.split()
            )
            user = db.get(User, row.user_id) if usable and row and row.user_id else None
            app = db.get(Application, row.application_id) if user and row else None
            if row is None or user is None or user.disabled or app is None:
                response = self._json({"error": "invalid_token"}, 401)
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                return response
            return self._json(tokens.user_claims(db, user, app, row.scope))

    def introspect(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._params(request)
            with self.app.db.session() as db:
                app = self._client(db, request, params)
                if app.client_id is None or not app.confidential:
                    raise OAuthError("invalid_client", "Client authentication failed.", 401)
                row = self.tokens().find(db, params.get("token", ""), self.app.clock())
                if row is None or row.application_id != app.id or row.rotated_at is not None:
                    return self._json({"active": False})
                user = db.get(User, row.user_id) if row.user_id else None
                if row.user_id and (user is None or user.disabled):
                    return self._json({"active": False})
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
            return self._oauth_error(OAuthError("invalid_request", exc.message, exc.status))

    def revoke(self, request: Request) -> Response:
        self._keys_ready()
        try:
            params = self._params(request)
            with self.app.db.session(write=True) as db, db.begin():
                app = self._client(db, request, params)
                row = db.scalars(
                    select(OAuthToken).where(
                        OAuthToken.token_hash == digest(params.get("token", ""))
                    )
                ).first()
                if row is not None and row.application_id == app.id:
                    now = self.app.clock()
                    if row.kind == "refresh":
                        self.tokens().revoke_family(db, row.family, now)
                    else:
                        row.revoked_at = now
            return Response(status=200)
        except OAuthError as error:
            return self._oauth_error(error)
        except ClientError as exc:
            return self._oauth_error(OAuthError("invalid_request", exc.message, exc.status))
