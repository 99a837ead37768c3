"""OpenID Connect RP-Initiated Logout 1.0 at ``/logout``, one test per module of the
OpenID Foundation conformance suite's OP plan (``oidcc-rp-initiated-logout*``), played
in process with the browser's part done by the test client.

What each module checks, and the section it stands for:

* §2 ``id_token_hint``: an ID token Passport issued (signed by one of its keys, current
  or retired; ``iss`` Passport's; ``typ: JWT``), whose ``aud`` is the ``client_id`` when
  both are given; expired is fine.  Anything else is refused (400) and nobody is
  signed out.
* §3 ``post_logout_redirect_uri``: returned to only when registered (exact match) as
  one of the ``post_logout_redirect_uris`` of the client that the hint or ``client_id``
  names — a login redirect URI is not one (§2: registered "for that purpose") — with
  ``state`` when one was given, keeping the URI's own query; otherwise Passport's own
  "signed out" page (§4: no redirect when validation fails).  A user already signed
  out is returned all the same.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from oidc_support import REDIRECT
from oidc_support import SIGNED_OUT
from oidc_support import body
from oidc_support import exchange
from oidc_support import form_of
from oidc_support import get_code
from oidc_support import ids
from passport.services.applications import find_by_name

from support import Harness

LOGGED_OUT = "http://127.0.0.1:9/logged-out?from=passport"


def id_token(h: Harness, **extra: str) -> str:
    token: str = body(exchange(h, get_code(h, **extra)))["id_token"]
    return token


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))  # type: ignore[no-any-return]


def logout(h: Harness, **params: str) -> Any:
    return h.client.get("/logout?" + urlencode(params))


def confirm(h: Harness, page: Any) -> Any:
    """The user clicks "Sign out" on the page ``/logout`` showed."""
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    assert 'action="/logout"' in page.get_data(as_text=True)
    return h.client.post("/logout", data=form_of(page))


def signed_in(h: Harness) -> bool:
    return bool(body(h.client.get("/Account/status"))["LoggedIn"])


def signed_out_page(answer: Any) -> bool:
    return (
        answer.status_code == 200
        and "Location" not in answer.headers
        and "You are signed out" in answer.get_data(as_text=True)
    )


def register_logged_out_uri(h: Harness, uri: str = LOGGED_OUT) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Wiki")
        assert app is not None
        app.post_logout_redirect_uris = [*app.post_logout_redirect_uris, uri]


# -- oidcc-rp-initiated-logout -----------------------------------------------------------------


def test_oidcc_rp_initiated_logout(h: Harness) -> None:
    """The happy path: hint, registered URI, state; the user confirms, is signed out and
    sent back with ``state``.  The hint's ``sid`` is the session that ends."""
    hint = id_token(h)
    assert claims_of(hint)["sid"]
    page = logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="bye")
    assert signed_in(h)  # a GET alone signs nobody out
    done = confirm(h, page)
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=bye"
    assert not signed_in(h)


def test_oidcc_rp_initiated_logout_user_already_signed_out(h: Harness) -> None:
    """§2: logout is idempotent; a signed-out user goes straight back, with ``state``."""
    hint = id_token(h)
    confirm(h, logout(h))
    assert not signed_in(h)
    answer = logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="again")
    assert answer.status_code == 302 and answer.headers["Location"] == SIGNED_OUT + "?state=again"


def test_oidcc_rp_initiated_logout_expired_hint(h: Harness) -> None:
    """§2: "the OP need not check exp": an expired ID token still names the client."""
    hint = id_token(h)
    h.clock.advance(minutes=20)  # the ID token lives 15 minutes, the session 30 idle
    assert signed_in(h)
    done = confirm(h, logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="s"))
    assert done.headers["Location"] == SIGNED_OUT + "?state=s"


def test_oidcc_rp_initiated_logout_hint_signed_by_a_retired_key(h: Harness) -> None:
    """A hint signed by a key that no longer signs is still Passport's."""
    hint = id_token(h)
    h.app.services.keys.rotate(h.clock())
    h.app.services.keys._cache = (0.0, [])  # the other processes' view, without waiting
    assert claims_of(id_token(h))["sub"] == claims_of(hint)["sub"]
    done = confirm(h, logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT))
    assert done.headers["Location"] == SIGNED_OUT


