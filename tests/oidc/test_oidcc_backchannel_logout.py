"""OpenID Connect Back-Channel Logout 1.0, one test per check of the conformance suite's
``oidcc-backchannel-rp-initiated-logout`` module (and the ones it implies), with the
relying party played by :class:`RelyingParty`: it keeps one session per ID token, by
``sid``, and ends sessions on a logout token as §2.6-§2.7 say.

* §2.1: discovery announces ``backchannel_logout_supported`` and
  ``backchannel_logout_session_supported`` (and no front-channel logout);
* §2.4: a logout token carries ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events``,
  ``sub`` and, for one session, the ``sid`` of the ID tokens issued in it; never
  ``nonce``; ``typ: logout+jwt``;
* §2.3: ending one session tells only the applications signed in through it, once each;
  ending all of a user's sessions tells each of them once, with ``sub`` alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import jwt as pyjwt
import pytest
from sqlalchemy import update

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import authorize
from oidc_support import body
from oidc_support import first_party
from oidc_support import form_of
from oidc_support import query
from oidc_support import seed
from oidc_support import token
from passport.oidc.backchannel import EVENT
from passport.oidc.backchannel import deliver_due
from passport.services.applications import find_by_name
from passport.storage.models import OAuthToken

from support import Harness
from support import PassportClient

WIKI_BC = "http://127.0.0.1:9/wiki/backchannel"
BATCH_BC = "http://127.0.0.1:9/batch/backchannel"
IN_PROCESS = [("sqlite", "db"), ("postgresql", "redis")]


@pytest.fixture(params=IN_PROCESS, ids=[f"{b}-{s}" for b, s in IN_PROCESS])
def h(request: pytest.FixtureRequest, factory: Any) -> Harness:
    backend, store = request.param
    # The back-channel URIs are loopback ones: the operator allows private targets.
    harness: Harness = factory(
        backend,
        store,
        key_encryption_key=KEK,
        key_rotation_delay=0,
        backchannel_allow_private=True,
    )
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    with harness.app.services.db.session(write=True) as db, db.begin():
        for name, uri in (("Wiki", WIKI_BC), ("Batch", BATCH_BC)):
            app = find_by_name(db, name)
            assert app is not None
            app.backchannel_logout_uri = uri
            app.redirect_uris = [REDIRECT]
            app.post_logout_redirect_uris = [SIGNED_OUT]
            app.first_party = True
    return harness


def client_ids(h: Harness) -> dict[str, tuple[str, str]]:
    """name -> (client_id, secret) of the two confidential applications that listen."""
    i = h.ids  # type: ignore[attr-defined]
    return {
        "Wiki": (i["client_id"], i["client_secret"]),
        "Batch": (i["service_id"], i["service_secret"]),
    }


@dataclass
class RelyingParty:
    """The applications' back-channel endpoints and their sessions (by ``sid``)."""

    h: Harness
    up: bool = True
    received: list[tuple[str, str]] = field(default_factory=list)  # (uri, logout token)
    sessions: dict[str, set[str]] = field(default_factory=dict)  # client_id -> live sids
    subjects: dict[str, str] = field(default_factory=dict)  # sid -> sub

    def sign_in(self, client_id: str, id_token: str) -> dict[str, Any]:
        claims = self.verify(id_token, client_id, "JWT")
        self.sessions.setdefault(client_id, set()).add(claims["sid"])
        self.subjects[claims["sid"]] = claims["sub"]
        return claims

    def verify(self, jws: str, client_id: str, typ: str) -> dict[str, Any]:
        """Signature by a key of the JWKS, ``iss``, ``aud``, ``typ`` (§2.6 steps 2-3)."""
        jwks = body(self.h.client.get("/.well-known/jwks.json"))["keys"]
        kid = pyjwt.get_unverified_header(jws)["kid"]
        key = pyjwt.PyJWK(next(k for k in jwks if k["kid"] == kid))
        assert pyjwt.get_unverified_header(jws)["typ"] == typ
        claims: dict[str, Any] = pyjwt.decode(
            jws,
            key.key,
            algorithms=["ES256"],
            audience=client_id,
            issuer=self.h.app.services.issuer,
            options={"verify_exp": False, "verify_iat": False},
        )
        return claims

    def post(self, uri: str, *, data: dict[str, str], **_: Any) -> Any:
        @dataclass
        class Answer:
            status_code: int

        if not self.up:
            return Answer(503)
        self.received.append((uri, data["logout_token"]))
        return Answer(200)

    def deliver(self, at: Any = None) -> list[dict[str, Any]]:
        """Deliver what is due; apply each token (§2.7) and return their claims."""
        before = len(self.received)
        deliver_due(self.h.app.services.db, at or self.h.clock(), post=self.post)
        applied = []
        for uri, logout_token in self.received[before:]:
            client_id = client_ids(self.h)["Wiki" if uri == WIKI_BC else "Batch"][0]
            claims = self.verify(logout_token, client_id, "logout+jwt")
            assert EVENT in claims["events"] and "nonce" not in claims
            assert {"iat", "exp", "jti", "sub"} <= set(claims)
            live = self.sessions.get(client_id, set())
            if "sid" in claims:
                live.discard(claims["sid"])
            else:  # §2.4: no sid, all the user's sessions
                live -= {s for s in live if self.subjects[s] == claims["sub"]}
            applied.append({**claims, "to": client_id})
        return applied


