"""Who may sign in to an application, against a live ``passport serve`` with a real
relying party, Authlib's OpenID Connect client: a member of the application's group
gets tokens; removed from the group, the next refresh is ``invalid_grant`` (RFC 6749
§5.2); asking again, the user is shown Passport's refusal page and its "Back to Wiki"
brings ``access_denied`` with the request's ``state`` to the client (RFC 6749
§4.1.2.1), which gets no code."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.sync_app import BaseApp
from authlib.integrations.base_client.sync_app import OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import MissingCodeException
from authlib.oauth2.rfc6749.parameters import parse_authorization_code_response

from oidc_support import PASSWORD
from oidc_support import Provider
from oidc_support import hidden_fields
from passport.services import directory
from passport.services.applications import find_by_name
from passport.storage.db import Database
from passport.storage.models import ApplicationSignInGroup

from conftest import make_settings

pytestmark = pytest.mark.live
BACK = re.compile(r'<a href="([^"]+)">Back to Wiki</a>')
FORM = re.compile(r"<form\b.*?</form>", re.S)


class RelyingParty(OAuth2Mixin, OpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's OpenID Connect client without a web framework around it."""

    client_cls = OAuth2Session


def relying_party(p: Provider) -> RelyingParty:
    return RelyingParty(
        None,
        client_id=p.client_id,
        client_secret=p.client_secret,
        server_metadata_url=p.url + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256"},
    )


class Browser:
    """A browser without JavaScript: cookies, redirects by hand, forms with Origin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.session.get(urljoin(self.base, url), allow_redirects=False, timeout=10)

    def post(self, path: str, data: dict[str, str]) -> requests.Response:
        return self.session.post(
            urljoin(self.base, path),
            data=data,
            allow_redirects=False,
            headers={"Origin": self.base},
            timeout=10,
        )


def form(html: str, marker: str) -> dict[str, str]:
    for found in FORM.findall(html):
        if marker in found:
            return hidden_fields(found)
    raise AssertionError(f"no form with {marker!r}: {html[:500]}")


def in_database(p: Provider, change: Any) -> None:
    database = Database(make_settings(p.database_url))
    try:
        with database.session(write=True) as db, db.begin():
            change(db)
    finally:
        database.dispose()


def only_staff(db: Any) -> None:
    wiki = find_by_name(db, "Wiki")
    assert wiki is not None
    staff = directory.create_group(db, "Staff")
    directory.add_member(db, staff, directory.get_user(db, "alice"))
    wiki.sign_in_policy = "groups"
    wiki.first_party = True
    db.add(ApplicationSignInGroup(application_id=wiki.id, group_id=staff.id))
    wiki.sign_in_permission = None


def leave_staff(db: Any) -> None:
    directory.remove_member(db, directory.get_group(db, "Staff"), directory.get_user(db, "alice"))


def sign_in(browser: Browser, url: str, p: Provider) -> Any:
    """Follow the request until Passport sends the browser back or shows a page."""
    for _ in range(10):
        if url.startswith(p.redirect_uri):
            return url
        answer = browser.get(url)
        if answer.status_code == 302:
            url = urljoin(p.url, answer.headers["Location"])
            continue
        if answer.status_code != 200:
            return answer
        posted = browser.post(
            "/login",
            form(answer.text, 'action="/login"') | {"username": "alice", "password": PASSWORD},
        )
        if posted.status_code != 302:
            return posted
        url = urljoin(p.url, posted.headers["Location"])
    raise AssertionError("too many redirects")


def test_authlib_member_gets_tokens_then_refresh_and_authorize_are_refused(
    provider: Provider,
) -> None:
    in_database(provider, only_staff)
    rp = relying_party(provider)
    started: dict[str, Any] = rp.create_authorization_url(redirect_uri=provider.redirect_uri)
    browser = Browser(provider.url)
    final = sign_in(browser, started["url"], provider)
    assert isinstance(final, str), final.text[:500]
    token = rp.fetch_access_token(
        redirect_uri=provider.redirect_uri,
        authorization_response=final,
        state=started["state"],
        code_verifier=started["code_verifier"],
    )
    claims = rp.parse_id_token(token, nonce=started["nonce"])
    assert claims["preferred_username"] == "alice" and "refresh_token" in token

    metadata = rp.load_server_metadata()
    session = OAuth2Session(provider.client_id, provider.client_secret)
    renewed = session.refresh_token(
        metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert "access_token" in renewed  # still a member

    in_database(provider, leave_staff)
    with pytest.raises(AuthlibBaseError) as refused:
        session.refresh_token(metadata["token_endpoint"], refresh_token=renewed["refresh_token"])
    assert refused.value.error == "invalid_grant"

    # Asked again: the user sees Passport's page, the client hears access_denied.
    again: dict[str, Any] = rp.create_authorization_url(redirect_uri=provider.redirect_uri)
    page = browser.get(again["url"])
    assert page.status_code == 403, page.text[:500]
    assert "Your account may not sign in to Wiki" in page.text
    back = BACK.search(page.text)
    assert back is not None
    callback = unescape(back.group(1))
    assert callback.startswith(provider.redirect_uri)
    answer = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    assert answer["error"] == "access_denied" and answer["state"] == again["state"]
    assert answer["iss"] == provider.url
    with pytest.raises(MissingCodeException):  # what Authlib makes of it: no code
        parse_authorization_code_response(callback, state=again["state"])
