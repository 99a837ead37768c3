"""A browser's part in multi-factor sign-in, over the werkzeug test client: the sign-in
form, the second step (``/login/verify``, ``/login/enrol``, ``/login/continue``), the
account page's factor forms, with the software authenticator of
:mod:`webauthn_support` and authenticator-app codes from pyotp at the harness's clock."""

from __future__ import annotations

import json
import re
from typing import Any

import pyotp
from sqlalchemy import text

from webauthn_support import SoftAuthenticator

from support import STRONG
from support import Harness
from support import PassportClient

STEP_COOKIE = "passport_step"
SESSION_COOKIE = "passport_session"
SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
CODES = re.compile(r"<li><code>([a-z0-9-]+)</code></li>")


def csrf(page: Any) -> str:
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def text_of(response: Any) -> str:
    return str(response.get_data(as_text=True))


FORM = re.compile(r"<form\b.*?</form>", re.S)


def form_fields(page: Any, marker: str = "") -> dict[str, str]:
    """The hidden fields of the page's first form that contains ``marker``, as a
    browser posts them."""
    from oidc_support import hidden_fields

    for form in FORM.findall(text_of(page)):
        if marker in form:
            return hidden_fields(form)
    raise AssertionError(f"no form with {marker!r}: {text_of(page)[:500]}")


def token_of(client: PassportClient, path: str = "/login") -> str:
    """This browser's CSRF token, from a page that carries a form."""
    page = client.get(path)
    assert page.status_code == 200, text_of(page)[:300]
    return csrf(page)


def cookie(client: PassportClient, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found is not None else None


def status(client: PassportClient) -> dict[str, Any]:
    """``Account/status``: ``LoggedIn``, and the ``User``, ``Amr`` and ``Acr`` of ``Data``."""
    answer = client.get("/Account/status")
    assert answer.status_code == 200
    return json.loads(text_of(answer))  # type: ignore[no-any-return]


def signed_in(client: PassportClient) -> bool:
    return bool(status(client)["LoggedIn"])


def amr(client: PassportClient) -> list[str]:
    data = status(client)
    assert data["LoggedIn"], data
    return list(data["Data"]["Amr"])


def password_step(
    client: PassportClient, username: str = "alice", password: str = STRONG, **extra: str
) -> Any:
    """The sign-in form's post with a password (a fresh CSRF token from ``/login``)."""
    token = token_of(client)
    return client.post(
        "/login",
        data={"csrf": token, "username": username, "password": password, **extra},
    )


def page_sign_in(client: PassportClient, username: str = "alice") -> None:
    """A sign-in by password that owes nothing more."""
    answer = password_step(client, username, next="/account")
    assert answer.status_code == 302, text_of(answer)[:500]
    assert answer.headers["Location"] == "/account", answer.headers["Location"]


def fresh_code(h: Harness, secret: str) -> str:
    """A code of the next time step (a code is used once: RFC 6238 §5.2)."""
    h.clock.advance(seconds=30)
    return pyotp.TOTP(secret).at(h.clock())


def authenticator(h: Harness) -> SoftAuthenticator:
    return SoftAuthenticator(origin=h.settings.relying_party_origins[0])


def options(client: PassportClient, purpose: str, token: str, **extra: str) -> Any:
    return client.post("/webauthn/options", data={"csrf": token, "purpose": purpose, **extra})


# -- the account page ----------------------------------------------------------------------


def account_token(client: PassportClient) -> str:
    page = client.get("/account")
    assert page.status_code == 200, page.headers.get("Location")
    return csrf(page)


def account_post(client: PassportClient, action: str, **data: str) -> Any:
    return client.post("/account", data={"csrf": account_token(client), "action": action, **data})


def enrol_totp(h: Harness, client: PassportClient) -> tuple[str, list[str]]:
    """Add an authenticator app on the account page of a signed-in ``client``: its secret,
    and the recovery codes shown with a first factor (else [])."""
    started = account_post(client, "totp-start")
    assert started.status_code == 200, text_of(started)[:500]
    found = SECRET.search(text_of(started))
    assert found is not None, text_of(started)[:1000]
    secret = found.group(1)
    confirmed = account_post(client, "totp-confirm", code=fresh_code(h, secret))
    assert "authenticator app was added" in text_of(confirmed), text_of(confirmed)[:1000]
    return secret, CODES.findall(text_of(confirmed))


def enrol_passkey(
    h: Harness, client: PassportClient, device: SoftAuthenticator, name: str = "Key"
) -> Any:
    """Add a passkey on the account page of a signed-in ``client``."""
    token = account_token(client)
    challenge = options(client, "register", token)
    assert challenge.status_code == 200, text_of(challenge)
    added = client.post(
        "/account",
        data={
            "csrf": token,
            "action": "passkey-add",
            "credential": device.create(text_of(challenge)),
            "name": name,
        },
    )
    assert "Your passkey was added" in text_of(added), text_of(added)[:1000]
    return added


def user_with_totp(h: Harness, username: str = "alice") -> tuple[str, list[str]]:
    """``username`` (registered if need be) with an authenticator app; signed out."""
    client = h.new_client()
    page_sign_in(client, username)
    secret, codes = enrol_totp(h, client)
    client.post("/Account/logout")
    return secret, codes


def user_with_passkey(h: Harness, username: str = "alice") -> SoftAuthenticator:
    client = h.new_client()
    page_sign_in(client, username)
    device = authenticator(h)
    enrol_passkey(h, client, device)
    client.post("/Account/logout")
    return device


def count(h: Harness, table: str, where: str = "") -> int:
    with h.app.services.db.session() as db:
        sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(db.execute(text(sql)).scalar_one())


def sessions(h: Harness) -> int:
    """Live login sessions, in whichever store the harness uses (database or Redis)."""
    return int(h.app.services.sessions.count_active(h.clock()))
