"""Start the django-oauth-toolkit peer for bench/peers.py.

    .venv/bin/python serve.py --server granian|gunicorn --port P --database-url URL --fixtures FILE
                              [--client-secret-hasher pbkdf2|sha256]

Migrates the (fresh) database, creates a user, a confidential client-credentials
client and a live user access token for "openid profile email", writes FILE as the
runner's contract says, then replaces itself (exec) with ONE server worker process
(Granian: 1 worker, 4 blocking threads; gunicorn: 1 gthread worker, 4 threads), so
that the runner's SIGTERM and its CPU accounting reach the server's process tree.

``--client-secret-hasher`` picks DOT's CLIENT_SECRET_HASHER: ``pbkdf2`` (default, as
shipped: Django's PBKDF2, 1,000,000 iterations, checked on every client authentication)
or ``sha256`` (one unsalted SHA-256, benchsite/hashers.py, as Passport stores secrets).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
THREADS = 4  # as bench/run.py runs Passport under Granian


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("granian", "gunicorn"), default="granian")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--database-url",
        required=True,
        help="postgresql://USER:PASS@HOST:PORT/NAME (an empty database) or sqlite:///PATH",
    )
    parser.add_argument("--fixtures", type=Path, required=True, help="JSON file to write")
    parser.add_argument(
        "--client-secret-hasher",
        choices=("pbkdf2", "sha256"),
        default="pbkdf2",
        help="how DOT stores and checks client secrets: pbkdf2 (as shipped, Django's "
        "PBKDF2) or sha256 (one SHA-256, as Passport does); default %(default)s",
    )
    return parser.parse_args(argv)


def absolute_database_url(url: str) -> str:
    """A relative SQLite path is taken from the caller's directory, not the server's."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def prepare_store() -> dict[str, Any]:
    """Migrate and create the fixtures; returns what the runner needs of them."""
    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_access_token_model
    from oauth2_provider.models import get_application_model
    from oauthlib.common import generate_token

    call_command("migrate", interactive=False, verbosity=0)

    Application = get_application_model()
    AccessToken = get_access_token_model()
    user, _ = get_user_model().objects.get_or_create(
        username="alice",
        defaults={"email": "alice@example.com", "first_name": "Alice", "last_name": "Liddell"},
    )
    user.set_unusable_password()
    user.save()

    # The benchmarked client. Its secret is hashed on save with CLIENT_SECRET_HASHER
    # (--client-secret-hasher), and checked against that hash on every client
    # authentication.
    client_secret = generate_client_secret()
    client = Application.objects.create(
        name="bench client credentials",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=client_secret,
    )
    # The relying party the user's token was issued to (as by an authorization code flow).
    web = Application.objects.create(
        name="bench relying party",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://rp.bench.example/callback",
        algorithm=Application.RS256_ALGORITHM,
        client_secret=generate_client_secret(),
    )
    userinfo_token = generate_token()  # what DOT's token endpoint hands out
    AccessToken.objects.create(
        user=user,
        application=web,
        token=userinfo_token,
        scope="openid profile email",
        expires=timezone.now() + timedelta(hours=2),
    )
    connections.close_all()
    return {
        "client_id": client.client_id,
        "client_secret": client_secret,
        "jwt_resource": None,  # DOT issues opaque access tokens only
        "userinfo_token": userinfo_token,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def server_command(args: argparse.Namespace) -> list[str]:
    bin_dir = Path(sys.executable).parent
    target = "benchsite.wsgi:application"
    if args.server == "granian":
        return [
            str(bin_dir / "granian"),
            "--interface",
            "wsgi",
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            "1",
            "--blocking-threads",
            str(THREADS),
            "--log-level",
            "warning",
            "--no-ws",
            "--working-dir",
            str(HERE),
            target,
        ]
    return [
        str(bin_dir / "gunicorn"),
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        str(THREADS),
        "--log-level",
        "warning",
        "--chdir",
        str(HERE),
        target,
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    from benchsite.keys import rsa_private_key_pem

    issuer = f"http://127.0.0.1:{args.port}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "benchsite.settings",
            "BENCH_DATABASE_URL": absolute_database_url(args.database_url),
            "BENCH_ISSUER": issuer,
            "BENCH_SECRET_KEY": secrets.token_urlsafe(50),
            "BENCH_OIDC_RSA_PRIVATE_KEY": rsa_private_key_pem(),
            "BENCH_CLIENT_SECRET_HASHER": args.client_secret_hasher,
        }
    )
    fixtures = {"issuer": issuer, **prepare_store()}
    write_json(args.fixtures.resolve(), fixtures)
    command = server_command(args)
    os.chdir(HERE)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
