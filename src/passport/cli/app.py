"""``passport app ...``: register applications, their origins, redirect URIs and secrets.

Each command is one operation of :mod:`passport.services.administration`, as the
``Applications/*`` methods of the API are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import TypeVar

import click
from sqlalchemy import select

from passport.api.shapes import application_json
from passport.cli.common import json_option
from passport.cli.common import say
from passport.cli.context import Cli
from passport.cli.context import emit
from passport.cli.context import pass_cli
from passport.services import directory
from passport.services.factors import APPLICATION_POLICIES
from passport.storage.models import Application

F = TypeVar("F", bound=Callable[..., Any])


def forward_auth_options(command: F) -> F:
    """``--forward-auth-host`` and ``--forward-auth-rule``, alike on ``add`` and ``update``."""
    command = click.option(
        "--forward-auth-rule",
        "forward_auth_rules",
        multiple=True,
        metavar="'PATTERN PERMISSION'",
        help="Forward-auth path rule, e.g. '/admin/* admin' (repeatable; the first match wins).",
    )(command)
    return click.option(
        "--forward-auth-host",
        "forward_auth_hosts",
        multiple=True,
        metavar="HOST[:PORT]",
        help="Host name of the site it is behind a reverse proxy (forward-auth; repeatable).",
    )(command)


@click.group("app")
def app_group() -> None:
    """Manage the applications that sign users in through Passport."""


@app_group.command("add")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="Allowed origin (repeatable).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Redirect URI (repeatable).")
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_uris",
    multiple=True,
    help="Where /logout may return to (RP-Initiated Logout; repeatable).",
)
@click.option("--description", default="", help="What the application is.")
@click.option("--public", is_flag=True, help="A public client (no secret), e.g. a SPA.")
@click.option("--first-party", is_flag=True, help="Your own application: no consent page.")
@click.option("--opaque-tokens", is_flag=True, help="Opaque access tokens instead of JWTs.")
@click.option("--backchannel-logout-uri", help="Where to POST logout tokens (OIDC back-channel).")
@click.option("--scope", "scopes", multiple=True, help="Client credentials scope (repeatable).")
@click.option(
    "--refresh-tokens/--no-refresh-tokens",
    default=True,
    show_default=True,
    help="Refresh tokens always, or only for offline_access allowed by the user.",
)
@click.option(
    "--id-token-signed-response-alg",
    "id_token_alg",
    help="ID/logout/JWT access token signature: ES256 or RS256 (default: the server's).",
)
@click.option(
    "--par-required/--no-par-required",
    default=False,
    show_default=True,
    help="Authorization requests only through /oauth2/par (RFC 9126 PAR).",
)
@click.option(
    "--device-grant/--no-device-grant",
    default=False,
    show_default=True,
    help="Allow the Device Authorization Grant (RFC 8628: TVs, command-line tools).",
)
@click.option(
    "--resource",
    "resources",
    multiple=True,
    help="RFC 8707 resource identifier of an API it serves (repeatable).",
)
@click.option(
    "--resource-client",
    "resource_clients",
    multiple=True,
    metavar="CLIENT_ID",
    help="Client id of an application that may get client credentials tokens for its "
    "resource identifiers (repeatable; none: no client may).",
)
@click.option(
    "--mfa-policy",
    type=click.Choice(APPLICATION_POLICIES, case_sensitive=False),
    help="Second factor its sign-ins need ('default': the server's mfa_policy).",
)
@click.option(
    "--sign-in-policy",
    metavar="anyone|groups|permission",
    help="Who may sign in: anyone (default), members of --sign-in-group, or holders of "
    "--sign-in-permission.",
)
@click.option(
    "--sign-in-group",
    "sign_in_groups",
    multiple=True,
    metavar="GROUP",
    help="A group whose members may sign in (repeatable; the 'groups' policy).",
)
@click.option(
    "--sign-in-permission",
    metavar="PERMISSION",
    help="Its permission whose holders may sign in (the 'permission' policy; defined with "
    "the application).",
)
@forward_auth_options
@json_option
@pass_cli
def add(
    cli: Cli,
    name: str,
    origins: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    post_logout_uris: tuple[str, ...],
    description: str,
    public: bool,
    first_party: bool,
    opaque_tokens: bool,
    backchannel_logout_uri: str | None,
    scopes: tuple[str, ...],
    refresh_tokens: bool,
    id_token_alg: str | None,
    par_required: bool,
    device_grant: bool,
    resources: tuple[str, ...],
    resource_clients: tuple[str, ...],
    mfa_policy: str | None,
    sign_in_policy: str | None,
    sign_in_groups: tuple[str, ...],
    sign_in_permission: str | None,
    forward_auth_hosts: tuple[str, ...],
    forward_auth_rules: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register application NAME; its client secret is printed this once only."""
    with cli.transaction() as db:
        app, secret = cli.administration(db).create_application(
            name,
            description=description,
            origins=list(origins),
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_uris),
            confidential=not public,
            first_party=first_party,
            access_token_format="opaque" if opaque_tokens else "jwt",
            backchannel_logout_uri=backchannel_logout_uri,
            scopes=list(scopes),
            refresh_tokens=refresh_tokens,
            id_token_signed_response_alg=id_token_alg,
            require_pushed_authorization_requests=par_required,
            device_grant=device_grant,
            resources=list(resources),
            resource_clients=list(resource_clients),
            mfa_policy=mfa_policy,
            sign_in_policy=sign_in_policy,
            sign_in_groups=list(sign_in_groups),
            sign_in_permission=sign_in_permission,
            forward_auth_hosts=list(forward_auth_hosts),
            forward_auth_rules=list(forward_auth_rules),
        )
        # Shaped in the transaction: the lists it reads (resources, sign-in groups) are
        # loaded from the database on first use.
        shown = application_json(app)
    if as_json:
        emit([{**shown, "ClientSecret": secret}], True)
        return
    say(f"application '{app.name}' registered with id {app.id}")
    say(f"client id:     {app.client_id}")
    if secret:
        say(f"client secret: {secret}")
        say("Keep the client secret now: Passport stores only its hash.", err=True)


