"""Addresses Passport itself calls, and addresses it names: back-channel logout URIs go
to public https hosts only (OpenID Connect Back-Channel Logout 1.0 §2.2; SSRF), unless
the operator allows private targets; no origin or URI may name port 0."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from passport.services import directory
from passport.storage.models import Application

from support import STRONG
from support import Harness
from support import PassportClient


def error(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))["ClientExceptions"][0]  # type: ignore[no-any-return]


def apps_writer(h: Harness) -> PassportClient:
    """A client signed in as an ``apps:write`` delegate (not an administrator)."""
    h.register("deployer")
    with h.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, "deployer")
        passport = db.get(Application, 1)
        assert user is not None and passport is not None
        for right in ("apps:write", "apps:read"):
            permission = directory.find_permission(db, passport, right)
            assert permission is not None
            directory.grant(db, permission, user=user)
    client = h.new_client()
    response = client.post("/Account/login", data={"username": "deployer", "password": STRONG})
    assert response.status_code == 200
    return client


def applications(h: Harness) -> int:
    with h.app.services.db.session() as db:
        return db.scalar(select(func.count()).select_from(Application)) or 0


PRIVATE_TARGETS = [
    "http://127.0.0.1:6379/",  # the report's example: http on loopback
    "https://127.0.0.1:6379/",
    "https://localhost/logout",
    "https://api.localhost/logout",
    "https://10.0.0.8/logout",
    "https://172.16.0.1/logout",
    "https://192.168.1.1/logout",
    "https://100.64.0.1/logout",  # shared address space (CGNAT)
    "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "https://0.0.0.0/logout",
    "https://[::1]/logout",
    "https://[fe80::1]/logout",
    "https://[fd00::1]/logout",
    "https://[::ffff:127.0.0.1]/logout",  # IPv4-mapped loopback
    "https://2130706433/logout",  # 127.0.0.1 as the resolver also reads it
    "https://127.1/logout",
    "https://0x7f.1/logout",
    "http://rp.example.com/logout",  # public, but not https
    # urlsplit reads the host after the last "@" (8.8.8.8); HTTP clients stop the authority
    # at the backslash and connect to 127.0.0.1:9443 (the second review's finding)
    "https://127.0.0.1:9443\\@8.8.8.8/",
    "https://127.0.0.1:9443\\@rp.example.com/",
    "https://[::127.0.0.1]/logout",  # IPv4-compatible
    "https://[::ffff:0:127.0.0.1]/logout",  # IPv4-translated
]


@pytest.mark.parametrize("uri", PRIVATE_TARGETS)
def test_backchannel_uris_to_private_targets_are_refused(harness: Harness, uri: str) -> None:
    client = apps_writer(harness)
    before = applications(harness)
    created = client.post(
        "/Applications/create", data={"name": "Wiki", "backchannelLogoutUri": uri}
    )
    assert created.status_code == 400, created.get_data(as_text=True)
    assert error(created)["Source"] == "backchannelLogoutUri"
    assert error(created)["Number"] == "3"
    assert applications(harness) == before
    assert client.post("/Applications/create", data={"name": "Blog"}).status_code == 200
    updated = client.post(
        "/Applications/update", data={"application": "Blog", "backchannelLogoutUri": uri}
    )
    assert updated.status_code == 400, updated.get_data(as_text=True)
    with harness.app.services.db.session() as db:
        blog = directory.find_application(db, "Blog")
        assert blog is not None and blog.backchannel_logout_uri is None


def test_a_public_https_backchannel_uri_is_accepted(harness: Harness) -> None:
    client = apps_writer(harness)
    created = client.post(
        "/Applications/create",
        data={"name": "Wiki", "backchannelLogoutUri": "https://wiki.example.com:8443/bc?x=1"},
    )
    assert created.status_code == 200, created.get_data(as_text=True)


def test_the_operator_may_allow_private_targets(factory: Any) -> None:
    """``PASSPORT_BACKCHANNEL_ALLOW_PRIVATE=true``: the README's example application."""
    h: Harness = factory("sqlite", backchannel_allow_private=True)
    client = apps_writer(h)
    created = client.post(
        "/Applications/create",
        data={
            "name": "Example",
            "backchannelLogoutUri": "http://127.0.0.1:5000/backchannel-logout",
        },
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    # Still no plain http to other hosts, and still no port 0.
    for uri in ("http://rp.example.com/logout", "https://127.0.0.1:0/logout"):
        refused = client.post(
            "/Applications/create", data={"name": "Other", "backchannelLogoutUri": uri}
        )
        assert refused.status_code == 400, uri


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("origins", "http://127.0.0.1:0"),
        ("origins", "https://app.example.com:0"),
        ("origins", "https://app.example.com:00"),
        ("redirectUris", "https://app.example.com:0/callback"),
        ("redirectUris", "http://127.0.0.1:0/callback"),
        ("postLogoutRedirectUris", "https://app.example.com:0/bye"),
        ("postLogoutRedirectUris", "http://127.0.0.1:0/bye"),
        ("backchannelLogoutUri", "https://a.example.com:0/x"),
    ],
)
def test_port_zero_is_refused(harness: Harness, param: str, value: str) -> None:
    client = apps_writer(harness)
    before = applications(harness)
    created = client.post("/Applications/create", data={"name": "Wiki", param: value})
    assert created.status_code == 400, created.get_data(as_text=True)
    assert error(created)["Source"] == param and error(created)["Number"] == "3"
    assert applications(harness) == before


@pytest.mark.parametrize("param", ["redirectUris", "postLogoutRedirectUris"])
@pytest.mark.parametrize(
    "value", ["https://app.example.com/cb#", "https://app.example.com/cb#x", "http://127.0.0.1/#"]
)
def test_a_fragment_even_empty_is_refused(harness: Harness, param: str, value: str) -> None:
    """RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component" — a bare
    trailing ``#`` is one, though ``urlsplit`` reports no fragment for it."""
    client = apps_writer(harness)
    before = applications(harness)
    created = client.post("/Applications/create", data={"name": "Wiki", param: value})
    assert created.status_code == 400, created.get_data(as_text=True)
    assert error(created)["Source"] == param and error(created)["Number"] == "3"
    assert applications(harness) == before