# -- oidcc-rp-initiated-logout-bad-post-logout-redirect-uri ------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/",
        SIGNED_OUT + "?extra=1",  # not an exact match of a registered URI
        SIGNED_OUT.upper(),
        SIGNED_OUT + "/",
        REDIRECT,  # Wiki's login redirect URI, not registered for logout (§2)
    ],
)
def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(h: Harness, uri: str) -> None:
    """§3, §4: an unregistered URI is never redirected to, neither before nor after the
    sign-out; the user can still sign out, and lands on Passport's own page."""
    hint = id_token(h)
    page = logout(h, id_token_hint=hint, post_logout_redirect_uri=uri, state="x")
    assert page.status_code == 200 and "Location" not in page.headers
    html = page.get_data(as_text=True)
    assert "has not registered" in html and 'name="post_logout_redirect_uri" value=""' in html
    assert signed_out_page(confirm(h, page))
    assert not signed_in(h)
    # Already signed out: not redirected there either.
    assert signed_out_page(logout(h, id_token_hint=hint, post_logout_redirect_uri=uri))


def test_login_redirect_uri_is_not_a_post_logout_redirect_uri(h: Harness) -> None:
    """§2: "The OP MUST NOT perform post-logout redirection to a URI not registered for
    that purpose".  A link naming Wiki and its login callback, with a ``state`` of the
    link author's choosing, sends a visitor who is not signed in to Passport's page, not
    to the callback; once registered as a post-logout URI it is returned to."""
    wiki = ids(h)["client_id"]
    link = {"client_id": wiki, "post_logout_redirect_uri": REDIRECT, "state": "attacker"}
    assert not signed_in(h)
    answer = logout(h, **link)
    assert signed_out_page(answer)
    assert "has not registered" in answer.get_data(as_text=True)
    hint = id_token(h)  # signed in, with a hint: refused all the same
    page = logout(h, id_token_hint=hint, post_logout_redirect_uri=REDIRECT, state="s")
    assert 'name="post_logout_redirect_uri" value=""' in page.get_data(as_text=True)
    assert signed_out_page(confirm(h, page))
    register_logged_out_uri(h, REDIRECT)
    answer = logout(h, **link)
    assert answer.status_code == 302 and answer.headers["Location"] == REDIRECT + "?state=attacker"


def test_oidcc_rp_initiated_logout_uri_of_another_client(h: Harness) -> None:
    """A URI registered by another client is not this client's (RFC 6749 §3.1.2 spirit)."""
    id_token(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        spa = find_by_name(db, "Spa")
        assert spa is not None
        spa.post_logout_redirect_uris = [LOGGED_OUT]
    answer = logout(h, client_id=ids(h)["client_id"], post_logout_redirect_uri=LOGGED_OUT)
    assert signed_out_page(confirm(h, answer))


def test_oidcc_rp_initiated_logout_posted_form_is_checked_again(h: Harness) -> None:
    """The confirmation form's fields are the browser's to change: the POST checks the
    return address again, it is never taken on trust."""
    id_token(h)
    page = logout(h, client_id=ids(h)["client_id"], post_logout_redirect_uri=SIGNED_OUT)
    form = {**form_of(page), "post_logout_redirect_uri": "https://evil.example/"}
    assert signed_out_page(h.client.post("/logout", data=form))


# -- oidcc-rp-initiated-logout-no-state ----------------------------------------------------------


def test_oidcc_rp_initiated_logout_no_state(h: Harness) -> None:
    """§3: without ``state``, the URI exactly as registered (no empty ``state=``)."""
    hint = id_token(h)
    done = confirm(h, logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT))
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT


# -- oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri ---------------------------


def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(h: Harness) -> None:
    """§3: a registered URI with a query keeps it; ``state`` is added to it."""
    register_logged_out_uri(h)
    hint = id_token(h)
    done = confirm(h, logout(h, id_token_hint=hint, post_logout_redirect_uri=LOGGED_OUT, state="q"))
    assert done.status_code == 302 and done.headers["Location"] == LOGGED_OUT + "&state=q"


# -- oidcc-rp-initiated-logout-modified-id-token-hint --------------------------------------------


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def modified(hint: str) -> list[str]:
    header, claims, signature = hint.split(".")
    changed = {**claims_of(hint), "sub": "user-999"}
    return [
        f"{header}.{_b64(changed)}.{signature}",  # payload changed, signature kept
        f"{header}.{claims}.{signature[:-4]}AAAA",  # signature changed
        f"{header}.{claims}.",  # signature removed
    ]


def test_oidcc_rp_initiated_logout_modified_id_token_hint(h: Harness) -> None:
    """§2, §4: a hint whose signature does not verify is an error: no redirect, and the
    user is still signed in."""
    hint = id_token(h)
    for forged in modified(hint):
        answer = logout(h, id_token_hint=forged, post_logout_redirect_uri=SIGNED_OUT, state="s")
        assert answer.status_code == 400 and "Location" not in answer.headers, forged
        posted = h.client.post(
            "/logout",
            data={
                **form_of(logout(h)),
                "id_token_hint": forged,
                "post_logout_redirect_uri": SIGNED_OUT,
            },
        )
        assert posted.status_code == 400 and "Location" not in posted.headers
    assert signed_in(h)


