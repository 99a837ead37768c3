"""One way to say each thing: a client authenticates once (RFC 6749 §2.3), a bearer
token travels once (RFC 6750 §2), and no parameter carries a NUL.

Found by an outside review: with Basic credentials *and* a body naming another client
(or a wrong secret), the header silently won; an access token in the header and the
body was accepted; ``state=a%00b`` was echoed back.
"""

from __future__ import annotations

from typing import Any

from oidc_support import REDIRECT
from oidc_support import authorize
from oidc_support import body
from oidc_support import exchange
from oidc_support import first_party
from oidc_support import get_code
from oidc_support import ids
from oidc_support import token

from support import Harness

PASSWORD = "correct horse battery staple"


def test_basic_credentials_and_a_secret_in_the_body_are_refused(h: Harness) -> None:
    refused = token(h, grant_type="client_credentials", client_secret="wrong")
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_request"
    same = token(h, grant_type="client_credentials", client_secret=ids(h)["client_secret"])
    assert same.status_code == 400


def test_basic_credentials_and_a_body_naming_another_client_are_refused(h: Harness) -> None:
    refused = token(h, grant_type="client_credentials", client_id="someone-else")
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_request"
    # Naming the same client in the body is the same method, and allowed (RFC 6749 §3.2.1).
    named = token(h, grant_type="client_credentials", client_id=ids(h)["client_id"])
    assert named.status_code == 200, named.get_data(as_text=True)


def test_an_access_token_in_the_header_and_the_body_is_refused(h: Harness) -> None:
    issued = body(exchange(h, get_code(h)))
    access = issued["access_token"]
    header = {"Authorization": f"Bearer {access}"}
    both = h.client.post("/oauth2/userinfo", data={"access_token": access}, headers=header)
    assert both.status_code == 400
    assert body(both)["error"] == "invalid_request"
    assert h.client.post("/oauth2/userinfo", headers=header).status_code == 200
    assert h.client.post("/oauth2/userinfo", data={"access_token": access}).status_code == 200


def test_a_nul_in_an_authorization_parameter_is_refused(h: Harness) -> None:
    h.login("alice", PASSWORD)
    first_party(h)
    response: Any = authorize(
        h,
        client_id=ids(h)["client_id"],
        redirect_uri=REDIRECT,
        response_type="code",
        scope="openid",
        state="a\x00b",
    )
    assert response.status_code == 400
    assert "code=" not in response.headers.get("Location", "")
