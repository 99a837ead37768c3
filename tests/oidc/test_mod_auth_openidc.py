"""Apache's mod_auth_openidc against a live Passport, as relying party and as resource
server: the most deployed OpenID Connect module that is not ours, run for real
(:mod:`apache_support`), with a requests session playing the browser.

Relying party (``AuthType openid-connect`` on ``/protected/``): the code flow with PKCE
S256, ``client_secret_basic`` and ``client_secret_post`` at the token endpoint, the
claims the application behind Apache is given, RP-initiated logout through Passport's
``end_session_endpoint``, and back-channel logout (Passport's worker posts a logout token
to ``/protected/redirect_uri?logout=backchannel``, after which Apache's session is gone),
whether the user signs out at Passport or ends that session from another browser's
account page.  A logout token with ``sub`` alone (all of a user's sessions, e.g. after a
password change) is not matched by mod_auth_openidc 2.4.12 to any session: a strict
``xfail`` keeps that limitation of the module visible.

Resource server (``AuthType oauth20`` on ``/api/``), two ways, for the client's own API:

* local JWT validation against Passport's JWKS: a Passport access token is accepted
  until it expires, whatever happens at Passport meanwhile;
* introspection (RFC 7662) with the credentials of the client the token was issued to
  (Passport answers a client about its own tokens only): a revoked token is refused at
  the next request, and opaque access tokens work.  mod_auth_openidc caches an
  introspection result until the token's ``exp`` by default; these vhosts set
  ``OIDCOAuthTokenIntrospectionInterval -1`` (introspect on every request), which is
  what "revocation takes effect at once" costs.

And the realistic deployment, an API that is an application of its own (``AuthType
oauth20`` on ``/api2/``), registered with the resource identifier
``http://127.0.0.1:<port>/api2/`` (RFC 8707; the client asks for it with ``resource``
and the access token's ``aud`` is it):

* introspection with the **API's** credentials (RFC 7662 §2.1: Passport answers a
  resource server about the access tokens for its identifiers): a token for the API is
  accepted (the application sees ``sub`` and ``client_id``); one without the resource,
  or for another API, is ``{"active": false}`` to it; a revoked one is refused at once;
* local JWT validation plus ``Require claim aud:<identifier>`` (mod_auth_openidc 2.4.12
  checks no access-token audience itself; its ``claim`` authz provider sees an oauth20
  token's claims): a token whose audience is not the API's is refused with 401
  ``insufficient_scope`` (the module's choice, put in ``WWW-Authenticate`` through
  mod_headers), a revoked one still accepted until its ``exp``.

mod_auth_openidc's introspection endpoint and JWKS are server-wide settings (with an
introspection endpoint set it introspects every token), so each way is its own vhost.

mod_auth_openidc (2.4.12) fetches a JWKS and introspects over https only, so the same
Apache also serves Passport over https on 127.0.0.1 (mod_ssl in front, a self-signed
certificate that ``OIDCCABundlePath`` trusts); the relying party talks to Passport
directly over http (it only warns).

Seen of mod_auth_openidc 2.4.12 here, not of Passport: after a *successful* back-channel
logout its handler returns ``OK`` rather than ending the request, so Apache goes on to
the location's content handler: with the redirect URI proxied like the rest of
``/protected/``, the application received ``POST /protected/redirect_uri?logout=
backchannel`` (its body already consumed).  The relying-party vhosts below therefore
exclude the redirect URI from the proxy (``ProxyPass /protected/redirect_uri !``), and
Apache answers the logout token with 200 itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests

from apache_support import Apache
from apache_support import Echo
from apache_support import available
from apache_support import config
from apache_support import free_ports
from apache_support import private_root
from apache_support import remove
from apache_support import start
from apache_support import tls_certificate
from apache_support import wait_for
from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import follow_to_client
from oidc_support import hidden_fields
from oidc_support import pkce
from oidc_support import seed
from passport.services import directory
from passport.storage.db import Database
from provision import Backend

from conftest import _empty_tables
from conftest import make_settings

pytestmark = pytest.mark.live


@dataclass
class Client:
    client_id: str
    secret: str
    redirect_uri: str


@dataclass
class Site:
    """Passport, and one Apache serving seven virtual hosts, one port each: the six
    below and an https front of Passport for the resource servers."""

    passport: str
    apache: Apache
    echo: Echo
    rp: str  # relying party, client_secret_basic; also the JWT-validating resource server
    rp_post: str  # relying party, client_secret_post
    rs: str  # resource server introspecting with the ``Apache`` client's credentials
    rs_opaque: str  # ... with the ``Apache opaque`` client's (opaque access tokens)
    api: str  # the API's resource server: introspection with the ``API`` application's own
    api_jwt: str  # the same API validating JWTs locally, with an audience check
    api_resource: str  # the API's resource identifier (RFC 8707), ``{api}/api2/``
    other_resource: str  # the identifier of another API (``Other API``)
    apache_client: Client
    post_client: Client
    opaque_client: Client
    api_client: Client  # the API application: a resource server, never a client here

    def claims(self, response: requests.Response) -> dict[str, str]:
        """The headers the application behind Apache received (JSON of :class:`Echo`)."""
        assert response.status_code == 200, self.apache.why(response)
        assert response.url.startswith(self.apache_urls()), self.apache.why(response)
        headers: dict[str, str] = json.loads(response.text)["headers"]
        return headers

    def apache_urls(self) -> tuple[str, ...]:
        return (self.rp, self.rp_post, self.rs, self.rs_opaque, self.api, self.api_jwt)


def register(url: str, ports: dict[str, int], resources: dict[str, str]) -> dict[str, Client]:
    """The applications Apache uses, written as an operator would (services layer);
    ``resources`` names the resource identifier of each API application."""
    settings = make_settings(url)
    database = Database(settings)
    now = datetime.now(UTC)
    made: dict[str, Client] = {}
    try:
        with database.session(write=True) as db, db.begin():
            for name, port, backchannel in (
                ("Apache", ports["rp"], True),
                ("Apache post", ports["rp_post"], False),
            ):
                base = f"http://127.0.0.1:{port}"
                redirect = f"{base}/protected/redirect_uri"
                app, secret = directory.create_application(
                    db,
                    now,
                    name,
                    redirect_uris=[redirect],
                    # Where logout returns, registered for that purpose only
                    # (RP-Initiated Logout 1.0 §2, §3), not as a redirect URI.
                    post_logout_redirect_uris=[f"{base}/loggedout"],
                    backchannel_logout_uri=(
                        f"{redirect}?logout=backchannel" if backchannel else None
                    ),
                    # A loopback back-channel URI: allowed here as the live server is
                    # started with PASSPORT_BACKCHANNEL_ALLOW_PRIVATE (test_backchannel).
                    allow_private_backchannel=True,
                )
                made[name] = Client(app.client_id or "", secret or "", redirect)
            app, secret = directory.create_application(
                db, now, "Apache opaque", redirect_uris=[REDIRECT], access_token_format="opaque"
            )
            made["Apache opaque"] = Client(app.client_id or "", secret or "", REDIRECT)
            # The APIs: confidential applications with no redirect URI, registered with
            # their resource identifiers (RFC 8707 §2; ``passport app add --resource``).
            for name, resource in resources.items():
                app, secret = directory.create_application(db, now, name, resources=[resource])
                made[name] = Client(app.client_id or "", secret or "", "")
    finally:
        database.dispose()
    return made


def rp_vhost(port: int, passport: str, client: Client, auth: str, echo: Echo) -> str:
    """A relying party on ``/protected/``; ``/loggedout`` is where logout returns."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    OIDCProviderMetadataURL {passport}/.well-known/openid-configuration
    OIDCClientID {client.client_id}
    OIDCClientSecret {client.secret}
    OIDCRedirectURI {client.redirect_uri}
    OIDCScope "openid email profile"
    OIDCPKCEMethod S256
    OIDCProviderTokenEndpointAuth {auth}
    OIDCPassClaimsAs headers
    OIDCRemoteUserClaim sub
    OIDCCookie passport_apache_{port}
    OIDCStateCookiePrefix passport_state_{port}_
    <Location /protected/>
        AuthType openid-connect
        Require valid-user
        RequestHeader set X-Remote-User "%{{REMOTE_USER}}s"
    </Location>
    <Location /loggedout>
        Require all granted
    </Location>
    # The redirect URI is mod_auth_openidc's alone: never passed to the application.
    ProxyPass /protected/redirect_uri !
    ProxyPass /protected/ {echo.url}/protected/
    ProxyPass /loggedout {echo.url}/loggedout
    {{rs}}
