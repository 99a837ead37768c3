"""``passport keys list|rotate``: the OpenID Connect signing keys.

The states come from :func:`passport.oidc.keys.key_states` and the rotation is
:meth:`passport.services.administration.Administration.rotate_signing_keys` (audited
with the actor ``cli:<os user>``), the same as the admin console's keys screen."""

from __future__ import annotations

import click

from passport.cli.common import Failure
from passport.cli.common import json_option
from passport.cli.context import Cli
from passport.cli.context import emit
from passport.cli.context import pass_cli
from passport.config import SIGNING_ALGS
from passport.oidc.keys import NOT_CONFIGURED
from passport.oidc.keys import KeyRing
from passport.oidc.keys import key_states


@click.group("keys")
def keys_group() -> None:
    """Manage the keys that sign ID and access tokens."""


def _ring(cli: Cli) -> KeyRing:
    ring = cli.services.keys
    if not ring.configured:
        raise Failure(NOT_CONFIGURED)
    return ring


@keys_group.command("list")
@json_option
@pass_cli
def list_keys(cli: Cli, as_json: bool) -> None:
    """Show every key: upcoming, signing, or kept for tokens it signed."""
    rows = [
        {
            "Kid": key.kid,
            "Alg": key.alg,
            "SignsFrom": key.signs_from.isoformat(timespec="seconds"),
            "State": key.label,
        }
        for key in key_states(_ring(cli), cli.now)
    ]
    emit(rows, as_json, ["Kid", "Alg", "SignsFrom", "State"])


@keys_group.command("rotate")
@pass_cli
def rotate(cli: Cli) -> None:
    """Publish a new key of each algorithm now; they sign after PASSPORT_KEY_ROTATION_DELAY
    seconds."""
    ring = _ring(cli)
    with cli.transaction() as db:
        kids = cli.administration(db).rotate_signing_keys(ring)
    delay = cli.services.settings.key_rotation_delay
    for alg, kid in zip(SIGNING_ALGS, kids, strict=True):  # made in this order
        click.echo(f"new {alg} key {kid} published; it signs from {delay} s from now")