# -- oidcc-rp-initiated-logout-bad-id-token-hint -------------------------------------------------


def bad_hints(h: Harness, hint: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Well-formed JWTs that are not an ID token of Passport's for this request, and the
    other parameters sent with each."""
    claims = claims_of(hint)
    now = h.clock()
    ours = h.app.services.tokens()
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    ours_kid = json.loads(base64.urlsafe_b64decode(hint.split(".")[0] + "=="))["kid"]
    wiki, spa = ids(h)["client_id"], ids(h)["public_client_id"]
    to_uri = {"post_logout_redirect_uri": SIGNED_OUT}
    return {
        # Signed with Passport's own key, but another issuer's claims.
        "wrong issuer": (ours.sign("JWT", {**claims, "iss": "https://evil.example"}, now), to_uri),
        # Passport's, but issued to Wiki: Spa cannot present it.
        "audience is not client_id": (hint, {"client_id": spa, **to_uri}),
        # Passport's claims, signed by someone else's key (under their kid, and ours).
        "other key": (
            jwt.encode({"alg": "ES256", "kid": stranger.kid, "typ": "JWT"}, claims, stranger),
            to_uri,
        ),
        "other key under our kid": (
            jwt.encode({"alg": "ES256", "kid": ours_kid, "typ": "JWT"}, claims, stranger),
            to_uri,
        ),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", to_uri),
        "alg none under our kid": (
            f"{_b64({'alg': 'none', 'kid': ours_kid, 'typ': 'JWT'})}.{_b64(claims)}.",
            to_uri,
        ),
        # Passport's signature on something that is not an ID token.
        "access token": (body(exchange(h, get_code(h)))["access_token"], to_uri),
        "logout token": (
            ours.sign("logout+jwt", {**claims, "events": {"x": {}}}, now),
            to_uri,
        ),
        "audience list": (ours.sign("JWT", {**claims, "aud": [wiki, spa]}, now), to_uri),
        "not a JWT": ("not-a-jwt", to_uri),
    }


def test_oidcc_rp_initiated_logout_bad_id_token_hint(h: Harness) -> None:
    """§2: "the OP MUST validate that it was the issuer of the ID Token"; one that is
    not Passport's, or was issued to another client than ``client_id``, is refused."""
    hint = id_token(h)
    for name, (bad, params) in bad_hints(h, hint).items():
        answer = logout(h, id_token_hint=bad, state="s", **params)
        assert answer.status_code == 400, name
        assert "Location" not in answer.headers, name
    assert signed_in(h)
    # The genuine hint, for comparison, is accepted.
    assert logout(h, id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT).status_code == 200


def test_oidcc_rp_initiated_logout_bad_id_token_hint_when_signed_out(h: Harness) -> None:
    """Refused also when nobody is signed in: a forged hint never earns a redirect."""
    hint = id_token(h)
    hints = bad_hints(h, hint)
    confirm(h, logout(h))
    for name, (bad, params) in hints.items():
        answer = logout(h, id_token_hint=bad, state="s", **params)
        assert answer.status_code == 400 and "Location" not in answer.headers, name


# -- oidcc-rp-initiated-logout-no-id-token-hint --------------------------------------------------


def test_oidcc_rp_initiated_logout_no_id_token_hint(h: Harness) -> None:
    """§2: without a hint the OP MUST ask the user (it always does); ``client_id`` names
    the client whose registered URI to return to."""
    id_token(h)
    page = logout(h, client_id=ids(h)["client_id"], post_logout_redirect_uri=SIGNED_OUT, state="n")
    assert "alice" in page.get_data(as_text=True)
    done = confirm(h, page)
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=n"


def test_oidcc_rp_initiated_logout_no_id_token_hint_nor_client_id(h: Harness) -> None:
    """Neither hint nor ``client_id``: no client is named, so no URI can be registered
    by it: Passport's own page."""
    id_token(h)
    page = logout(h, post_logout_redirect_uri=SIGNED_OUT, state="n")
    assert signed_out_page(confirm(h, page))
    assert signed_out_page(logout(h, post_logout_redirect_uri=SIGNED_OUT, state="n"))


# -- oidcc-rp-initiated-logout-no-post-logout-redirect-uri ---------------------------------------


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(h: Harness) -> None:
    """§3: no URI, no redirect: Passport's own page after the sign-out."""
    hint = id_token(h)
    assert signed_out_page(confirm(h, logout(h, id_token_hint=hint, state="s")))
    assert not signed_in(h)


# -- oidcc-rp-initiated-logout-only-state --------------------------------------------------------


def test_oidcc_rp_initiated_logout_only_state(h: Harness) -> None:
    """``state`` alone means nothing to return to."""
    id_token(h)
    assert signed_out_page(confirm(h, logout(h, state="only")))
    assert not signed_in(h)


# -- oidcc-rp-initiated-logout-no-params ---------------------------------------------------------


def test_oidcc_rp_initiated_logout_no_params(h: Harness) -> None:
    """A bare ``/logout``: the question, then Passport's page; signed out, nobody was
    redirected."""
    id_token(h)
    page = logout(h)
    assert signed_in(h)
    assert signed_out_page(confirm(h, page))
    assert not signed_in(h)
    assert signed_out_page(logout(h))


def test_signed_out_page_is_not_a_sign_out_by_link(h: Harness) -> None:
    """The sign-out itself needs the form's CSRF token: a link or a cross-site form cannot
    sign the user out (§2: the OP asks) — an application's POST gets the question, one
    that brings a ``csrf`` field not this browser's is refused."""
    hint = id_token(h)
    asked = h.client.post("/logout", data={"id_token_hint": hint}, headers=CROSS_SITE)
    assert asked.status_code == 200 and "Sign out of Passport" in asked.get_data(as_text=True)
    for csrf in ("", "x" * 43, form_of(logout(h))["csrf"]):
        forged = h.client.post(
            "/logout", data={"id_token_hint": hint, "csrf": csrf}, headers=CROSS_SITE
        )
        assert forged.status_code == 403, csrf
    assert signed_in(h)


# -- the same requests by POST (§2: "The OP MUST support the use of the HTTP GET and POST
# methods"), as an application's cross-site form sends them ------------------------------

CROSS_SITE = {
    "Origin": "http://127.0.0.1:9",
    "Content-Type": "application/x-www-form-urlencoded",
}


def logout_by_post(h: Harness, **params: str) -> Any:
    """The application's page posts the logout request (form-serialized, §2), no token."""
    return h.client.post("/logout", data=urlencode(params), headers=CROSS_SITE)


def test_oidcc_rp_initiated_logout_post(h: Harness) -> None:
    """§2: the end_session_endpoint takes POST as it takes GET.  Signed in: the same
    question as the GET asks (the same form, the same hidden fields), nobody signed
    out until the user confirms; then back to the application with ``state``."""
    hint = id_token(h)
    params = {
        "id_token_hint": hint,
        "client_id": ids(h)["client_id"],
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "bye",
        "ui_locales": "fr-CA fr en",
    }
    page = logout_by_post(h, **params)
    assert page.status_code == 200 and "Location" not in page.headers
    assert form_of(page) == form_of(logout(h, **params))
    assert signed_in(h)
    done = confirm(h, page)
    assert done.status_code == 302 and done.headers["Location"] == SIGNED_OUT + "?state=bye"
    assert not signed_in(h)


def test_oidcc_rp_initiated_logout_post_user_already_signed_out(h: Harness) -> None:
    """§2: a POST that shows no session goes on as the GET (303): a cross-site POST
    leaves the ``SameSite=Lax`` session cookie behind, the GET carries it.  Signed out
    indeed, the GET returns to the application with ``state``, as for a GET."""
    hint = id_token(h)
    confirm(h, logout(h))
    params = {"id_token_hint": hint, "post_logout_redirect_uri": SIGNED_OUT, "state": "again"}
    answer = logout_by_post(h, **params, ui_locales="en", unknown="dropped")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/logout?" + urlencode({**params, "ui_locales": "en"})
    back = h.client.get(answer.headers["Location"])
    assert back.status_code == 302 and back.headers["Location"] == SIGNED_OUT + "?state=again"
    assert logout_by_post(h).headers["Location"] == "/logout"
    assert signed_out_page(h.client.get("/logout"))


def test_oidcc_rp_initiated_logout_post_is_checked_as_the_get(h: Harness) -> None:
    """The rules of the GET: a hint that is not Passport's is refused (400, no
    redirect, nothing handed on); an unregistered URI is not returned to."""
    hint = id_token(h)
    for forged in modified(hint):
        answer = logout_by_post(h, id_token_hint=forged, post_logout_redirect_uri=SIGNED_OUT)
        assert answer.status_code == 400 and "Location" not in answer.headers, forged
    page = logout_by_post(h, id_token_hint=hint, post_logout_redirect_uri=REDIRECT, state="x")
    html = page.get_data(as_text=True)
    assert "has not registered" in html and 'name="post_logout_redirect_uri" value=""' in html
    assert signed_in(h)