</VirtualHost>
"""


def jwt_rs(echo: Echo, jwks_uri: str) -> str:
    """``/api/``: bearer JWTs validated locally with Passport's published keys."""
    return f"""
    OIDCOAuthVerifyJwksUri {jwks_uri}
    <Location /api/>
        AuthType oauth20
        Require valid-user
        RequestHeader set X-Remote-User "%{{REMOTE_USER}}s"
    </Location>
    ProxyPass /api/ {echo.url}/api/
"""


def tls_front(port: int, passport: str, cert: Path, key: Path) -> str:
    """Passport over https (mod_ssl, a reverse proxy): mod_auth_openidc refuses an http
    ``OIDCOAuthVerifyJwksUri`` or ``OIDCOAuthIntrospectionEndpoint`` at start."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    <Location />
        Require all granted
    </Location>
    ProxyPass / {passport}/
</VirtualHost>
"""


def introspection_vhost(
    port: int, introspection_endpoint: str, client: Client, echo: Echo, path: str = "/api/"
) -> str:
    """``path`` on its own port: every bearer token introspected (RFC 7662) with
    ``client``'s credentials.  Another resource server is another such vhost (the
    introspection endpoint is a server-wide setting of mod_auth_openidc, and with one
    set it introspects every token, JWTs included)."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    OIDCOAuthIntrospectionEndpoint {introspection_endpoint}
    OIDCOAuthIntrospectionEndpointAuth client_secret_basic
    OIDCOAuthClientID {client.client_id}
    OIDCOAuthClientSecret {client.secret}
    OIDCOAuthTokenIntrospectionInterval -1
    <Location {path}>
        AuthType oauth20
        Require valid-user
        RequestHeader set X-Remote-User "%{{REMOTE_USER}}s"
    </Location>
    ProxyPass {path} {echo.url}{path}
</VirtualHost>
"""


