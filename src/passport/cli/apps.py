"""``passport app ...``: register applications, their origins, redirect URIs and secrets."""

from __future__ import annotations

import click

from passport.cli.directory import Cli
from passport.cli.directory import _app
from passport.cli.directory import emit
from passport.cli.directory import json_option
from passport.cli.directory import pass_cli
from passport.services import clients
from passport.services import directory
from passport.storage.models import Application


@click.group("app")
def app_group() -> None:
    """Manage the applications that sign users in through Passport."""


@app_group.command("add")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="Allowed origin (repeatable).")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Redirect URI (repeatable).")
@click.option("--description", default="", help="What the application is.")
@click.option("--public", is_flag=True, help="A public client (no secret), e.g. a SPA.")
@click.option("--first-party", is_flag=True, help="Your own application: no consent page.")
@click.option("--opaque-tokens", is_flag=True, help="Opaque access tokens instead of JWTs.")
@click.option("--backchannel-logout-uri", help="Where to POST logout tokens (OIDC back-channel).")
@json_option
@pass_cli
def add(
    cli: Cli,
    name: str,
    origins: tuple[str, ...],
    redirect_uris: tuple[str, ...],
    description: str,
    public: bool,
    first_party: bool,
    opaque_tokens: bool,
    backchannel_logout_uri: str | None,
    as_json: bool,
) -> None:
    """Register application NAME; its client secret is printed this once only."""
    with cli.transaction() as db:
        app, secret = directory.create_application(
            db,
            cli.now,
            name,
            description=description,
            origins=list(origins),
            redirect_uris=list(redirect_uris),
            confidential=not public,
            first_party=first_party,
            access_token_format="opaque" if opaque_tokens else "jwt",
            backchannel_logout_uri=backchannel_logout_uri,
        )
        cli.audit(db, "app_create", application=app.name)
    if as_json:
        emit([{**directory.application_json(app), "ClientSecret": secret}], True)
        return
    click.echo(f"application '{app.name}' registered with id {app.id}")
    click.echo(f"client id:     {app.client_id}")
    if secret:
        click.echo(f"client secret: {secret}")
        click.echo("Keep the client secret now: Passport stores only its hash.", err=True)


@app_group.command("list")
@json_option
@pass_cli
def list_apps(cli: Cli, as_json: bool) -> None:
    """List registered applications."""
    from sqlalchemy import select

    with cli.transaction() as db:
        rows = [
            directory.application_json(a)
            for a in db.scalars(select(Application).order_by(Application.id))
        ]
    emit(rows, as_json, ["ID", "Name", "Enabled", "ClientId", "AllowedOrigins", "RedirectUris"])


@app_group.command("show")
@click.argument("name")
@json_option
@pass_cli
def show(cli: Cli, name: str, as_json: bool) -> None:
    """Show application NAME (or id)."""
    with cli.transaction() as db:
        row = directory.application_json(_app(db, name))
    emit([row], as_json)


@app_group.command("update")
@click.argument("name")
@click.option("--rename", help="New name.")
@click.option("--description", help="New description.")
@click.option("--origin", "origins", multiple=True, help="Replace the allowed origins.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Replace the redirect URIs.")
@pass_cli
def update(
    cli: Cli,
    name: str,
    rename: str | None,
    description: str | None,
    origins: tuple[str, ...],
    redirect_uris: tuple[str, ...],
) -> None:
    """Change application NAME."""
    with cli.transaction() as db:
        app = _app(db, name)
        if rename:
            directory.rename_application(db, app, rename)
        if description is not None:
            app.description = description
        if origins:
            app.allowed_origins = directory.validate_origins(list(origins))
        if redirect_uris:
            app.redirect_uris = directory.validate_redirect_uris(list(redirect_uris))
        cli.audit(db, "app_update", application=app.name)
    click.echo(f"application '{app.name}' updated")


@app_group.command("origins")
@click.argument("name")
@click.option("--add", "added", multiple=True, help="Origin to allow (repeatable).")
@click.option("--remove", "removed", multiple=True, help="Origin to stop allowing.")
@pass_cli
def set_origins(cli: Cli, name: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    """Show or change the origins allowed for application NAME."""
    with cli.transaction() as db:
        app = _app(db, name)
        gone = directory.validate_origins(list(removed))
        current = [o for o in app.allowed_origins if o not in gone]
        current += [o for o in directory.validate_origins(list(added)) if o not in current]
        app.allowed_origins = current
        if added or removed:
            cli.audit(db, "app_update", application=app.name, origins=current)
    click.echo("\n".join(current) or "(no origins)")


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
        app = _app(db, name)
        if not app.confidential:
            raise click.UsageError("a public application has no secret")
        secret = (
            clients.rotate_secret(app, cli.now, overlap)
            if app.client_id
            else clients.issue_credentials(app)
        )
        cli.audit(db, "app_rotate_secret", application=app.name, overlap=overlap)
    click.echo(f"client id:     {app.client_id}\nclient secret: {secret}")


def _enable(cli: Cli, name: str, enabled: bool) -> None:
    with cli.transaction() as db:
        app = _app(db, name)
        if app.id == 1 and not enabled:
            raise click.UsageError("Passport itself cannot be disabled")
        app.enabled = enabled
        cli.audit(db, "app_enable" if enabled else "app_disable", application=app.name)
    click.echo(f"application '{app.name}' {'enabled' if enabled else 'disabled'}")


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