@app_group.command("list")
@json_option
@pass_cli
def list_apps(cli: Cli, as_json: bool) -> None:
    """List registered applications."""
    with cli.transaction() as db:
        rows = [
            application_json(a) for a in db.scalars(select(Application).order_by(Application.id))
        ]
    emit(rows, as_json, ["ID", "Name", "Enabled", "ClientId", "AllowedOrigins", "RedirectUris"])


@app_group.command("show")
@click.argument("name")
@json_option
@pass_cli
def show(cli: Cli, name: str, as_json: bool) -> None:
    """Show application NAME (or id)."""
    with cli.transaction() as db:
        row = application_json(directory.get_application(db, name))
    emit([row], as_json)


@app_group.command("update")
@click.argument("name")
@click.option("--rename", help="New name.")
@click.option("--description", help="New description.")
@click.option("--origin", "origins", multiple=True, help="Replace the allowed origins.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Replace the redirect URIs.")
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_uris",
    multiple=True,
    help="Replace where /logout may return to (repeatable).",
)
@click.option(
    "--no-post-logout-redirect-uris",
    "no_post_logout_uris",
    is_flag=True,
    help="Remove all its post-logout redirect URIs.",
)
@click.option("--first-party/--third-party", default=None, help="Skip the consent page or not.")
@click.option("--token-format", type=click.Choice(["jwt", "opaque"]), help="Access token format.")
@click.option("--backchannel-logout-uri", help="Where to POST logout tokens ('' removes it).")
@click.option("--scope", "scopes", multiple=True, help="Replace the client credentials scopes.")
@click.option(
    "--refresh-tokens/--no-refresh-tokens",
    default=None,
    help="Refresh tokens always, or only for offline_access allowed by the user.",
)
@click.option(
    "--id-token-signed-response-alg",
    "id_token_alg",
    help="ES256 or RS256 for its ID/logout/JWT access tokens ('' for the server's).",
)
@click.option(
    "--par-required/--no-par-required",
    default=None,
    help="Authorization requests only through /oauth2/par (RFC 9126 PAR), or any way.",
)
@click.option(
    "--device-grant/--no-device-grant",
    default=None,
    help="Allow the Device Authorization Grant (RFC 8628: TVs, command-line tools) or not.",
)
@click.option(
    "--resource",
    "resources",
    multiple=True,
    help="Replace its RFC 8707 resource identifiers (repeatable).",
)
@click.option("--no-resources", is_flag=True, help="Remove all its resource identifiers.")
@click.option(
    "--resource-client",
    "resource_clients",
    multiple=True,
    metavar="CLIENT_ID",
    help="Replace the client ids of the applications that may get client credentials "
    "tokens for its resource identifiers (repeatable).",
)
@click.option(
    "--no-resource-clients",
    is_flag=True,
    help="No application may get client credentials tokens for its resource identifiers.",
)
@click.option(
    "--mfa-policy",
    type=click.Choice(APPLICATION_POLICIES, case_sensitive=False),
    help="Second factor its sign-ins need ('default': the server's mfa_policy).",
)
@click.option(
    "--sign-in-policy",
    metavar="anyone|groups|permission",
    help="Who may sign in: anyone, members of its sign-in groups, or holders of its "
    "sign-in permission.",
)
@click.option(
    "--sign-in-group",
    "sign_in_groups",
    multiple=True,
    metavar="GROUP",
    help="Replace the groups whose members may sign in (repeatable).",
)
@click.option("--no-sign-in-groups", is_flag=True, help="Remove all its sign-in groups.")
@click.option(
    "--sign-in-permission",
    metavar="PERMISSION",
    help="Its permission whose holders may sign in ('' for none).",
)
@forward_auth_options
@click.option("--no-forward-auth-hosts", is_flag=True, help="Guard no site for it (forward-auth).")
@click.option("--no-forward-auth-rules", is_flag=True, help="No forward-auth path rules.")
@pass_cli
def update(
    cli: Cli,
    name: str,
    rename: str | None,
    description: str | None,
    origins: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    post_logout_uris: tuple[str, ...],
    no_post_logout_uris: bool,
    first_party: bool | None,
    token_format: str | None,
    backchannel_logout_uri: str | None,
    scopes: tuple[str, ...],
    refresh_tokens: bool | None,
    id_token_alg: str | None,
    par_required: bool | None,
    device_grant: bool | None,
    resources: tuple[str, ...],
    no_resources: bool,
    resource_clients: tuple[str, ...],
    no_resource_clients: bool,
    mfa_policy: str | None,
    sign_in_policy: str | None,
    sign_in_groups: tuple[str, ...],
    no_sign_in_groups: bool,
    sign_in_permission: str | None,
    forward_auth_hosts: tuple[str, ...],
    forward_auth_rules: tuple[str, ...],
    no_forward_auth_hosts: bool,
    no_forward_auth_rules: bool,
) -> None:
    """Change application NAME."""
    if forward_auth_hosts and no_forward_auth_hosts:
        raise click.UsageError("Give --forward-auth-host or --no-forward-auth-hosts, not both.")
    if forward_auth_rules and no_forward_auth_rules:
        raise click.UsageError("Give --forward-auth-rule or --no-forward-auth-rules, not both.")
    if resources and no_resources:
        raise click.UsageError("Give --resource or --no-resources, not both.")
    if post_logout_uris and no_post_logout_uris:
        raise click.UsageError(
            "Give --post-logout-redirect-uri or --no-post-logout-redirect-uris, not both."
        )
    if resource_clients and no_resource_clients:
        raise click.UsageError("Give --resource-client or --no-resource-clients, not both.")
    if sign_in_groups and no_sign_in_groups:
        raise click.UsageError("Give --sign-in-group or --no-sign-in-groups, not both.")
    with cli.transaction() as db:
        app = cli.administration(db).update_application(
            name,
            name=rename,
            description=description,
            origins=list(origins) if origins else None,
            redirect_uris=list(redirect_uris) if redirect_uris else None,
            post_logout_redirect_uris=(
                [] if no_post_logout_uris else list(post_logout_uris) if post_logout_uris else None
            ),
            first_party=first_party,
            access_token_format=token_format,
            backchannel_logout_uri=backchannel_logout_uri,
            scopes=list(scopes) if scopes else None,
            refresh_tokens=refresh_tokens,
            id_token_signed_response_alg=id_token_alg,
            require_pushed_authorization_requests=par_required,
            device_grant=device_grant,
            resources=[] if no_resources else list(resources) if resources else None,
            resource_clients=(
                [] if no_resource_clients else list(resource_clients) if resource_clients else None
            ),
            mfa_policy=mfa_policy,
            sign_in_policy=sign_in_policy,
            sign_in_groups=(
                [] if no_sign_in_groups else list(sign_in_groups) if sign_in_groups else None
            ),
            sign_in_permission=sign_in_permission,
            forward_auth_hosts=(
                []
                if no_forward_auth_hosts
                else list(forward_auth_hosts)
                if forward_auth_hosts
                else None
            ),
            forward_auth_rules=(
                []
                if no_forward_auth_rules
                else list(forward_auth_rules)
                if forward_auth_rules
                else None
            ),
        )
    say(f"application '{app.name}' updated")


