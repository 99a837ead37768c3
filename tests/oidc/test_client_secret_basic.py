"""``client_secret_basic`` as RFC 6749 §2.3.1 spells it: the client id and the secret are
each ``application/x-www-form-urlencoded`` before they are joined with ``:`` and
base64-encoded.

openid-client and oauth4webapi encode them like ``encodeURIComponent`` and then escape
``-_.!~*'()`` too and write a space as ``+`` (:func:`form_encode`), so a Passport
secret — ``secrets.token_urlsafe``, full of ``-`` and ``_`` — arrives as ``%2D`` and
``%5F``.  Before the fix Passport compared that spelling with the secret and answered
``invalid_client``.  Clients that send the credentials unencoded keep working as long as
they hold no ``%`` or ``+`` (which Passport never issues).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from oidc_support import body
from passport.services import clients
from passport.services.applications import find_by_name

from support import Harness

# (client id, secret): what each exercises of the encoding.
CREDENTIALS = [
    pytest.param("batch-job_1.v2~x", "s3-cr_et.~tilde-" + "x" * 20, id="unreserved"),
    pytest.param("svc_9", "a+b%2Fc d=e&f/g?h#i", id="plus-percent-space-reserved"),
    pytest.param("client:one", "pa:ss:word", id="colons"),
    pytest.param("ünï-cødé", "sécrét-日本語", id="non-ascii"),
]


def form_encode(value: str) -> str:
    """How openid-client / oauth4webapi encode a client id or secret for the Basic header
    (their ``formUrlEncode``: ``encodeURIComponent``, then ``-_.!~*'()`` escaped too and
    ``%20`` written ``+``): every byte but an ASCII letter or digit is ``%XX``."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and char.isalnum():
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def basic_header(client_id: str, secret: str, *, encode: bool = True) -> dict[str, str]:
    if encode:
        client_id, secret = form_encode(client_id), form_encode(secret)
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def give_credentials(h: Harness, client_id: str, secret: str, name: str = "Batch") -> None:
    """Set an application's client id and secret as an administrator could not (Passport
    issues ``token_urlsafe`` ones): to reach every character the encoding touches."""
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, name)
        assert app is not None
        app.client_id = client_id
        app.secret_hash = clients.hash_secret(secret)


def client_credentials(h: Harness, headers: dict[str, str]) -> Any:
    return h.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=headers
    )


# -- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(("client_id", "secret"), CREDENTIALS)
def test_parse_basic_form_decodes_both_parts(client_id: str, secret: str) -> None:
    header = basic_header(client_id, secret)["Authorization"]
    assert clients.parse_basic(header) == clients.BasicCredentials(client_id, secret)


def test_the_header_is_split_before_decoding() -> None:
    """An encoded ``:`` (``%3A``) in the id is part of the id, not the separator."""
    raw = base64.b64encode(b"a%3Ab:c%3Ad").decode()
    assert clients.parse_basic(f"Basic {raw}") == clients.BasicCredentials("a:b", "c:d")


@pytest.mark.parametrize(
    "raw",
    [
        b"id:sec%zzret",  # not two hex digits
        b"id:secret%4",  # cut short
        b"id%:secret",
        b"id:%FF%FE",  # decodes to bytes that are not UTF-8
        b"id:%C3",  # half a UTF-8 sequence
        b"%:secret",
        b":secret",
        b"id:",
        b"id",
    ],
)
def test_malformed_credentials_authenticate_nobody(raw: bytes) -> None:
    assert clients.parse_basic("Basic " + base64.b64encode(raw).decode()) is None


def test_unencoded_passport_credentials_read_as_they_are() -> None:
    """Lenient clients: a ``token_urlsafe`` id and secret have no ``%`` or ``+``, so
    decoding leaves them as they are."""
    client_id, secret = clients.new_client_id() + "-_", clients.new_secret() + "_-"
    header = basic_header(client_id, secret, encode=False)["Authorization"]
    assert clients.parse_basic(header) == clients.BasicCredentials(client_id, secret)


# -- the endpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(("client_id", "secret"), CREDENTIALS)
def test_token_introspection_and_revocation_accept_encoded_credentials(
    h: Harness, client_id: str, secret: str
) -> None:
    give_credentials(h, client_id, secret)
    headers = basic_header(client_id, secret)
    issued = client_credentials(h, headers)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    access = body(issued)["access_token"]

    seen = h.client.post("/oauth2/introspect", data={"token": access}, headers=headers)
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert body(seen)["active"] is True and body(seen)["client_id"] == client_id

    revoked = h.client.post("/oauth2/revoke", data={"token": access}, headers=headers)
    assert revoked.status_code == 200, revoked.get_data(as_text=True)
    after = h.client.post("/oauth2/introspect", data={"token": access}, headers=headers)
    assert body(after) == {"active": False}


def test_issued_credentials_work_encoded_and_unencoded(h: Harness) -> None:
    """The secret Passport issued, with its ``-`` and ``_``: as oauth4webapi sends it
    (``%2D``, ``%5F``) and as a lenient client sends it (raw)."""
    client_id = clients.new_client_id().replace("A", "-") + "_"
    secret = clients.new_secret().replace("A", "_") + "-"
    give_credentials(h, client_id, secret)
    for encode in (True, False):
        answer = client_credentials(h, basic_header(client_id, secret, encode=encode))
        assert answer.status_code == 200, (encode, answer.get_data(as_text=True))


@pytest.mark.parametrize(
    ("sent_id", "sent_secret"),
    [
        ("svc_9", "a+b%2Fc d=e&f/g?h#i"),  # unencoded: "+" reads as a space, "%2F" as "/"
        ("svc_9", "a%2Bb%252Fc+d%3De%26f%2Fg%3Fh%23i%"),  # a stray "%": malformed
        ("svc%5F9", "a%2Bb%252Fc+d%3De%26f%2Fg%3Fh%23"),  # the secret cut short
    ],
)
def test_what_does_not_decode_to_the_secret_is_invalid_client(
    h: Harness, sent_id: str, sent_secret: str
) -> None:
    """The cost of decoding: a secret holding ``+`` or ``%``, sent unencoded, is another
    secret (RFC 6749 §2.3.1 requires the encoding); a malformed escape names nobody."""
    give_credentials(h, "svc_9", "a+b%2Fc d=e&f/g?h#i")
    assert client_credentials(h, basic_header("svc_9", "a+b%2Fc d=e&f/g?h#i")).status_code == 200
    headers = basic_header(sent_id, sent_secret, encode=False)
    for path, data in (
        ("/oauth2/token", {"grant_type": "client_credentials"}),
        ("/oauth2/introspect", {"token": "x"}),
        ("/oauth2/revoke", {"token": "x"}),
    ):
        refused = h.client.post(path, data=data, headers=headers)
        assert refused.status_code == 401, (path, refused.get_data(as_text=True))
        assert body(refused)["error"] == "invalid_client"
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="passport"'


def test_the_body_may_not_name_another_client_than_the_decoded_header(h: Harness) -> None:
    """RFC 6749 §2.3: one method per request; the header's id is compared decoded."""
    give_credentials(h, "batch-job_1", "s3-cr_et")
    headers = basic_header("batch-job_1", "s3-cr_et")
    same = h.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "batch-job_1"},
        headers=headers,
    )
    assert same.status_code == 200, same.get_data(as_text=True)
    other = h.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "batch%2Djob%5F1"},
        headers=headers,
    )
    assert other.status_code == 400 and body(other)["error"] == "invalid_request"
