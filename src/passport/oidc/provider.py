"""The OpenID Connect provider: builds the protocol endpoints and the hosted pages, and
names their URLs.

=====================================  ==========  ==========  =====================================
path (as published in discovery)       methods     CORS        specification, module
=====================================  ==========  ==========  =====================================
``/.well-known/openid-configuration``  GET         any         Discovery 1.0 §4 — :mod:`.discovery`
``/.well-known/oauth-authorization-server``
                                       GET         any         RFC 8414 §3 — :mod:`.discovery`
``/.well-known/jwks.json``             GET         any         RFC 7517 — :mod:`.discovery`
``/oauth2/authorize``                  GET, POST   —           RFC 6749 §4.1, RFC 7636, OIDC Core
                                                               §3.1.2 — :mod:`.authorization`
``/oauth2/token``                      POST        registered  RFC 6749 §3.2, §4.1.3, §6, §4.4
                                                               — :mod:`.token`, :mod:`.client_auth`
``/oauth2/par``                        POST        registered  RFC 9126 §2 — :mod:`.par`,
                                                               :mod:`.pushed`, :mod:`.client_auth`
``/oauth2/userinfo``                   GET, POST   registered  OIDC Core §5.3, RFC 6750
                                                               — :mod:`.userinfo`
``/oauth2/introspect``                 POST        —           RFC 7662 — :mod:`.introspection`
``/oauth2/revoke``                     POST        registered  RFC 7009 — :mod:`.revocation`
``/oauth2/device_authorization``       POST        —           RFC 8628 §3.1 — :mod:`.device`
``/login``, ``/consent``               GET, POST   —           hosted pages — :mod:`passport.pages`
``/login/verify``, ``/login/enrol``    GET, POST   —           a sign-in's second factor
``/login/continue``, ``/webauthn/options``
                                       POST        —           — :mod:`passport.pages.second_factor`
``/assets/passkey-<hash>.js``          GET         —           the passkey script
``/logout``                            GET, POST   —           RP-Initiated Logout 1.0
                                                               — :mod:`passport.pages`
``/account``                           GET, POST   —           the user's page
                                                               — :mod:`passport.pages`
``/device``                            GET, POST   —           RFC 8628 §3.3 user interaction
                                                               — :mod:`passport.pages`
``/forward-auth``,                     any, GET    —           a proxy's check, the way back
``/forward-auth/return``                                       — :mod:`.pages.forward_auth`
``/password/forgot``, ``/password/reset``,
``/email/verify``, ``/invite``         GET, POST   —           links sent by mail
                                                               — :mod:`passport.pages.recovery`
``/admin``, ``/admin/audit``;         GET         —           the admin console
``/admin/users``, ``/admin/user``,     (GET, POST)             — :mod:`passport.pages.console`
``/admin/groups``, ``/admin/group``,
``/admin/applications``,
``/admin/application``
=====================================  ==========  ==========  =====================================

HEAD goes with GET; OPTIONS (the CORS preflight) with a CORS policy
(:class:`passport.web.origins.CorsPolicy`: "any" is ``*``, "registered" the origins
applications registered, never with credentials), applied by the dispatcher.  Every
handler answers inside its request scope
(:meth:`passport.web.context.RequestContext.respond`); parameters are read by the one
strict reader, :mod:`passport.oidc.params`; OAuth errors are :mod:`passport.oidc.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passport.oidc import errors as oauth_errors
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.oidc.device import DeviceAuthorizationEndpoint
from passport.oidc.discovery import DiscoveryEndpoint
from passport.oidc.introspection import IntrospectionEndpoint
from passport.oidc.par import PushedAuthorizationEndpoint
from passport.oidc.revocation import RevocationEndpoint
from passport.oidc.token import TokenEndpoint
from passport.oidc.userinfo import UserInfoEndpoint
from passport.pages import render
from passport.pages.account import AccountPage
from passport.pages.consent import ConsentPage
from passport.pages.console import ConsolePages
from passport.pages.device import DevicePage
from passport.pages.forward_auth import RETURN_PATH
from passport.pages.forward_auth import ForwardAuthPage
from passport.pages.login import LoginPage
from passport.pages.logout import LogoutPage
from passport.pages.recovery import RecoveryPages
from passport.pages.second_factor import SecondFactorPage
from passport.web import origins
from passport.web.routing import Route

if TYPE_CHECKING:
    from passport.composition import Services

GET = frozenset({"GET"})
POST = frozenset({"POST"})
GET_POST = frozenset({"GET", "POST"})
# What a proxy's check may be sent with (nginx, Caddy and Traefik send GET; a proxy
# configured to keep the original method sends that).
ANY_METHOD = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class Provider:
    def __init__(self, services: Services, context: ContextFactory) -> None:
        self.services = services
        discovery = DiscoveryEndpoint(services, context)
        authorization = AuthorizationEndpoint(services, context)
        token = TokenEndpoint(services, context)
        par = PushedAuthorizationEndpoint(services, context, authorization)
        userinfo = UserInfoEndpoint(services, context)
        introspection = IntrospectionEndpoint(services, context)
        revocation = RevocationEndpoint(services, context)
        device_authorization = DeviceAuthorizationEndpoint(services, context)
        login = LoginPage(services, context, authorization)
        consent = ConsentPage(services, context, authorization)
        logout = LogoutPage(services, context)
        account = AccountPage(services, context)
        second = SecondFactorPage(services, context, authorization)
        device = DevicePage(services, context)
        recovery = RecoveryPages(services, context)
        console = ConsolePages(services, context)
        guard = ForwardAuthPage(services, context)
        protocol, pages = oauth_errors.refusal, render.refusal
        public, registered = origins.PUBLIC_CORS, origins.REGISTERED_CORS
        # The metrics label of each route is its path, as it was before the one routing
        # map: dashboards keep their series.  CORS (the last column, see the table
        # above): public documents for any page; what a browser application calls —
        # the token endpoint (a public client with PKCE), the PAR endpoint (the same
        # client pushing its request, RFC 9126 §2), userinfo, revocation — for
        # registered origins.  Introspection none: only a confidential client with its
        # secret may introspect (RFC 7662 §2.1), and a secret has no place in a page.
        # The hosted pages and the authorization endpoint are navigated to, never
        # fetched: no CORS.
        self._routes = [
            Route(path, methods, handler, refuse, path, cors)
            for path, methods, handler, refuse, cors in (
                ("/.well-known/openid-configuration", GET, discovery.discovery, protocol, public),
                (
                    "/.well-known/oauth-authorization-server",
                    GET,
                    discovery.as_metadata,
                    protocol,
                    public,
                ),
                ("/.well-known/jwks.json", GET, discovery.jwks, protocol, public),
                ("/oauth2/authorize", GET_POST, authorization.authorize, pages, None),
                ("/oauth2/token", POST, token.token, protocol, registered),
                ("/oauth2/par", POST, par.push, protocol, registered),
                ("/oauth2/userinfo", GET_POST, userinfo.userinfo, protocol, registered),
                ("/oauth2/introspect", POST, introspection.introspect, protocol, None),
                ("/oauth2/revoke", POST, revocation.revoke, protocol, registered),
                ("/login", GET_POST, login.login, pages, None),
                ("/login/verify", GET_POST, second.verify, pages, None),
                ("/login/enrol", GET_POST, second.enrol, pages, None),
                ("/login/continue", POST, second.go_on, pages, None),
                # The passkey script fetches its challenges (same origin only, no CORS).
                ("/webauthn/options", POST, second.options, pages, None),
                (render.PASSKEY_JS_URL, GET, render.passkey_script, pages, None),
                ("/consent", GET_POST, consent.consent, pages, None),
                ("/logout", GET_POST, logout.logout, pages, None),
                ("/account", GET_POST, account.account, pages, None),
                # Links sent by mail (passport.services.lifecycle).
                ("/password/forgot", GET_POST, recovery.forgot, pages, None),
                ("/password/reset", GET_POST, recovery.reset, pages, None),
                ("/email/verify", GET_POST, recovery.verify, pages, None),
                ("/invite", GET_POST, recovery.invite, pages, None),
                # The admin console (passport.pages.console: its screens say their URLs).
                *(
                    (path, methods, handler, pages, None)
                    for path, methods, handler in console.routes()
                ),
                # RFC 8628: a device's back end calls it, never a page (no CORS).
                (
                    "/oauth2/device_authorization",
                    POST,
                    device_authorization.device_authorization,
                    protocol,
                    None,
                ),
                ("/device", GET_POST, device.device, pages, None),
                # Forward-auth (passport.pages.forward_auth): a reverse proxy asks, and the
                # way back to its site after signing in.
                ("/forward-auth", ANY_METHOD, guard.check, pages, None),
                (RETURN_PATH, GET, guard.back, pages, None),
            )
        ]

    def routes(self) -> list[Route]:
        """Every URL of the provider, for :class:`passport.web.routing.Router`."""
        return list(self._routes)