@app_group.command("origins")
@click.argument("name")
@click.option("--add", "added", multiple=True, help="Origin to allow (repeatable).")
@click.option("--remove", "removed", multiple=True, help="Origin to stop allowing.")
@pass_cli
def set_origins(cli: Cli, name: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    """Show or change the origins allowed for application NAME."""
    with cli.transaction() as db:
        if added or removed:
            app = cli.administration(db).change_origins(name, list(added), list(removed))
        else:
            app = directory.get_application(db, name)
        current = list(app.allowed_origins)
    say("\n".join(current) or "(no origins)")


@app_group.command("rotate-secret")
@click.argument("name")
@click.option(
    "--overlap",
    default=0,
    show_default=True,
    help="Seconds during which the old secret keeps working.",
)
@pass_cli
def rotate_secret(cli: Cli, name: str, overlap: int) -> None:
    """Give application NAME a new client secret (printed once)."""
    with cli.transaction() as db:
        app, secret = cli.administration(db).rotate_secret(name, overlap)
    say(f"client id:     {app.client_id}")
    say(f"client secret: {secret}")


def _enable(cli: Cli, name: str, enabled: bool) -> None:
    with cli.transaction() as db:
        app = cli.administration(db).set_application_enabled(name, enabled)
    say(f"application '{app.name}' {'enabled' if enabled else 'disabled'}")


@app_group.command("disable")
@click.argument("name")
@pass_cli
def disable(cli: Cli, name: str) -> None:
    """Disable application NAME (it grants nothing while disabled)."""
    _enable(cli, name, False)


@app_group.command("enable")
@click.argument("name")
@pass_cli
def enable(cli: Cli, name: str) -> None:
    """Enable application NAME again."""
    _enable(cli, name, True)


@app_group.command("delete")
@click.argument("name")
@click.confirmation_option(prompt="Delete this application with its permissions and grants?")
@pass_cli
def delete(cli: Cli, name: str) -> None:
    """Delete application NAME with its permissions and every grant of them."""
    with cli.transaction() as db:
        deleted = cli.administration(db).delete_application(name)
    say(f"application '{deleted}' deleted")