def audience_vhost(port: int, jwks_uri: str, resource: str, echo: Echo) -> str:
    """``/api2/`` on its own port: bearer JWTs validated locally with Passport's keys,
    and only those whose ``aud`` is (or lists) ``resource`` let through.  mod_auth_openidc
    2.4.12 checks no audience of an access token itself; ``Require claim`` (its authz
    provider, which sees a token's claims under ``AuthType oauth20`` too) is the check,
    exact string comparison against ``aud`` or each member of an ``aud`` array."""
    return f"""
Listen 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
    ServerName 127.0.0.1:{port}
    OIDCOAuthVerifyJwksUri {jwks_uri}
    <Location /api2/>
        AuthType oauth20
        Require claim aud:{resource}
        RequestHeader set X-Remote-User "%{{REMOTE_USER}}s"
        # A failed Require sets no WWW-Authenticate of itself: the module leaves its
        # RFC 6750 §3 challenge in this variable for mod_headers.
        Header always set WWW-Authenticate "%{{OIDC_OAUTH_BEARER_SCOPE_ERROR}}e" \
            env=OIDC_OAUTH_BEARER_SCOPE_ERROR
    </Location>
    ProxyPass /api2/ {echo.url}/api2/
</VirtualHost>
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, backends: dict[str, Backend], live_server: Any
) -> Iterator[Site]:
    problem = available()
    assert not problem, problem  # .ci/run installs apache2 and libapache2-mod-auth-openidc
    url = backends[request.param].url
    _empty_tables(url)
    seed(url)  # alice, and the seeded applications other tests know
    names = ("rp", "rp_post", "rs", "rs_opaque", "api", "api_jwt", "tls")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    # The API is known by where it is served; the other API's identifier begins with
    # this one's, so a prefix match anywhere would show.
    api_resource = f"http://127.0.0.1:{ports['api']}/api2/"
    other_resource = f"{api_resource}admin/"
    clients = register(url, ports, {"API": api_resource, "Other API": other_resource})
    server = live_server(
        url,
        env={
            "PASSPORT_KEY_ENCRYPTION_KEY": KEK,
            "PASSPORT_KEY_ROTATION_DELAY": "0",
            "PASSPORT_BACKCHANNEL_ALLOW_PRIVATE": "true",
        },
    )
    discovery = requests.get(server.url + "/.well-known/openid-configuration", timeout=10).json()
    # The resource servers reach Passport through the https front (same paths).
    https = f"https://127.0.0.1:{ports['tls']}"
    jwks_uri = https + urlsplit(discovery["jwks_uri"]).path
    introspection = https + urlsplit(discovery["introspection_endpoint"]).path
    echo = Echo()
    root = private_root()
    cert, key = tls_certificate(root)
    rs_jwt = jwt_rs(echo, jwks_uri)
    body = "\n".join(
        [
            # The passphrase encrypts the state and session cookies; one per Apache.
            f"OIDCCryptoPassphrase {secrets.token_urlsafe(32)}",
            f"OIDCCABundlePath {cert}",
            tls_front(ports["tls"], server.url, cert, key),
            rp_vhost(
                ports["rp"], server.url, clients["Apache"], "client_secret_basic", echo
            ).replace("{rs}", rs_jwt),
            rp_vhost(
                ports["rp_post"], server.url, clients["Apache post"], "client_secret_post", echo
            ).replace("{rs}", ""),
            introspection_vhost(ports["rs"], introspection, clients["Apache"], echo),
            introspection_vhost(ports["rs_opaque"], introspection, clients["Apache opaque"], echo),
            introspection_vhost(ports["api"], introspection, clients["API"], echo, "/api2/"),
            audience_vhost(ports["api_jwt"], jwks_uri, api_resource, echo),
        ]
    )
    apache: Apache | None = None
    try:
        # Apache's own Listen is the first relying party's port, declared by its vhost.
        apache = start(root, ports["rp"], lambda a: config(a, body, listen=False))
        yield Site(
            passport=server.url,
            apache=apache,
            echo=echo,
            rp=f"http://127.0.0.1:{ports['rp']}",
            rp_post=f"http://127.0.0.1:{ports['rp_post']}",
            rs=f"http://127.0.0.1:{ports['rs']}",
            rs_opaque=f"http://127.0.0.1:{ports['rs_opaque']}",
            api=f"http://127.0.0.1:{ports['api']}",
            api_jwt=f"http://127.0.0.1:{ports['api_jwt']}",
            api_resource=api_resource,
            other_resource=other_resource,
            apache_client=clients["Apache"],
            post_client=clients["Apache post"],
            opaque_client=clients["Apache opaque"],
            api_client=clients["API"],
        )
    finally:
        if apache is not None:
            apache.stop()
        echo.close()
        remove(root)


# -- the browser ------------------------------------------------------------------------


def browse(
    site: Site,
    browser: requests.Session,
    url: str,
    *,
    sign_in: bool = True,
    confirm_logout: bool = False,
    visited: list[str] | None = None,
) -> requests.Response:
    """Follow ``url`` as a browser would, through Apache and Passport alike: sign in as
    alice, allow, and (when ``confirm_logout``) confirm signing out, until a page that
    is not Passport's; returns that response.  ``visited`` collects every URL asked."""
    for _ in range(20):
        if visited is not None:
            visited.append(url)
        response = browser.get(url, allow_redirects=False, timeout=15)
        if response.status_code in (301, 302, 303, 307):
            url = urljoin(url, response.headers["Location"])
            continue
        if not url.startswith(site.passport):
            return response
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        html = response.text
        form = hidden_fields(html)
        if 'action="/login"' in html and sign_in:
            form |= {"username": "alice", "password": PASSWORD}
            page = "login"
        elif 'action="/consent"' in html:
            form |= {"decision": "allow"}
            page = "consent"
        elif 'action="/logout"' in html and confirm_logout:
            page = "logout"
        else:
            return response
        posted = browser.post(
            f"{site.passport}/{page}",
            data=form,
            allow_redirects=False,
            headers={"Origin": site.passport},
            timeout=15,
        )
        if visited is not None:
            visited.append(f"POST {site.passport}/{page}")
        if posted.status_code != 302:
            return posted
        url = urljoin(site.passport, posted.headers["Location"])
    raise AssertionError(f"too many redirects: {visited}")


