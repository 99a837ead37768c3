"""``passport keys list|rotate``: the OpenID Connect signing keys."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime

import click

from passport.cli.common import Failure
from passport.cli.common import json_option
from passport.cli.context import Cli
from passport.cli.context import emit
from passport.cli.context import pass_cli
from passport.oidc.keys import KeyRing


@click.group("keys")
def keys_group() -> None:
    """Manage the keys that sign ID and access tokens."""


def _ring(cli: Cli) -> KeyRing:
    ring = cli.services.keys
    if not ring.configured:
        raise Failure("set PASSPORT_KEY_ENCRYPTION_KEY (32 random bytes, base64url) first")
    return ring


@keys_group.command("list")
@json_option
@pass_cli
def list_keys(cli: Cli, as_json: bool) -> None:
    """Show every key: upcoming, signing, or kept for tokens it signed."""
    now = datetime.now(UTC)
    ring = _ring(cli)
    keys = ring.keys()
    published: set[str] = set()
    if keys:  # publishing makes a missing algorithm's key: list it too
        published = {k["kid"] for k in ring.published(now)}
        keys = ring.keys()
    signing = {ring.signing_key(now, alg).kid for alg in {k.alg for k in keys}}
    rows = []
    for key in keys:
        if key.kid in signing:
            state = "signing"
        elif key.use_after > now:
            state = "published, signs from " + key.use_after.isoformat(timespec="seconds")
        elif key.kid in published:
            state = "retired, still published"
        else:
            state = "retired"
        rows.append(
            {
                "Kid": key.kid,
                "Alg": key.alg,
                "SignsFrom": key.use_after.isoformat(timespec="seconds"),
                "State": state,
            }
        )
    emit(rows, as_json, ["Kid", "Alg", "SignsFrom", "State"])


@keys_group.command("rotate")
@pass_cli
def rotate(cli: Cli) -> None:
    """Publish a new key of each algorithm now; they sign after PASSPORT_KEY_ROTATION_DELAY
    seconds."""
    now = datetime.now(UTC)
    ring = _ring(cli)
    ring.published(now)  # the first keys, if there were none, sign until the new ones
    delay = cli.services.settings.key_rotation_delay
    for kid in ring.rotate(now):
        alg = next(k.alg for k in ring.keys() if k.kid == kid)
        click.echo(f"new {alg} key {kid} published; it signs from {delay} s from now")
