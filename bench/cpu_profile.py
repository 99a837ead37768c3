"""Profile one scenario in process: Passport's own CPU time per request, and where it goes.

Builds the WSGI app on a fresh database (migrated the real way, by ``passport db
upgrade``), prepares the scenario's fixtures the way a client would (an application
from the CLI, a user's access token from the token service), then calls the app
directly — no HTTP server, no ``wrk`` — and prints the CPU microseconds per request
(``time.process_time``, this process only: the database server's share is not in it)
and, with ``--profile``, cProfile's top functions.  The number is steadier than
``bench/run.py``'s throughput on a busy machine, so it is what each optimisation step
is judged by before the end-to-end run.

    .venv/bin/python bench/cpu_profile.py token-opaque --backend postgresql [--profile] [-n 2000]

Scenarios: token-opaque, token-jwt, introspect, userinfo, status, permission, login, index, jwks,
forward-auth (a proxy's check of a guarded site, Traefik's headers: compare with status).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent / "tests"))
PASSWORD = "correct horse battery staple"
RESOURCE = "https://api.bench.example/"

Environ = dict[str, Any]


def _environ(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Callable[[], Environ]:
    """A factory of fresh WSGI environs for one request (the body stream is per call)."""
    base: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        base["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        base["CONTENT_LENGTH"] = str(len(body))
    for key, value in (headers or {}).items():
        base["HTTP_" + key.upper().replace("-", "_")] = value

    def make() -> Environ:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    return make


def _call(app: Any, environ: Environ) -> tuple[str, bytes]:
    status: list[str] = []

    def start_response(code: str, _headers: Any, _exc: Any = None) -> None:
        status.append(code)

    body = b"".join(app(environ, start_response))
    return status[0], body


def _cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(BIN / "passport"), *args], capture_output=True, text=True, check=True, env=env
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=[
            "token-opaque",
            "token-jwt",
            "introspect",
            "userinfo",
            "status",
            "forward-auth",
            "permission",
            "login",
            "index",
            "jwks",
        ],
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument("--store", choices=["db", "redis"], default=None)
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="Print cProfile's top functions.")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--sql", action="store_true", help="Print the SQL of one request.")
    args = parser.parse_args()
    store = args.store or ("db" if args.backend == "sqlite" else "redis")

    tmp = Path(tempfile.mkdtemp(prefix="passport-profile-"))
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if args.backend == "sqlite":
        database_url = f"sqlite:///{tmp}/profile.sqlite3"
    else:
        from provision import create_mariadb
        from provision import create_postgresql

        create = create_mariadb if args.backend == "mariadb" else create_postgresql
        backend = create(f"passport_p{secrets.token_hex(4)}", secrets.token_urlsafe(18))
        database_url, drop = backend.url, backend.drop
    kek = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")} | {
        "PASSPORT_DATABASE_URL": database_url,
        "PASSPORT_KEY_ENCRYPTION_KEY": kek,
        "PASSPORT_PUBLIC_URL": "http://127.0.0.1:8000",
        "PASSPORT_REDIS_URL": "redis://127.0.0.1:6379/11" if store == "redis" else "",
        "PASSPORT_THROTTLE_IP_LIMIT": "1000000000",
        "PASSPORT_LOG_LEVEL": "WARNING",
        "PASSPORT_TRUSTED_PROXIES": "127.0.0.1",
    }
    try:
        _cli(env, "db", "upgrade")
        opaque = json.loads(
            _cli(env, "app", "add", "Opaque", "--opaque-tokens", "--scope", "api:read", "--json")
        )[0]
        jwt_client = json.loads(_cli(env, "app", "add", "Jwt", "--scope", "api:read", "--json"))[0]
        _cli(
            env,
            "app",
            "add",
            "Api",
            "--resource",
            RESOURCE,
            "--resource-client",
            jwt_client["ClientId"],
            "--json",
        )
        _cli(env, "app", "add", "Site", "--forward-auth-host", "app.bench.example", "--json")
        os.environ.update(env)
        if store == "redis":
            import redis

            redis.Redis.from_url(env["PASSPORT_REDIS_URL"]).flushdb()
        run(args, opaque, jwt_client)
    finally:
        drop()


def run(args: argparse.Namespace, opaque: dict[str, str], jwt_client: dict[str, str]) -> None:
    from sqlalchemy import select

    from passport.app import PassportApp
    from passport.config import load_settings
    from passport.oidc.tokens import Grant
    from passport.storage.models import Application
    from passport.storage.models import User

    app = PassportApp(load_settings())
    services = app.services

    def basic(client: dict[str, str]) -> str:
        raw = f"{client['ClientId']}:{client['ClientSecret']}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    origin = {"Origin": "http://127.0.0.1:8000"}
    form = f"username=bench&password={PASSWORD.replace(' ', '+')}".encode()
    _call(app, _environ("POST", "/Account/register", form, origin)())
    status, _ = _call(app, _environ("POST", "/Account/login", form, origin)())
    assert status.startswith("200"), status

    def user_token(scope: str) -> str:
        with services.db.session(write=True) as db, db.begin():
            user = db.scalars(select(User).where(User.username == "bench")).one()
            client = db.scalars(
                select(Application).where(Application.client_id == opaque["ClientId"])
            ).one()
            body = services.tokens().issue(
                db, Grant(application=client, scope=scope, user=user), services.clock()
            )
        return str(body["access_token"])

    services.keys.ensure(services.clock())
    if args.scenario == "token-opaque":
        make = _environ(
            "POST",
            "/oauth2/token",
            b"grant_type=client_credentials",
            {"Authorization": basic(opaque)},
        )
    elif args.scenario == "token-jwt":
        make = _environ(
            "POST",
            "/oauth2/token",
            f"grant_type=client_credentials&resource={RESOURCE}".encode(),
            {"Authorization": basic(jwt_client)},
        )
    elif args.scenario == "introspect":
        token = _call(
            app,
            _environ(
                "POST",
                "/oauth2/token",
                b"grant_type=client_credentials",
                {"Authorization": basic(opaque)},
            )(),
        )[1]
        access = json.loads(token)["access_token"]
        make = _environ(
            "POST",
            "/oauth2/introspect",
            f"token={access}".encode(),
            {"Authorization": basic(opaque)},
        )
    elif args.scenario == "userinfo":
        make = _environ(
            "GET",
            "/oauth2/userinfo",
            headers={"Authorization": "Bearer " + user_token("openid profile email")},
        )
    elif args.scenario in ("status", "permission", "forward-auth"):
        login = _environ("POST", "/Account/login", form, origin)()
        captured: list[Any] = []

        def start_response(code: str, headers: Any, _exc: Any = None) -> None:
            captured.extend(headers)

        b"".join(app(login, start_response))
        cookie = next(v for k, v in captured if k == "Set-Cookie").split(";")[0]
        path = {
            "status": "/Account/status",
            "permission": "/Permission/check?application=Passport&permission=admin",
            "forward-auth": "/forward-auth",
        }[args.scenario]
        proxy = {
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.bench.example",
            "X-Forwarded-Uri": "/page?x=1",
        }
        make = _environ(
            "GET",
            path,
            headers={"Cookie": cookie, **(proxy if args.scenario == "forward-auth" else {})},
        )
    elif args.scenario == "login":
        make = _environ("POST", "/Account/login", form, origin)
    elif args.scenario == "index":
        make = _environ("GET", "/Service/Index")
    else:
        make = _environ("GET", "/.well-known/jwks.json")

    status, body = _call(app, make())
    print(f"{args.scenario}: {status} {body[:160].decode(errors='replace')}")
    if not status.startswith("200"):
        raise SystemExit("the scenario's request is refused; nothing to measure")
    if args.sql:
        import logging

        logging.basicConfig(format="  SQL %(message).300s")
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
        _call(app, make())
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    for _ in range(200):  # warm-up: pools, caches, first-call imports
        _call(app, make())
    environs = [make() for _ in range(args.requests)]
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not waits
    cpu, wall, own = time.process_time(), time.perf_counter(), time.thread_time()
    if profiler:
        profiler.enable()
    for environ in environs:
        _call(app, environ)
    if profiler:
        profiler.disable()
    own = time.thread_time() - own
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per = 1e6 / args.requests
    print(
        f"{args.requests} requests: {cpu * per:.0f} us CPU/request "
        f"({own * per:.0f} us in the calling thread), "
        f"{wall * per:.0f} us wall/request (backend={args.backend})"
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(35)
        print(out.getvalue())
    services.stop() if hasattr(services, "stop") else None


if __name__ == "__main__":
    main()