def signed_in(site: Site, base: str) -> tuple[requests.Session, dict[str, str]]:
    """A browser signed in at Apache ``base`` (through Passport); and what the
    application behind Apache saw of the first request."""
    browser = requests.Session()
    visited: list[str] = []
    response = browse(site, browser, f"{base}/protected/hello", visited=visited)
    seen = site.claims(response)
    assert any(u.startswith(f"{site.passport}/oauth2/authorize") for u in visited), visited
    return browser, seen


def sent_to_passport(site: Site, browser: requests.Session, base: str) -> bool:
    """Whether Apache sends this browser to Passport's authorization endpoint (no session)."""
    response = browser.get(f"{base}/protected/hello", allow_redirects=False, timeout=15)
    if response.status_code == 200:
        return False
    assert response.status_code == 302, site.apache.why(response)
    return response.headers["Location"].startswith(f"{site.passport}/oauth2/authorize")


# -- relying party ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post"])
def test_sign_in_gives_the_application_the_users_claims(site: Site, auth: str) -> None:
    base = site.rp if auth == "client_secret_basic" else site.rp_post
    client = site.apache_client if auth == "client_secret_basic" else site.post_client
    browser = requests.Session()
    visited: list[str] = []
    response = browse(site, browser, f"{base}/protected/hello?x=1", visited=visited)
    seen = site.claims(response)
    assert json.loads(response.text)["path"] == "/protected/hello?x=1"  # back where it began
    assert seen["OIDC_CLAIM_email"] == "alice@example.com", seen
    assert seen["OIDC_CLAIM_sub"].startswith("user-"), seen
    assert seen["X-Remote-User"] == seen["OIDC_CLAIM_sub"]
    assert seen["OIDC_CLAIM_iss"] == site.passport
    assert seen["OIDC_CLAIM_aud"] == client.client_id
    # The authorization request Apache made: code flow with PKCE S256, the scopes asked.
    authorize = next(u for u in visited if u.startswith(f"{site.passport}/oauth2/authorize"))
    asked = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert set(asked["scope"].split()) == {"openid", "email", "profile"}
    assert asked["client_id"] == client.client_id
    # The session holds: the next request reaches the application without Passport.
    again = browser.get(f"{base}/protected/again", allow_redirects=False, timeout=15)
    assert site.claims(again)["OIDC_CLAIM_sub"] == seen["OIDC_CLAIM_sub"]