def browser_signs_in(h: Harness, browser: PassportClient) -> None:
    answer = browser.post("/Account/login", data={"username": "alice", "password": PASSWORD})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def tokens_for(
    h: Harness, browser: PassportClient, app: str = "Wiki", **extra: str
) -> dict[str, Any]:
    """An authorization code flow of ``app`` in ``browser``'s session, then the token
    response."""
    client_id, secret = client_ids(h)[app]
    response = authorize(
        h,
        browser,
        client_id=client_id,
        redirect_uri=REDIRECT,
        response_type="code",
        scope="openid offline_access",
        state="s",
        **extra,
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    if response.headers["Location"].startswith("/login?"):  # prompt=login: sign in again
        page = browser.get(response.headers["Location"])
        form = {**form_of(page), "username": "alice", "password": PASSWORD}
        response = browser.post("/login", data=form)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
    code = query(response)["code"]
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = browser.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return body(answer)


def refresh(h: Harness, app: str, refresh_token: str) -> dict[str, Any]:
    client_id, secret = client_ids(h)[app]
    return body(
        token(
            h,
            auth=False,
            grant_type="refresh_token",
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=secret,
        )
    )


def rp_logout(h: Harness, browser: PassportClient, id_token: str) -> None:
    """RP-Initiated Logout in ``browser``: the hint, the question, the click."""
    page = browser.get(
        "/logout?"
        + urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT, "state": "b"}
        )
    )
    done = browser.post("/logout", data=form_of(page))
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=b"


def wiki(h: Harness) -> str:
    return client_ids(h)["Wiki"][0]


def batch(h: Harness) -> str:
    return client_ids(h)["Batch"][0]


# -- §2.1 discovery ----------------------------------------------------------------------------


def test_discovery_announces_backchannel_logout_with_sessions(h: Harness) -> None:
    meta = body(h.client.get("/.well-known/openid-configuration"))
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    assert "sid" in meta["claims_supported"]
    assert not any(name.startswith("frontchannel") for name in meta)


# -- oidcc-backchannel-rp-initiated-logout -------------------------------------------------------


def test_oidcc_backchannel_rp_initiated_logout(h: Harness) -> None:
    """Sign in to Wiki, log out at Passport from Wiki: Wiki receives one valid logout
    token for that session, and its session ends."""
    rp = RelyingParty(h)
    browser_signs_in(h, h.client)
    issued = tokens_for(h, h.client)
    rp.sign_in(wiki(h), issued["id_token"])
    rp_logout(h, h.client, issued["id_token"])
    (claims,) = rp.deliver()
    assert claims["to"] == wiki(h)
    assert rp.sessions[wiki(h)] == set()
    assert claims["exp"] > claims["iat"]
    assert rp.deliver(h.clock() + timedelta(hours=1)) == []  # delivered once


