"""The OpenID Connect provider: builds the protocol endpoints and the hosted pages, and
names their URLs.

=====================================  ==========  ===========================================
path (as published in discovery)       methods     specification, module
=====================================  ==========  ===========================================
``/.well-known/openid-configuration``  GET         Discovery 1.0 §4 — :mod:`.discovery`
``/.well-known/jwks.json``             GET         RFC 7517 — :mod:`.discovery`
``/oauth2/authorize``                  GET, POST   RFC 6749 §4.1, RFC 7636, OIDC Core §3.1.2
                                                   — :mod:`.authorization`
``/oauth2/token``                      POST        RFC 6749 §3.2, §4.1.3, §6, §4.4
                                                   — :mod:`.token`, :mod:`.client_auth`
``/oauth2/userinfo``                   GET, POST   OIDC Core §5.3, RFC 6750 — :mod:`.userinfo`
``/oauth2/introspect``                 POST        RFC 7662 — :mod:`.introspection`
``/oauth2/revoke``                     POST        RFC 7009 — :mod:`.revocation`
``/login``, ``/consent``               GET, POST   hosted pages — :mod:`passport.pages`
``/logout``                            GET, POST   RP-Initiated Logout 1.0 — :mod:`passport.pages`
``/account``                           GET, POST   the user's page — :mod:`passport.pages`
=====================================  ==========  ===========================================

HEAD goes with GET.  Every handler answers inside its request scope
(:meth:`passport.web.context.RequestContext.respond`); parameters are read by the one
strict reader, :mod:`passport.oidc.params`; OAuth errors are :mod:`passport.oidc.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from passport.oidc import errors as oauth_errors
from passport.oidc.authorization import AuthorizationEndpoint
from passport.oidc.base import ContextFactory
from passport.oidc.discovery import DiscoveryEndpoint
from passport.oidc.introspection import IntrospectionEndpoint
from passport.oidc.revocation import RevocationEndpoint
from passport.oidc.token import TokenEndpoint
from passport.oidc.userinfo import UserInfoEndpoint
from passport.pages import render
from passport.pages.account import AccountPage
from passport.pages.consent import ConsentPage
from passport.pages.login import LoginPage
from passport.pages.logout import LogoutPage
from passport.web.routing import Route

if TYPE_CHECKING:
    from passport.composition import Services

GET = frozenset({"GET"})
POST = frozenset({"POST"})
GET_POST = frozenset({"GET", "POST"})


class Provider:
    def __init__(self, services: Services, context: ContextFactory) -> None:
        self.services = services
        discovery = DiscoveryEndpoint(services, context)
        authorization = AuthorizationEndpoint(services, context)
        token = TokenEndpoint(services, context)
        userinfo = UserInfoEndpoint(services, context)
        introspection = IntrospectionEndpoint(services, context)
        revocation = RevocationEndpoint(services, context)
        login = LoginPage(services, context, authorization)
        consent = ConsentPage(services, context, authorization)
        logout = LogoutPage(services, context)
        account = AccountPage(services, context)
        protocol, pages = oauth_errors.refusal, render.refusal
        # The metrics label of each route is its path, as it was before the one routing
        # map: dashboards keep their series.
        self._routes = [
            Route(path, methods, handler, refuse, path)
            for path, methods, handler, refuse in (
                ("/.well-known/openid-configuration", GET, discovery.discovery, protocol),
                ("/.well-known/jwks.json", GET, discovery.jwks, protocol),
                ("/oauth2/authorize", GET_POST, authorization.authorize, pages),
                ("/oauth2/token", POST, token.token, protocol),
                ("/oauth2/userinfo", GET_POST, userinfo.userinfo, protocol),
                ("/oauth2/introspect", POST, introspection.introspect, protocol),
                ("/oauth2/revoke", POST, revocation.revoke, protocol),
                ("/login", GET_POST, login.login, pages),
                ("/consent", GET_POST, consent.consent, pages),
                ("/logout", GET_POST, logout.logout, pages),
                ("/account", GET_POST, account.account, pages),
            )
        ]

    def routes(self) -> list[Route]:
        """Every URL of the provider, for :class:`passport.web.routing.Router`."""
        return list(self._routes)