def test_the_application_never_sees_claims_the_browser_forged(site: Site) -> None:
    browser, _ = signed_in(site, site.rp)
    forged = browser.get(
        f"{site.rp}/protected/hello",
        headers={"OIDC_CLAIM_email": "mallory@example.com", "X-Remote-User": "admin"},
        timeout=15,
    )
    seen = site.claims(forged)
    assert seen["OIDC_CLAIM_email"] == "alice@example.com"
    assert seen["X-Remote-User"].startswith("user-")


def test_rp_initiated_logout_ends_both_sessions_and_comes_back(site: Site) -> None:
    browser, _ = signed_in(site, site.rp)
    back = f"{site.rp}/loggedout"
    visited: list[str] = []
    response = browse(
        site,
        browser,
        f"{site.rp}/protected/redirect_uri?" + urlencode({"logout": back}),
        confirm_logout=True,
        visited=visited,
    )
    assert response.status_code == 200, site.apache.why(response)
    assert response.url.startswith(back), visited
    end_session = next(u for u in visited if u.startswith(f"{site.passport}/logout"))
    asked = {k: v[0] for k, v in parse_qs(urlsplit(end_session).query).items()}
    assert asked["post_logout_redirect_uri"] == back
    assert "id_token_hint" in asked
    # Apache's session is gone, and so is Passport's: signing in asks for the password.
    assert sent_to_passport(site, browser, site.rp)
    page = browse(site, browser, f"{site.rp}/protected/hello", sign_in=False)
    assert page.url.startswith(f"{site.passport}/login"), page.url


