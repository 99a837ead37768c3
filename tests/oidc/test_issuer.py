"""The issuer comes from configuration, never from the ``Host`` header (OpenID Connect
Core §2, Discovery §4.3, RFC 9207): not in discovery, not in an ID token, not in the
authorization response; without ``public_url`` (SQLite development) Passport answers
only at its served address, and elsewhere `passport serve` will not start without one."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from oidc_support import KEK
from oidc_support import PASSWORD
from oidc_support import REDIRECT
from oidc_support import body
from oidc_support import first_party
from oidc_support import ids
from oidc_support import query
from oidc_support import seed
from oidc_support import wiki_request
from provision import Backend

from conftest import _empty_tables
from conftest import free_port
from support import ORIGIN
from support import Harness

EVIL = "http://evil.example"


def test_a_forged_host_never_becomes_the_issuer(h: Harness) -> None:
    discovery = body(h.client.get("/.well-known/openid-configuration", base_url=EVIL))
    assert discovery["issuer"] == ORIGIN
    assert all("evil" not in value for value in discovery.values() if isinstance(value, str)), (
        discovery
    )

    h.login("alice", PASSWORD)
    first_party(h)
    session = h.client.get_cookie("passport_session")
    assert session is not None
    h.client.set_cookie("passport_session", session.value, domain="evil.example")

    # The browser's cookies, a Host header naming another site (a proxy passing it on).
    answer = h.client.get(
        "/oauth2/authorize?" + urlencode(wiki_request(h)), headers={"Host": "evil.example"}
    )
    assert answer.headers["Location"].startswith(REDIRECT)
    assert query(answer)["iss"] == ORIGIN
    raw = f"{ids(h)['client_id']}:{ids(h)['client_secret']}".encode()
    issued = body(
        h.client.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": query(answer)["code"],
                "redirect_uri": REDIRECT,
            },
            headers={
                "Authorization": "Basic " + base64.b64encode(raw).decode(),
                "Host": "evil.example",
            },
        )
    )
    claims = json.loads(base64.urlsafe_b64decode(issued["id_token"].split(".")[1] + "=="))
    assert claims["iss"] == ORIGIN
    access = json.loads(base64.urlsafe_b64decode(issued["access_token"].split(".")[1] + "=="))
    assert access["iss"] == ORIGIN


def test_without_public_url_only_the_served_address_answers(factory: Any) -> None:
    h: Harness = factory("sqlite", public_url="", port=8123, key_encryption_key=KEK)
    served = "http://127.0.0.1:8123"
    moved = h.client.get("/.well-known/openid-configuration?x=1", base_url=EVIL)
    assert moved.status_code == 307
    assert moved.headers["Location"] == served + "/.well-known/openid-configuration?x=1"
    assert h.client.head("/Account/status", base_url="http://localhost:8123").status_code == 307
    for path in ("/oauth2/token", "/Account/login", "/login"):
        refused = h.client.post(path, base_url=EVIL, data={"username": "x"})
        assert refused.status_code == 421, path
        assert "PASSPORT_PUBLIC_URL" in refused.get_data(as_text=True)
    assert h.client.get("/healthz", base_url=EVIL).status_code == 200
    here = h.client.get("/.well-known/openid-configuration", base_url=served)
    assert here.status_code == 200 and body(here)["issuer"] == served


def test_a_live_development_server_redirects_other_names(
    backends: dict[str, Backend], live_server: Any
) -> None:
    url = backends["sqlite"].url
    _empty_tables(url)
    seed(url)
    server = live_server(url, env={"PASSPORT_PUBLIC_URL": "", "PASSPORT_KEY_ENCRYPTION_KEY": KEK})
    meta = requests.get(server.url + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == server.url
    evil = requests.get(
        server.url + "/.well-known/openid-configuration",
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=5,
    )
    assert evil.status_code == 307
    assert evil.headers["Location"] == server.url + "/.well-known/openid-configuration"
    posted = requests.post(
        server.url + "/oauth2/token", headers={"Host": "evil.example"}, timeout=5
    )
    assert posted.status_code == 421


@pytest.mark.live  # a real `passport serve` on PostgreSQL
def test_serve_outside_sqlite_needs_a_public_url(
    backends: dict[str, Backend], tmp_path: Path
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "passport",
            "serve",
            "--port",
            str(free_port()),
            "--database-url",
            backends["postgresql"].url,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PASSPORT_PUBLIC_URL" in lines[0] and "Traceback" not in result.stderr
