"""The conformance suite's ``oidcc-server-rotate-keys``: after the OP rotates its keys, a
new ID token is signed with a new key that the JWKS, fetched again, holds — for every
algorithm a client may have registered (ES256, RS256).  And Passport's own rule
(:mod:`passport.oidc.keys`): a rotated key is published at once, signs only after
``key_rotation_delay``, and its predecessor stays published while tokens it signed live,
so a relying party never meets a token it cannot verify."""

from __future__ import annotations

import base64
import json
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import body
from oidc_support import exchange
from oidc_support import get_code
from oidc_support import ids
from oidc_support import seed
from passport.cli import cli
from passport.config import SIGNING_ALGS
from passport.storage.models import Application

from support import Harness


def choose(h: Harness, alg: str) -> None:
    """Wiki registers ``id_token_signed_response_alg`` (OIDC Registration §2)."""
    with h.app.services.db.session(write=True) as db, db.begin():
        wiki = db.scalars(select(Application).where(Application.name == "Wiki")).one()
        wiki.id_token_signed_response_alg = alg


def jwks(h: Harness) -> dict[str, Any]:
    return body(h.client.get("/.well-known/jwks.json"))


def kid_of(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    return str(header["kid"])


def verified(h: Harness, token: str, alg: str) -> dict[str, Any]:
    """The claims of ``token``, checked with the JWKS as fetched now, in ``alg`` only."""
    return dict(jwt.decode(token, KeySet.import_key_set(jwks(h)), algorithms=[alg]).claims)


def userinfo_status(h: Harness, access_token: str) -> int:
    return int(
        h.client.get(
            "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
        ).status_code
    )


@pytest.mark.parametrize("alg", SIGNING_ALGS)
def test_after_a_rotation_new_tokens_are_signed_by_new_published_keys(h: Harness, alg: str) -> None:
    """``passport keys rotate`` (``key_rotation_delay`` 0 here): the next ID token has a new
    ``kid`` of the same algorithm, found in the JWKS fetched again; the token signed
    before it still verifies, and its access token still works."""
    h.clock.now = datetime.now(UTC)  # the CLI rotates at the real time
    choose(h, alg)
    before = body(exchange(h, get_code(h)))
    old_kid = kid_of(before["id_token"])
    assert old_kid in {k["kid"] for k in jwks(h)["keys"]}

    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}
    rotated = CliRunner().invoke(
        cli,
        ["keys", "rotate", "--database-url", h.settings.database_url],
        env={**env, "PASSPORT_KEY_ROTATION_DELAY": "0"},
    )
    assert rotated.exit_code == 0, rotated.output
    assert {f"new {a} key" for a in SIGNING_ALGS} <= {
        " ".join(line.split()[:3]) for line in rotated.output.splitlines()
    }
    h.app.services.keys._cache = (0.0, [])  # another process: seen within CACHE_SECONDS
    h.clock.now = datetime.now(UTC)

    after = body(exchange(h, get_code(h)))
    new_kid = kid_of(after["id_token"])
    assert new_kid != old_kid
    published = {k["kid"]: k for k in jwks(h)["keys"]}
    assert published[new_kid]["alg"] == alg and old_kid in published
    assert verified(h, after["id_token"], alg)["aud"] == ids(h)["client_id"]
    assert verified(h, before["id_token"], alg)["aud"] == ids(h)["client_id"]
    assert userinfo_status(h, before["access_token"]) == 200
    assert userinfo_status(h, after["access_token"]) == 200


@pytest.fixture(params=["sqlite", "postgresql"])
def delayed(request: pytest.FixtureRequest, factory: Any) -> Harness:
    """Passport with the default one-hour delay between publishing a key and signing."""
    harness: Harness = factory(request.param, key_encryption_key=KEK, key_rotation_delay=3600)
    harness.ids = seed(harness.settings.database_url)  # type: ignore[attr-defined]
    return harness


def test_a_rotated_key_is_published_first_and_its_predecessor_kept_while_tokens_live(
    delayed: Harness,
) -> None:
    h = delayed
    ring = h.app.services.keys
    lifetime = timedelta(seconds=h.settings.id_token_lifetime)
    assert lifetime.total_seconds() >= h.settings.access_token_lifetime
    issued: dict[str, dict[str, Any]] = {}
    for alg in SIGNING_ALGS:
        choose(h, alg)
        issued[alg] = body(exchange(h, get_code(h)))
    old = {alg: kid_of(issued[alg]["id_token"]) for alg in SIGNING_ALGS}
    new = set(ring.rotate(h.clock()))
    assert len(new) == len(SIGNING_ALGS)
    assert {k["kid"] for k in jwks(h)["keys"]} == {*old.values(), *new}  # published at once

    h.clock.advance(seconds=3600 - 60)  # a token made just before the switch
    for alg in SIGNING_ALGS:
        choose(h, alg)
        last = body(exchange(h, get_code(h)))
        assert kid_of(last["id_token"]) == old[alg]  # the new keys do not sign yet
        issued[alg] = last
    h.clock.advance(seconds=60)  # the switch
    for alg in SIGNING_ALGS:
        choose(h, alg)
        first = body(exchange(h, get_code(h)))
        assert kid_of(first["id_token"]) in new and verified(h, first["id_token"], alg)
        # the last token of the old key still verifies with the JWKS, for as long as it lives
        h.clock.advance(seconds=lifetime.total_seconds() - 120)
        assert verified(h, issued[alg]["id_token"], alg)
        assert userinfo_status(h, issued[alg]["access_token"]) == 200
        h.clock.advance(seconds=-(lifetime.total_seconds() - 120))
    h.clock.advance(seconds=lifetime.total_seconds() + 1)  # every old-key token has expired
    assert {k["kid"] for k in jwks(h)["keys"]} == new