def test_signing_out_at_passport_ends_apaches_session_by_back_channel(site: Site) -> None:
    browser, seen = signed_in(site, site.rp)
    assert not sent_to_passport(site, browser, site.rp)  # Apache's session holds
    # The user signs out at Passport itself (its end_session page, no application named).
    page = browse(site, browser, f"{site.passport}/logout", confirm_logout=True)
    assert page.status_code == 200 and "signed out" in page.text, page.text[:300]
    # Passport's worker posts the logout token within a second or two; Apache then
    # forgets the session, and the same cookie is sent to Passport to sign in again.
    wait_for(
        lambda: sent_to_passport(site, browser, site.rp),
        timeout=20,
        what="Apache's session ended by back-channel logout",
        explain=site.apache.error_log,
    )
    # It was the logout token: mod_auth_openidc says so (its handler, at debug level),
    # and Apache answered Passport's POST with 200 (Back-Channel Logout 1.0 §2.8).
    assert site.apache.logged("oidc_handle_logout_backchannel"), site.apache.error_log()
    assert answered_back_channel(site)
    # The application behind Apache saw none of it.
    assert not [r for r in site.echo.requests if "redirect_uri" in r["path"]]
    assert seen["OIDC_CLAIM_sub"].startswith("user-")


def passport_account(site: Site) -> tuple[requests.Session, str]:
    """Another browser, signed in at Passport alone, on its account page."""
    other = requests.Session()
    page = browse(site, other, f"{site.passport}/account")
    assert page.status_code == 200 and "Where you are signed in" in page.text, page.text[:300]
    return other, page.text


def post_account(site: Site, browser: requests.Session, form: dict[str, str]) -> None:
    answer = browser.post(
        f"{site.passport}/account",
        data=form,
        headers={"Origin": site.passport},
        allow_redirects=False,
        timeout=15,
    )
    assert answer.status_code in (200, 204, 302, 303), (answer.status_code, answer.text[:300])


def answered_back_channel(site: Site) -> bool:
    return site.apache.accessed('"POST /protected/redirect_uri?logout=backchannel HTTP/1.1" 200')


def test_ending_the_session_from_passports_account_page_ends_apaches(site: Site) -> None:
    browser, _ = signed_in(site, site.rp)
    other, html = passport_account(site)
    # The account page lists both sessions; the one not "(this browser)" is Apache's.
    elsewhere = [item for item in html.split("<li>")[1:] if "(this browser)" not in item]
    assert len(elsewhere) == 1, html
    post_account(site, other, hidden_fields(elsewhere[0]))
    wait_for(
        lambda: sent_to_passport(site, browser, site.rp),
        timeout=20,
        what="Apache's session ended by the logout token naming its sid",
        explain=site.apache.error_log,
    )
    assert answered_back_channel(site)


@pytest.mark.xfail(
    strict=True,
    reason="mod_auth_openidc 2.4.12 finds sessions by the sid of their ID token only: a "
    "logout token with sub alone (all of a user's sessions, Back-Channel Logout 1.0 §2.4) "
    "is answered 200 but ends nothing; its log says 'oidc_cleanup_by_sid: could not (or "
    "no longer) find a session based on sid/sub provided in logout token'",
)
def test_a_password_change_elsewhere_ends_apaches_session(site: Site) -> None:
    browser, _ = signed_in(site, site.rp)
    other, html = passport_account(site)
    form = next(f for f in html.split("<form")[1:] if 'value="password"' in f)
    post_account(
        site,
        other,
        hidden_fields(form)
        | {"oldPassword": PASSWORD, "newPassword": "a new horse battery staple"},
    )
    # Passport ends every other session and tells Apache, with ``sub`` alone.
    wait_for(
        lambda: answered_back_channel(site),
        timeout=20,
        what="Passport delivered the logout token to Apache",
        explain=site.apache.error_log,
    )
    assert site.apache.logged("oidc_handle_logout_backchannel")
    assert sent_to_passport(site, browser, site.rp), site.apache.error_log()


# -- resource server ------------------------------------------------------------------


def access_token(site: Site, client: Client, resource: str | None = None) -> str:
    """An access token Passport issues to ``client`` for alice (code flow with PKCE),
    for ``resource`` when given (RFC 8707 §2.1, asked at the authorization endpoint;
    the token request names none, so it gets all the code's), the test playing the
    client; Apache is not involved."""
    browser = requests.Session()
    verifier, challenge = pkce()
    query = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": "openid email",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    } | ({"resource": resource} if resource else {})
    landed = follow_to_client(
        browser,
        f"{site.passport}/oauth2/authorize?{urlencode(query)}",
        site.passport,
        client.redirect_uri,
        username="alice",
        password=PASSWORD,
    )
    code = parse_qs(urlsplit(landed).query)["code"][0]
    issued = requests.post(
        f"{site.passport}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.secret),
        timeout=15,
    )
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