# -- oidcc-backchannel-rp-initiated-logout: the token has sid ------------------------------------


def test_oidcc_backchannel_logout_token_has_sid(h: Harness) -> None:
    """§2.4: the token's ``sid`` is the one in every ID token of that session: the same
    for every client (Wiki and Batch), kept by a refresh, kept when the same user signs
    in again in that browser (prompt=login)."""
    rp = RelyingParty(h)
    browser_signs_in(h, h.client)
    at_wiki = tokens_for(h, h.client, "Wiki")
    # prompt=login in a signed-in browser: the sign-in page (a new cookie), then the code.
    before = h.client.get_cookie("passport_session")
    at_batch = tokens_for(h, h.client, "Batch", prompt="login")
    after = h.client.get_cookie("passport_session")
    assert before is not None and after is not None and before.value != after.value
    sid = rp.sign_in(wiki(h), at_wiki["id_token"])["sid"]
    assert rp.sign_in(batch(h), at_batch["id_token"])["sid"] == sid
    refreshed = refresh(h, "Wiki", at_wiki["refresh_token"])
    assert rp.verify(refreshed["id_token"], wiki(h), "JWT")["sid"] == sid
    assert isinstance(sid, str) and 16 <= len(sid) <= 32
    # Never the cookie or its hash.
    cookie = h.client.get_cookie("passport_session")
    assert cookie is not None and sid not in cookie.value
    assert sid not in hashlib.sha256(cookie.value.encode()).hexdigest()

    rp_logout(h, h.client, at_batch["id_token"])
    told = rp.deliver()
    assert sorted(c["to"] for c in told) == sorted([wiki(h), batch(h)])
    assert {c["sid"] for c in told} == {sid}
    assert rp.sessions == {wiki(h): set(), batch(h): set()}


# -- oidcc-backchannel-rp-initiated-logout: the token has sub ------------------------------------


def test_oidcc_backchannel_logout_token_has_sub(h: Harness) -> None:
    """§2.4: ``sub`` is the ID token's (the user, never their username)."""
    rp = RelyingParty(h)
    browser_signs_in(h, h.client)
    issued = tokens_for(h, h.client)
    sub = rp.sign_in(wiki(h), issued["id_token"])["sub"]
    rp_logout(h, h.client, issued["id_token"])
    (claims,) = rp.deliver()
    assert claims["sub"] == sub and "alice" not in json.dumps(claims)


# -- one logout token per client -----------------------------------------------------------------


def test_one_logout_token_per_client(h: Harness) -> None:
    """Three sign-ins of Wiki and a refresh in one session: one token for Wiki when it
    ends.  An application that was never signed in through it hears nothing."""
    rp = RelyingParty(h)
    browser_signs_in(h, h.client)
    first = tokens_for(h, h.client)
    tokens_for(h, h.client)
    tokens_for(h, h.client)
    refresh(h, "Wiki", first["refresh_token"])
    rp_logout(h, h.client, first["id_token"])
    told = rp.deliver()
    assert [c["to"] for c in told] == [wiki(h)]


