"""``passport serve``: run the WSGI app with Granian.

Flags are exported as ``PASSPORT_*`` variables so that every worker process
builds exactly the settings that were checked here, before any worker starts.
"""

from __future__ import annotations

import os
import tempfile

import click
import sqlalchemy.exc

from passport.cli.common import Failure
from passport.cli.common import Misuse
from passport.cli.common import database_unreachable
from passport.cli.common import open_database
from passport.cli.common import settings_from
from passport.cli.common import settings_options
from passport.config import ENV_PREFIX
from passport.config import Settings
from passport.logsetup import configure
from passport.storage import migrate


def prepare_schema(settings: Settings) -> None:
    """Migrate SQLite (and others with auto_migrate); refuse an out-of-date schema."""
    database = open_database(settings)
    try:
        if settings.is_sqlite or settings.auto_migrate:
            migrate.upgrade(database.engine)
        elif not migrate.is_current(database.engine):
            current = migrate.current_revision(database.engine) or "empty"
            raise Failure(
                f"the database schema is out of date ({current}, need "
                f"{migrate.head_revision()}); run `passport db upgrade` first"
            )
    except sqlalchemy.exc.OperationalError as exc:
        database_unreachable(exc)
    finally:
        database.dispose()


@click.command()
@settings_options
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--workers", type=int, help="Worker processes (default 1).")
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
def serve(
    config_file: str | None,
    database_url: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    reload: bool,
) -> None:
    """Serve Passport over HTTP with Granian (production-grade WSGI server)."""
    overrides = {"database_url": database_url, "host": host, "port": port, "workers": workers}
    settings = settings_from(config_file, **overrides)
    configure(settings.log_level)
    prepare_schema(settings)
    if settings.issuer is None:
        raise Misuse(
            "set PASSPORT_PUBLIC_URL (e.g. https://sso.example.com): outside SQLite it is "
            "Passport's address and OpenID Connect issuer, never taken from a request"
        )

    if config_file:
        os.environ[ENV_PREFIX + "CONFIG"] = config_file
    for name, value in overrides.items():
        if value is not None:
            os.environ[ENV_PREFIX + name.upper()] = str(value)

    # Every worker writes its metrics here; /metrics sums them (prometheus-client's
    # multiprocess mode).  A fresh directory per start: no stale samples.
    metrics_dir = tempfile.mkdtemp(prefix="passport-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    from granian import Granian
    from granian.constants import Interfaces

    click.echo(
        f"passport: serving on http://{settings.host}:{settings.port} "
        f"with {settings.workers} worker(s) of {settings.server_threads} threads",
        err=True,
    )
    Granian(
        "passport.wsgi:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        # More threads than password hashes can occupy (hashing slots plus their bounded
        # queue), so requests that hash nothing always find a free thread in a login storm.
        blocking_threads=settings.server_threads,
        reload=reload,
        log_level=settings.log_level.lower(),  # type: ignore[arg-type]
        respawn_failed_workers=True,
    ).serve()