def api(base: str, token: str | None, path: str = "/api/items") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{base}{path}", headers=headers, timeout=15)


def api2(base: str, token: str | None) -> requests.Response:
    """The API with a resource identifier of its own (``Site.api``, ``Site.api_jwt``)."""
    return api(base, token, "/api2/items")


def refused(site: Site, response: requests.Response) -> None:
    assert response.status_code == 401, site.apache.why(response)
    assert response.headers["WWW-Authenticate"].startswith("Bearer"), response.headers


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_passport_jwt_is_validated_locally_with_the_jwks(site: Site) -> None:
    token = access_token(site, site.apache_client)
    assert token.count(".") == 2  # a JWT (RFC 9068)
    seen = site.claims(api(site.rp, token))
    sub = json.loads(unb64(token.split(".")[1]))["sub"]
    assert seen["X-Remote-User"] == sub and sub.startswith("user-")
    refused(site, api(site.rp, None))
    refused(site, api(site.rp, "not-a-token"))


def test_a_tampered_or_wrongly_signed_jwt_is_refused(site: Site) -> None:
    token = access_token(site, site.apache_client)
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    # Another subject under the genuine signature.
    forged = b64(json.dumps(claims | {"sub": "user-999999"}).encode())
    refused(site, api(site.rp, f"{header}.{forged}.{signature}"))
    # A flipped signature byte.
    raw = bytearray(unb64(signature))
    raw[0] ^= 1
    refused(site, api(site.rp, f"{header}.{payload}.{b64(bytes(raw))}"))
    # The same claims unsigned ("none"), and MACed with HS256 under Passport's key id
    # with the client's secret as the key: algorithms Passport never signs with.
    kid = json.loads(unb64(header)).get("kid", "")
    unsigned = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    refused(site, api(site.rp, f"{unsigned}.{payload}."))
    hs = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    mac = hmac.new(site.apache_client.secret.encode(), f"{hs}.{payload}".encode(), hashlib.sha256)
    refused(site, api(site.rp, f"{hs}.{payload}.{b64(mac.digest())}"))
    # The genuine token still passes: the refusals were about the changes.
    assert site.claims(api(site.rp, token))["X-Remote-User"] == claims["sub"]


def revoke(site: Site, client: Client, token: str) -> None:
    answer = requests.post(
        f"{site.passport}/oauth2/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=(client.client_id, client.secret),
        timeout=15,
    )
    assert answer.status_code == 200, answer.text


def test_introspection_sees_revocation_that_local_validation_cannot(site: Site) -> None:
    token = access_token(site, site.apache_client)
    assert site.claims(api(site.rs, token))["X-Remote-User"].startswith("user-")
    assert site.claims(api(site.rp, token))["X-Remote-User"].startswith("user-")
    refused(site, api(site.rs, None))
    revoke(site, site.apache_client, token)
    # Introspection asks Passport, which answers {"active": false} from now on.
    refused(site, api(site.rs, token))
    # A self-contained JWT checked against the JWKS stays valid until its exp: that is
    # the price of local validation (RFC 7009 §2: a revoked self-contained token is
    # refused only by a resource server that asks the authorization server).
    assert site.claims(api(site.rp, token))["X-Remote-User"].startswith("user-")


def test_an_opaque_access_token_works_through_introspection(site: Site) -> None:
    token = access_token(site, site.opaque_client)
    assert token.count(".") != 2  # not a JWT: only introspection can tell what it is
    assert site.claims(api(site.rs_opaque, token))["X-Remote-User"].startswith("user-")
    # A resource server that validates JWTs locally cannot read it.
    refused(site, api(site.rp, token))
    # Introspection answers a client about its own tokens only (RFC 7662 §2.1-2.2).
    refused(site, api(site.rs, token))
    revoke(site, site.opaque_client, token)
    refused(site, api(site.rs_opaque, token))