def test_ending_all_sessions_sends_one_sub_token_per_client(h: Harness) -> None:
    """Logout-all (here: a password change) ends every session: each application that
    holds tokens for the user gets one token, with ``sub`` and no ``sid`` (§2.4: all the
    user's sessions at the RP), however many sessions it was signed in through."""
    rp = RelyingParty(h)
    other = h.new_client()
    for browser in (h.client, other):
        browser_signs_in(h, browser)
        rp.sign_in(wiki(h), tokens_for(h, browser, "Wiki")["id_token"])
    rp.sign_in(batch(h), tokens_for(h, other, "Batch")["id_token"])
    assert len(rp.sessions[wiki(h)]) == 2
    changed = h.client.post(
        "/Account/changePassword",
        data={"oldPassword": PASSWORD, "newPassword": "another long passphrase 7"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    told = rp.deliver()
    assert sorted(c["to"] for c in told) == sorted([wiki(h), batch(h)])
    assert all("sid" not in c for c in told)
    assert rp.sessions == {wiki(h): set(), batch(h): set()}


# -- a late token naming an old sid ends only that session ---------------------------------------


def test_a_late_logout_token_ends_only_the_session_it_names(h: Harness) -> None:
    """Alice signs in to Wiki in two browsers (two sessions, two sids).  She logs out in
    the first while Wiki's endpoint is down; the token reaches Wiki after retries, once
    the second session is in use.  It names the first session: Wiki ends that one and
    keeps the second (a token with ``sub`` alone would have ended both)."""
    rp = RelyingParty(h, up=False)
    first, second = h.client, h.new_client()
    browser_signs_in(h, first)
    old = tokens_for(h, first)
    old_sid = rp.sign_in(wiki(h), old["id_token"])["sid"]
    browser_signs_in(h, second)
    new_sid = rp.sign_in(wiki(h), tokens_for(h, second)["id_token"])["sid"]
    assert old_sid != new_sid

    rp_logout(h, first, old["id_token"])
    assert rp.deliver() == []  # Wiki is down
    h.clock.advance(minutes=5)
    tokens_for(h, second)  # the second session goes on meanwhile
    rp.up = True
    (late,) = rp.deliver()
    assert late["sid"] == old_sid
    assert rp.sessions[wiki(h)] == {new_sid}

    # The second session, when it ends, is told by its own sid.
    second.post("/Account/logout")
    (last,) = rp.deliver()
    assert last["sid"] == new_sid and rp.sessions[wiki(h)] == set()


def test_ending_a_session_from_the_account_page_names_it(h: Harness) -> None:
    """Account/endSession ends another of the user's sessions: its applications are told
    with its sid; this browser's session and its applications are not."""
    rp = RelyingParty(h)
    here, there = h.client, h.new_client()
    for browser in (here, there):
        browser_signs_in(h, browser)
    here_sid = rp.sign_in(wiki(h), tokens_for(h, here)["id_token"])["sid"]
    there_sid = rp.sign_in(batch(h), tokens_for(h, there, "Batch")["id_token"])["sid"]
    listed = body(here.get("/Account/sessions"))["Data"]["Sessions"]
    other_id = next(s["ID"] for s in listed if not s.get("Current"))
    assert here.post("/Account/endSession", data={"id": other_id}).status_code == 200
    (told,) = rp.deliver()
    assert told["to"] == batch(h) and told["sid"] == there_sid
    assert rp.sessions == {wiki(h): {here_sid}, batch(h): set()}


def test_tokens_from_before_sessions_had_a_sid_get_a_sub_token(h: Harness) -> None:
    """Families issued before migration 0010 have no sid: Passport cannot tell which of
    the application's sessions they are, and tells it to end all of the user's."""
    rp = RelyingParty(h)
    browser_signs_in(h, h.client)
    issued = tokens_for(h, h.client)
    with h.app.services.db.session(write=True) as db, db.begin():
        db.execute(update(OAuthToken).values(sid=None))
    rp_logout(h, h.client, issued["id_token"])
    (told,) = rp.deliver()
    assert "sid" not in told and told["sub"].startswith("user-")


def test_codes_of_an_ended_session_are_not_redeemed(h: Harness) -> None:
    """A code issued in a session that then ends cannot sign its application in through
    that session afterwards (it was not told of the logout: it held no tokens yet)."""
    browser_signs_in(h, h.client)
    first_party(h)
    client_id, secret = client_ids(h)["Wiki"]
    response = authorize(
        h,
        client_id=client_id,
        redirect_uri=REDIRECT,
        response_type="code",
        scope="openid",
        state="s",
    )
    code = query(response)["code"]
    assert h.client.post("/Account/logout").status_code == 200
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = h.client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 400 and body(answer)["error"] == "invalid_grant"