# -- an API with a resource identifier of its own (RFC 8707, RFC 7662 §2.1) -------------
#
# The realistic deployment: the API is an application of its own, registered with the
# resource identifier ``Site.api_resource``; the client asks for that resource and gets
# an access token whose ``aud`` is the identifier; the API's Apache introspects it with
# the API's credentials (``Site.api``) or validates it locally and checks its audience
# (``Site.api_jwt``).  The client's credentials are nowhere in the API's configuration.


# What mod_auth_openidc logs (debug) when Passport answers ``{"active": false}``.
INACTIVE = '"active" boolean object with value "false" found in response JSON object'


def payload(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return claims


def test_a_token_for_the_api_is_accepted_by_the_apis_own_resource_servers(site: Site) -> None:
    token = access_token(site, site.apache_client, site.api_resource)
    claims = payload(token)
    assert claims["aud"] == site.api_resource, claims
    # Introspected with the API's credentials: Passport answers the API about a token
    # issued to another client because its audience is the API's identifier.
    seen = site.claims(api2(site.api, token))
    assert seen["X-Remote-User"] == claims["sub"] and claims["sub"].startswith("user-")
    assert seen["OIDC_CLAIM_client_id"] == site.apache_client.client_id, seen
    assert seen["OIDC_CLAIM_aud"] == site.api_resource, seen
    # Validated locally, its audience checked.
    seen = site.claims(api2(site.api_jwt, token))
    assert seen["X-Remote-User"] == claims["sub"]
    assert seen["OIDC_CLAIM_client_id"] == site.apache_client.client_id, seen
    refused(site, api2(site.api, None))
    refused(site, api2(site.api_jwt, None))


def refused_for_its_audience(site: Site, response: requests.Response) -> None:
    """Refused by ``Require claim aud:...``, after the token itself was found valid: the
    challenge is mod_auth_openidc's for a failed claim requirement (2.4.12 answers it
    with 401 and ``insufficient_scope``), not ``invalid_token``."""
    refused(site, response)
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"], response.headers


def test_a_token_without_the_resource_is_refused_by_the_api(site: Site) -> None:
    # Without ``resource`` the audience is the client (RFC 8707 not used): a genuine
    # token, as the client's own resource servers show...
    token = access_token(site, site.apache_client)
    assert payload(token)["aud"] == site.apache_client.client_id
    assert site.claims(api(site.rs, token))["X-Remote-User"].startswith("user-")
    assert site.claims(api(site.rp, token))["X-Remote-User"].startswith("user-")
    # ... that the API may not introspect: Passport answers it {"active": false}
    # (RFC 7662 §2.2), as for a token it never issued ...
    refused(site, api2(site.api, token))
    assert site.apache.logged(INACTIVE), site.apache.error_log()
    # ... and whose audience is not the API's.
    refused_for_its_audience(site, api2(site.api_jwt, token))


def test_a_revoked_token_for_the_api_is_refused_at_once_by_introspection(site: Site) -> None:
    token = access_token(site, site.apache_client, site.api_resource)
    assert site.claims(api2(site.api, token))["X-Remote-User"].startswith("user-")
    assert not site.apache.logged(INACTIVE)
    revoke(site, site.apache_client, token)  # the client revokes (RFC 7009), not the API
    refused(site, api2(site.api, token))
    assert site.apache.logged(INACTIVE), site.apache.error_log()
    # The API's local validation cannot know: its audience is right, its exp to come.
    assert site.claims(api2(site.api_jwt, token))["X-Remote-User"].startswith("user-")


def test_a_token_for_another_api_is_refused_by_this_one(site: Site) -> None:
    # The other API's identifier begins with this API's: no prefix matches anywhere.
    token = access_token(site, site.apache_client, site.other_resource)
    assert payload(token)["aud"] == site.other_resource
    assert site.other_resource.startswith(site.api_resource)
    # A genuine token, signed by Passport (a resource server checking no audience takes it)...
    assert site.claims(api(site.rp, token))["X-Remote-User"].startswith("user-")
    # ... that this API may not introspect (it is not its audience) and whose audience
    # is not this API's.
    refused(site, api2(site.api, token))
    assert site.apache.logged(INACTIVE), site.apache.error_log()
    refused_for_its_audience(site, api2(site.api_jwt, token))
