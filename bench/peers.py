"""Passport side by side with its peers: node-oidc-provider and django-oauth-toolkit.

Every server runs on CPU 0 (``taskset -c 0``) with one worker process, ``wrk`` on CPU 1
with one thread.  All servers are started once, each on its own fresh PostgreSQL
database (or Redis database, or SQLite file), and are loaded one at a time: for each of
``--rounds`` rounds, each scenario, each server in a fixed order, each run starting when
every server is idle (one still answering requests queued by its own run would steal the
next one's core).  The answer of each scenario is checked by hand (status 200 and its
expected shape) before the first load and again before and after every run, so that a
server answering errors fast, or breaking during a run, cannot win: such a run is
reported as FAILED, not measured.

Reported per scenario and server: the median over the rounds of requests/s, p50 and p99
latency, and CPU milliseconds per request of the server's process tree (utime+stime from
/proc, over the wrk run, divided by the requests done) and of its stores (its PostgreSQL
backends, and the Redis server when it uses one), and how busy the server kept its core;
then Passport's ratios to each peer.
Markdown on stdout, JSON in bench/results/.

    .venv/bin/python bench/peers.py [--duration 5] [--rounds 3] [--connections 16]
        [--servers passport,node-pg,...] [--only token-opaque,userinfo,...] [--skip-sqlite]
        [--node-dir bench/peers/node] [--django-dir bench/peers/django]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from measure import LOAD_CORE
from measure import SERVER_CORE
from measure import Load
from measure import Result
from measure import StoreCpu
from measure import descendants
from measure import free_port
from measure import pinned
from measure import settle
from measure import tree_rss_mib
from measure import wait_up
from measure import wrk

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

SERVERS = {
    "passport": "Passport (Granian, PostgreSQL + Redis)",
    "node-pg": "node-oidc-provider, PostgreSQL adapter",
    "node-redis": "node-oidc-provider, Redis adapter",
    "node-memory": "node-oidc-provider, memory adapter",
    "dot-granian-pg": "django-oauth-toolkit, Granian, PostgreSQL",
    "dot-gunicorn-pg": "django-oauth-toolkit, gunicorn, PostgreSQL",
    "dot-granian-sqlite": "django-oauth-toolkit, Granian, SQLite",
    "dot-granian-pg-sha256": "django-oauth-toolkit, Granian, PostgreSQL, SHA-256 client secrets",
}
SCENARIOS = {
    "token-opaque": "token: client credentials, opaque",
    "token-jwt": "token: client credentials, JWT (RFC 9068)",
    "introspect": "introspection (RFC 7662)",
    "userinfo": "userinfo",
    "jwks": "JWKS",
    "discovery": "discovery",
}
PASSPORT_REDIS = "redis://127.0.0.1:6379/12"
NODE_REDIS = "redis://127.0.0.1:6379/14"
RESOURCE = "https://api.bench.example/"
REDIRECT = "http://127.0.0.1:9/callback"
USER = "bench"
PASSWORD = "correct horse battery staple"
TOKEN_LIFETIME = 3600  # seconds; the peers' client credentials tokens live an hour too


class Failure(Exception):
    """A server, or one of its answers, is not what the benchmark needs."""


@dataclass
class Fixtures:
    """What a peer writes to its ``--fixtures`` file (Passport's are made here)."""

    issuer: str
    client_id: str
    client_secret: str
    jwt_resource: str | None
    userinfo_token: str
    # Passport: JWT access tokens come from another application than opaque ones (the
    # format is the client's); the peers use the same client for both.
    jwt_client_id: str = ""
    jwt_client_secret: str = ""

    @classmethod
    def load(cls, path: Path) -> Fixtures:
        data = json.loads(path.read_text())
        missing = {"issuer", "client_id", "client_secret", "userinfo_token"} - set(data)
        if missing:
            raise Failure(f"{path} lacks {', '.join(sorted(missing))}")
        return cls(
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            jwt_resource=data.get("jwt_resource"),
            userinfo_token=data["userinfo_token"],
        )

    def jwt_client(self) -> tuple[str, str]:
        return (self.jwt_client_id or self.client_id, self.jwt_client_secret or self.client_secret)


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    store: StoreCpu
    fixtures: Fixtures | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Probe:
    """One scenario's request against one server, as wrk will repeat it."""

    method: str
    url: str
    headers: dict[str, str]
    body: str = ""

    def send(self) -> requests.Response:
        return requests.request(
            self.method,
            self.url,
            headers=self.headers
            | ({"Content-Type": "application/x-www-form-urlencoded"} if self.body else {}),
            data=self.body or None,
            timeout=10,
        )

    def load(self, name: str, load: Load, server: Server) -> Result:
        if self.method == "POST":
            return wrk(
                name,
                self.url,
                load,
                headers=self.headers,
                script="post.lua",
                env={"BENCH_BODY": self.body},
                server_pid=server.process.pid,
                store=server.store,
            )
        return wrk(
            name,
            self.url,
            load,
            headers=self.headers,
            server_pid=server.process.pid,
            store=server.store,
        )


def basic(client_id: str, secret: str) -> dict[str, str]:
    """client_secret_basic (RFC 6749 §2.3.1: both parts form-urlencoded first)."""
    pair = f"{urlencode({'': client_id})[1:]}:{urlencode({'': secret})[1:]}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def json_of(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise Failure(f"{what}: status {response.status_code}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError as exc:
        raise Failure(f"{what}: not JSON: {response.text[:300]}") from exc
    if not isinstance(body, dict):
        raise Failure(f"{what}: not a JSON object: {response.text[:300]}")
    return body


def jose_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, or {} when ``token`` is none."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def looks_like_jwt(token: str) -> bool:
    return "alg" in jose_header(token)


# -- the scenarios: a probe, and a check of the first answer (which says what it saw) --

Check = Callable[[requests.Response], str]


def check_token(jwt_for: str | None, jwks: Callable[[], dict[str, Any]]) -> Check:
    def check(response: requests.Response) -> str:
        body = json_of(response, "token endpoint")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise Failure(f"token endpoint: no access_token in {body}")
        if str(body.get("token_type", "")).lower() != "bearer":
            raise Failure(f"token endpoint: token_type {body.get('token_type')!r}")
        lifetime = body.get("expires_in")
        if jwt_for is None:
            if looks_like_jwt(token):
                raise Failure("token endpoint: asked for an opaque token, got a JWT")
            return f"opaque, {len(token)} chars, expires_in {lifetime}"
        from joserfc import jwt
        from joserfc.jwk import KeySet

        if not looks_like_jwt(token):
            raise Failure("token endpoint: asked for a JWT access token, got an opaque one")
        header = jose_header(token)
        if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
            raise Failure(f"token endpoint: JWT typ {header.get('typ')!r}, not at+jwt")
        keys = KeySet.import_key_set(jwks())  # type: ignore[arg-type]
        claims = jwt.decode(token, keys, algorithms=[header["alg"]]).claims
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if jwt_for not in audiences:
            raise Failure(f"token endpoint: JWT aud {audience!r} lacks {jwt_for}")
        return f"JWT {header['alg']} typ {header['typ']}, aud {audience}, expires_in {lifetime}"

    return check


def check_introspection(client_id: str) -> Check:
    def check(response: requests.Response) -> str:
        body = json_of(response, "introspection")
        if body.get("active") is not True:
            raise Failure(f"introspection: not active: {body}")
        if body.get("client_id") not in (None, client_id):
            raise Failure(f"introspection: client_id {body.get('client_id')!r}")
        return "claims " + ", ".join(sorted(body))

    return check


def check_userinfo(response: requests.Response) -> str:
    body = json_of(response, "userinfo")
    if not body.get("sub"):
        raise Failure(f"userinfo: no sub: {body}")
    if "email" not in body:
        raise Failure(f"userinfo: no email claim for scope email: {body}")
    return "claims " + ", ".join(sorted(body))


def check_jwks(response: requests.Response) -> str:
    keys = json_of(response, "JWKS").get("keys")
    if not isinstance(keys, list) or not keys:
        raise Failure("JWKS: no keys")
    return f"{len(keys)} keys: " + ", ".join(
        f"{key.get('kty')}/{key.get('alg', '?')}" for key in keys if isinstance(key, dict)
    )


def check_discovery(issuer: str) -> Check:
    def check(response: requests.Response) -> str:
        body = json_of(response, "discovery")
        if body.get("issuer") != issuer:
            raise Failure(f"discovery: issuer {body.get('issuer')!r}, expected {issuer}")
        return f"{len(response.content)} bytes"

    return check


def probes(server: Server, scenarios: list[str]) -> dict[str, tuple[Probe, Check] | None]:
    """Each scenario's probe and check for ``server`` (None: the server cannot do it)."""
    fixtures, meta = server.fixtures, server.meta
    assert fixtures is not None
    token_url = meta["token_endpoint"]
    client = basic(fixtures.client_id, fixtures.client_secret)
    grant = "grant_type=client_credentials"
    jwks_url = meta["jwks_uri"]

    def jwks() -> dict[str, Any]:
        return json_of(requests.get(jwks_url, timeout=10), "JWKS")

    found: dict[str, tuple[Probe, Check] | None] = {
        "token-opaque": (Probe("POST", token_url, client, grant), check_token(None, jwks)),
        "token-jwt": None,
        "userinfo": (
            Probe(
                "GET",
                meta["userinfo_endpoint"],
                {"Authorization": f"Bearer {fixtures.userinfo_token}"},
            ),
            check_userinfo,
        ),
        "jwks": (Probe("GET", jwks_url, {}), check_jwks),
        "discovery": (
            Probe("GET", server.url + "/.well-known/openid-configuration", {}),
            check_discovery(fixtures.issuer),
        ),
    }
    if fixtures.jwt_resource:
        body = grant + "&" + urlencode({"resource": fixtures.jwt_resource})
        found["token-jwt"] = (
            Probe("POST", token_url, basic(*fixtures.jwt_client()), body),
            check_token(fixtures.jwt_resource, jwks),
        )
    if "introspect" in scenarios:  # a token of its own to introspect
        answer = json_of(Probe("POST", token_url, client, grant).send(), "token to introspect")
        found["introspect"] = (
            Probe(
                "POST",
                meta["introspection_endpoint"],
                client,
                urlencode({"token": answer["access_token"]}),
            ),
            check_introspection(fixtures.client_id),
        )
    return {name: found[name] for name in scenarios}


def verify(probe: Probe, check: Check) -> str:
    """Send ``probe`` once and check the answer: what was seen, or Failure."""
    try:
        return check(probe.send())
    except requests.RequestException as exc:
        raise Failure(f"no answer: {exc}") from None


def run_once(
    bench: Bench, server: Server, scenario: str, probe: Probe, check: Check, load: Load
) -> Result:
    """One measured run, checked before (a server may break between runs) and after
    (answers stuck past the end of a run are not counted in it), on idle servers."""
    verify(probe, check)
    bench.settle()
    result = probe.load(scenario, load, server)
    result.after_cpu_s = bench.settle().get(server.name)
    try:
        verify(probe, check)
    except Failure as exc:
        raise Failure(f"broke during the run ({result.rps:.0f} req/s): {exc}") from None
    return result


# -- starting the servers --


class Bench:
    """The servers of one run, their databases, and their temporary files."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="passport-peers-"))
        self.servers: dict[str, Server] = {}
        self.drops: list[Callable[[], None]] = []

    def database(self, prefix: str) -> tuple[str, str]:
        """A fresh PostgreSQL database with its own least-privilege owner:
        (SQLAlchemy URL for Passport, its name)."""
        from provision import create_postgresql

        name = f"{prefix}_{secrets.token_hex(4)}"
        backend = create_postgresql(name, secrets.token_urlsafe(18))
        self.drops.append(backend.drop)
        return backend.url, name

    def start(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        port: int,
        store: StoreCpu,
        cwd: Path | None = None,
    ) -> Server:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                pinned(SERVER_CORE, command),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd or self.tmp,
            )
        server = Server(name, f"http://127.0.0.1:{port}", process, log, store)
        self.servers[name] = server
        try:
            wait_up(server.url + "/.well-known/openid-configuration", process, 120)
        except SystemExit as exc:
            raise Failure(f"{name}: {exc}\n{server.tail()}") from None
        server.meta = json_of(
            requests.get(server.url + "/.well-known/openid-configuration", timeout=10),
            f"{name} discovery",
        )
        return server

    def passport(self) -> Server:
        url, dbname = self.database("passport_peer")
        flush(PASSPORT_REDIS)
        port = free_port()
        kek = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")} | {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
            ),
            "PASSPORT_KEY_ENCRYPTION_KEY": kek,
            "PASSPORT_LOG_LEVEL": "WARNING",
            "PASSPORT_AUTO_MIGRATE": "true",
            "PASSPORT_DATABASE_URL": url,
            "PASSPORT_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PASSPORT_REDIS_URL": PASSPORT_REDIS,
            "PASSPORT_ACCESS_TOKEN_LIFETIME": str(TOKEN_LIFETIME),
        }
        command = [sys.executable, "-m", "passport", "serve", "--workers", "1", "--port", str(port)]
        store = StoreCpu([dbname], PASSPORT_REDIS)
        server = self.start("passport", command, env, port, store)
        server.fixtures = passport_fixtures(server, env, self.tmp)
        return server

    def node(self, name: str) -> Server:
        adapter = {"node-pg": "postgresql", "node-redis": "redis", "node-memory": "memory"}[name]
        port = free_port()
        fixtures = self.tmp / f"{name}.json"
        command = [
            "node",
            str(node_entry(self.args.node_dir)),
            "--port",
            str(port),
            "--fixtures",
            str(fixtures),
            "--adapter",
            adapter,
        ]
        store = StoreCpu()
        if adapter == "postgresql":
            url, dbname = self.database("node_peer")
            command += ["--database-url", plain_url(url)]
            store = StoreCpu([dbname])
        elif adapter == "redis":
            flush(NODE_REDIS)
            command += ["--redis-url", NODE_REDIS]
            store = StoreCpu(redis_url=NODE_REDIS)
        env = os.environ | {"NODE_ENV": "production"}
        server = self.start(name, command, env, port, store, cwd=self.args.node_dir)
        server.fixtures = Fixtures.load(fixtures)
        return server

    def django(self, name: str) -> Server:
        # dot-<server>-<database>[-sha256]: DOT's shipped client-secret hasher (PBKDF2,
        # a million iterations) or one SHA-256, as Passport keeps its 256-bit secrets.
        _, server_name, backend, *hasher = name.split("-")
        port = free_port()
        fixtures = self.tmp / f"{name}.json"
        store = StoreCpu()
        if backend == "pg":
            url, dbname = self.database("dot_peer")
            database_url = plain_url(url)
            store = StoreCpu([dbname])
        else:
            database_url = f"sqlite:///{self.tmp / (name + '.sqlite3')}"
        command = [
            str(self.args.django_dir / ".venv" / "bin" / "python"),
            str(django_entry(self.args.django_dir)),
            "--port",
            str(port),
            "--fixtures",
            str(fixtures),
            "--server",
            server_name,
            "--database-url",
            database_url,
            "--client-secret-hasher",
            hasher[0] if hasher else "pbkdf2",
        ]
        server = self.start(name, command, dict(os.environ), port, store, cwd=self.args.django_dir)
        server.fixtures = Fixtures.load(fixtures)
        return server

    def settle(self) -> dict[str, float]:
        """Wait until no server is busy (say which were, and for how long): CPU spent by
        each server meanwhile."""
        started = time.monotonic()
        names = {server.process.pid: name for name, server in self.servers.items()}
        spent = settle(list(names))
        waited = time.monotonic() - started
        busy = {names[pid]: cpu for pid, cpu in spent.items() if cpu >= 0.1}
        if busy:
            print(
                f"  waited {waited:.1f} s for idle servers: "
                + ", ".join(f"{name} used {cpu:.1f} s CPU" for name, cpu in busy.items()),
                file=sys.stderr,
            )
        return {names[pid]: cpu for pid, cpu in spent.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            tree = descendants(server.process.pid)
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"{server.name} ignored SIGTERM for 20 s: killed", file=sys.stderr)
                server.process.kill()
                server.process.wait()
            for pid in tree[1:]:  # workers a master left behind
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for drop in self.drops:
            try:
                drop()
            except RuntimeError as exc:
                print(f"could not drop a database: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


def plain_url(sqlalchemy_url: str) -> str:
    """``postgresql://USER:PASS@HOST:PORT/DB``: the URL form the peers take."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def flush(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()


def node_entry(directory: Path) -> Path:
    """The node peer's script: package.json's ``main``, else provider.mjs."""
    try:
        main = json.loads((directory / "package.json").read_text()).get("main")
    except (OSError, ValueError):
        main = None
    return directory / (main or "provider.mjs")


def django_entry(directory: Path) -> Path:
    return directory / "serve.py"


# -- Passport's fixtures, made the real way --


def passport_fixtures(server: Server, env: dict[str, str], cwd: Path) -> Fixtures:
    """Applications registered with the CLI; the user's token from the real authorization
    code flow (register and sign in through the Passport API, /oauth2/authorize with PKCE,
    the token endpoint)."""

    def add(name: str, *options: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "passport", "app", "add", name, *options, "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
        )
        if done.returncode != 0:
            raise Failure(f"passport app add {name}: {done.stderr.strip()}")
        app: dict[str, Any] = json.loads(done.stdout)[0]
        return app

    opaque = add("BenchOpaque", "--opaque-tokens", "--scope", "api:read")
    signed = add("BenchJwt", "--scope", "api:read")
    add("BenchApi", "--resource", RESOURCE, "--resource-client", signed["ClientId"])
    web = add("BenchWeb", "--first-party", "--opaque-tokens", "--redirect-uri", REDIRECT)
    return Fixtures(
        issuer=server.meta["issuer"],
        client_id=opaque["ClientId"],
        client_secret=opaque["ClientSecret"],
        jwt_resource=RESOURCE,
        userinfo_token=user_token(server, web["ClientId"], web["ClientSecret"]),
        jwt_client_id=signed["ClientId"],
        jwt_client_secret=signed["ClientSecret"],
    )


def user_token(server: Server, client_id: str, secret: str) -> str:
    base, origin = server.url, {"Origin": server.url}
    browser = requests.Session()
    account = {"username": USER, "password": PASSWORD}
    registered = browser.post(
        base + "/Account/register",
        data=account | {"email": "bench@example.com", "displayName": "Bench User"},
        headers=origin,
        timeout=10,
    )
    json_of(registered, "Account/register")
    json_of(
        browser.post(base + "/Account/login", data=account, headers=origin, timeout=10),
        "Account/login",
    )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    state = secrets.token_urlsafe(12)
    url = (
        server.meta["authorization_endpoint"]
        + "?"
        + urlencode(
            {
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "openid profile email",
                "state": state,
                "nonce": secrets.token_urlsafe(12),
                "code_challenge": challenge.rstrip("="),
                "code_challenge_method": "S256",
            }
        )
    )
    for _ in range(5):
        if url.startswith(REDIRECT):
            break
        answer = browser.get(url, allow_redirects=False, timeout=10)
        if answer.status_code not in (302, 303):
            raise Failure(f"authorization: status {answer.status_code}: {answer.text[:300]}")
        url = urljoin(base, answer.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    if query.get("state") != state or "code" not in query:
        raise Failure(f"authorization: no code in {url}")
    token = json_of(
        requests.post(
            server.meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            headers=basic(client_id, secret),
            timeout=10,
        ),
        "authorization code exchange",
    )
    return str(token["access_token"])


# -- checks before anything starts --


def missing_prerequisites(args: argparse.Namespace, servers: list[str]) -> list[str]:
    missing = []
    for tool, hint in (("wrk", "apt-get install wrk"), ("taskset", "apt-get install util-linux")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} is not installed ({hint})")
    if any(name.endswith("pg") or name == "passport" for name in servers) and not shutil.which(
        "psql"
    ):
        missing.append("psql is not installed (apt-get install postgresql-client)")
    try:
        cores = os.sched_getaffinity(0)
    except AttributeError:
        cores = set()
    if not {int(SERVER_CORE), int(LOAD_CORE)} <= cores:
        missing.append(
            f"CPUs {SERVER_CORE} and {LOAD_CORE} are not both available (have {sorted(cores)})"
        )
    imported = subprocess.run(
        [sys.executable, "-c", "import psycopg, redis, joserfc, passport.wsgi"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    if imported.returncode != 0:
        error = imported.stderr.strip().splitlines()[-1:]
        raise SystemExit(
            f"{sys.executable} lacks Passport's dependencies ({' '.join(error)}): run this "
            "with the project's venv, .venv/bin/python (make bench-peers does)"
        )
    if any(name.startswith("node-") for name in servers):
        node_dir = args.node_dir
        if shutil.which("node") is None:
            missing.append("node is not installed (Node.js 20 or later)")
        if not (node_dir / "node_modules" / "oidc-provider").is_dir():
            missing.append(
                f"{node_dir}/node_modules: run `npm ci --prefix {node_dir}` (make bench-peers does)"
            )
        if not node_entry(node_dir).is_file():
            missing.append(f"the node peer's script {node_entry(node_dir)}")
    if any(name.startswith("dot-") for name in servers):
        django_dir = args.django_dir
        if not (django_dir / ".venv" / "bin" / "python").is_file():
            missing.append(
                f"{django_dir}/.venv: python3 -m venv {django_dir}/.venv && "
                f"{django_dir}/.venv/bin/pip install -r {django_dir}/requirements.txt "
                "(make bench-peers does)"
            )
        if not django_entry(django_dir).is_file():
            missing.append(f"the django peer's script {django_entry(django_dir)}")
    for service, check in (
        ("PostgreSQL on 127.0.0.1:5432", postgres_up),
        ("Redis on 127.0.0.1:6379", redis_up),
    ):
        if not check():
            missing.append(f"{service} is not answering (scripts/services-up starts it)")
    return missing


def postgres_up() -> bool:
    import psycopg

    try:
        psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
        ).close()
    except psycopg.Error:
        return False
    return True


def redis_up() -> bool:
    import redis

    try:
        with redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=3) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def versions(args: argparse.Namespace, servers: list[str]) -> dict[str, str]:
    """What was measured: the machine and each program's version."""
    found = {"python": platform.python_version(), "kernel": platform.release()}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            found["cpu"] = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    found["passport"] = commit.stdout.strip()
    if any(name.startswith("node-") for name in servers):
        found["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip()
        package = args.node_dir / "node_modules" / "oidc-provider" / "package.json"
        found["oidc-provider"] = json.loads(package.read_text())["version"]
    if any(name.startswith("dot-") for name in servers):
        script = (
            "import importlib.metadata as m\n"
            "for n in ('django-oauth-toolkit', 'django', 'granian', 'gunicorn', 'psycopg'):\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: pass\n"
        )
        out = subprocess.run(
            [str(args.django_dir / ".venv" / "bin" / "python"), "-c", script],
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            name, version = line.split()
            found[name] = version
    return found


# -- the report --


@dataclass
class Summary:
    """One server's results for one scenario, over the rounds."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float | None
    store_cpu_ms: float | None
    errors: int
    requests: int
    rounds: list[dict[str, Any]]
    failures: list[str]  # why the rounds that were not measured failed their check
    busy: float | None = None  # median of the rounds' busy shares

    @property
    def flawed(self) -> bool:
        return bool(self.errors or self.failures)

    @property
    def total_cpu_ms(self) -> float | None:
        if self.cpu_ms is None:
            return None
        return self.cpu_ms + (self.store_cpu_ms or 0.0)


def summarise(results: list[Result], failures: list[str]) -> Summary:
    def mid(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    return Summary(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        cpu_ms=mid([r.cpu_ms for r in results]),
        store_cpu_ms=mid([r.store_cpu_ms for r in results]),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        rounds=[asdict(r) for r in results],
        failures=failures,
        busy=mid([busy(r) for r in results]),
    )


def busy(result: Result) -> float | None:
    """How much of its core the server used during the run (CPU per request x requests/s):
    near 1 when the load saturates it; well below, it waited (a lock, a pool, a store)."""
    return None if result.cpu_ms is None else result.cpu_ms * result.rps / 1000


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


PEERS = (
    ("node-oidc-provider pg", ["node-pg"]),
    ("node-oidc-provider redis", ["node-redis"]),
    ("node-oidc-provider memory", ["node-memory"]),
    ("best DOT on PostgreSQL", ["dot-granian-pg", "dot-gunicorn-pg"]),
    ("DOT on SQLite", ["dot-granian-sqlite"]),
    ("DOT, PostgreSQL, SHA-256 secrets", ["dot-granian-pg-sha256"]),
)


def ratios(
    summaries: dict[str, dict[str, Summary]], cpu: Callable[[Summary], float | None]
) -> list[str]:
    """Passport's req/s ÷ each peer's, and each peer's CPU per request ÷ Passport's (both
    >1: Passport better); for a group (best DOT), the peer's best of each."""
    present = [
        (label, [name for name in names if any(name in s for s in summaries.values())])
        for label, names in PEERS
    ]
    present = [(label, names) for label, names in present if names]
    head = "| scenario | " + " | ".join(f"÷ {label}: req/s | CPU" for label, _ in present) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(present)]
    for scenario, by_server in summaries.items():
        ours = by_server.get("passport")
        cells = []
        for _, names in present:
            theirs = [by_server[name] for name in names if name in by_server]
            if ours is None or not theirs:
                cells += ["n/a", "n/a"]
                continue
            best_rps = max(s.rps for s in theirs)
            their_cpus = [c for c in (cpu(s) for s in theirs) if c is not None]
            our_cpu = cpu(ours)
            mark = "*" if ours.flawed or any(s.flawed for s in theirs) else ""
            cells.append(f"{ours.rps / best_rps:.2f}{mark}" if best_rps else "-")
            cells.append(
                f"{min(their_cpus) / our_cpu:.2f}{mark}" if their_cpus and our_cpu else "-"
            )
        lines.append(f"| {SCENARIOS[scenario]} | " + " | ".join(cells) + " |")
    return lines


def report(summaries: dict[str, dict[str, Summary]], notes: dict[str, dict[str, str]]) -> str:
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU ms/req | busy | store CPU ms/req "
        "| errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario, by_server in summaries.items():
        for name in SERVERS:
            if name in by_server:
                s = by_server[name]
                lines.append(
                    f"| {SCENARIOS[scenario]} | {name} | {s.rps:.0f} | {s.p50_ms:.2f} | "
                    f"{s.p99_ms:.2f} | {number(s.cpu_ms, 3)} | {percent(s.busy)} | "
                    f"{number(s.store_cpu_ms, 3)} | "
                    f"{s.errors}{f', {len(s.failures)} rounds FAILED' if s.failures else ''} |"
                )
            elif name in notes.get(scenario, {}):
                lines.append(
                    f"| {SCENARIOS[scenario]} | {name} | {notes[scenario][name]} | | | | | | |"
                )
    lines += [
        "",
        "CPU ms/req: the server's process tree (utime+stime from /proc) over the run ÷ the "
        "requests done; busy: that x req/s, the share of its one core the server used (near "
        "100 % when the load saturates it; well below, it waited on something); store CPU: "
        "its PostgreSQL backends, plus the whole Redis server for those using Redis.",
    ]
    peers = {name for by_server in summaries.values() for name in by_server} - {"passport"}
    if not peers or not any("passport" in by_server for by_server in summaries.values()):
        return "\n".join(lines)
    lines += [
        "",
        "Passport's ratios: its req/s ÷ the peer's, and the peer's CPU per request ÷ "
        "Passport's, CPU of the server process tree (>1: Passport better):",
        "",
    ]
    lines += ratios(summaries, lambda s: s.cpu_ms)
    lines += ["", "The same, CPU including the stores (PostgreSQL backends, Redis):", ""]
    lines += ratios(summaries, lambda s: s.total_cpu_ms)
    lines += [
        "",
        "\\* errors (or timeouts) during the load, or rounds that failed their check, on one "
        "side: not comparable.",
    ]
    return "\n".join(lines)


# -- the run --


def selected(option: str | None, known: dict[str, str], what: str) -> list[str]:
    if not option:
        return list(known)
    chosen = []
    for word in option.split(","):
        matches = [name for name in known if name == word or name.startswith(word + "-")]
        if not matches:
            raise SystemExit(f"unknown {what} {word!r}; known: {', '.join(known)}")
        chosen += [name for name in matches if name not in chosen]
    return [name for name in known if name in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="Seconds per wrk run (5).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds (3).")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16).")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10,
        help="Seconds after which wrk counts an answer as a timeout error (10; wrk's own "
        "default of 2 s turns a server that needs a second per request into 0 req/s).",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1,
        help="Seconds of unmeasured load per server and scenario first (1; 0: none).",
    )
    parser.add_argument(
        "--servers",
        help="Comma-separated subset of: "
        + ", ".join(SERVERS)
        + " (a prefix such as node or dot selects a family).",
    )
    parser.add_argument("--only", help="Comma-separated scenarios: " + ", ".join(SCENARIOS) + ".")
    parser.add_argument("--skip-sqlite", action="store_true", help="Leave out DOT on SQLite.")
    parser.add_argument("--node-dir", type=Path, default=HERE / "peers" / "node")
    parser.add_argument("--django-dir", type=Path, default=HERE / "peers" / "django")
    parser.add_argument(
        "--json",
        type=Path,
        help="Where to write the results (default bench/results/peers-<time>.json).",
    )
    args = parser.parse_args()
    args.node_dir, args.django_dir = args.node_dir.resolve(), args.django_dir.resolve()
    servers = selected(args.servers, SERVERS, "server")
    if args.skip_sqlite:
        servers = [name for name in servers if not name.endswith("sqlite")]
    scenarios = selected(args.only, SCENARIOS, "scenario")
    missing = missing_prerequisites(args, servers)
    if missing:
        raise SystemExit("cannot run the benchmark; missing:\n  " + "\n  ".join(missing))
    load = Load(args.duration, args.connections, threads=1, timeout=args.timeout)
    warmup = Load(args.warmup, args.connections, threads=1, timeout=args.timeout)

    bench = Bench(args)
    try:
        started: list[Server] = []
        for name in servers:
            print(f"starting {name} …", file=sys.stderr)
            if name == "passport":
                started.append(bench.passport())
            elif name.startswith("node-"):
                started.append(bench.node(name))
            else:
                started.append(bench.django(name))

        plan: dict[str, dict[str, tuple[Probe, Check]]] = {scenario: {} for scenario in scenarios}
        notes: dict[str, dict[str, str]] = {scenario: {} for scenario in scenarios}
        checks: dict[str, dict[str, str]] = {}
        for server in started:
            checks[server.name] = {}
            for scenario, found in probes(server, scenarios).items():
                if found is None:
                    notes[scenario][server.name] = "n/a"
                    continue
                try:
                    seen = verify(*found)
                except Failure as exc:
                    notes[scenario][server.name] = "FAILED"
                    print(f"{server.name} {scenario}: {exc}", file=sys.stderr)
                    continue
                checks[server.name][scenario] = seen
                plan[scenario][server.name] = found
                print(f"{server.name} {scenario}: {seen}", file=sys.stderr)

        if args.warmup > 0:
            for scenario, by_server in plan.items():
                for name, (probe, _) in by_server.items():
                    bench.settle()
                    probe.load(scenario, warmup, bench.servers[name])

        results: dict[str, dict[str, list[Result]]] = {
            scenario: {name: [] for name in by_server} for scenario, by_server in plan.items()
        }
        failures: dict[str, dict[str, list[str]]] = {scenario: {} for scenario in scenarios}
        for round_number in range(1, args.rounds + 1):
            for scenario, by_server in plan.items():
                for name, (probe, check) in by_server.items():
                    server = bench.servers[name]
                    head = f"round {round_number} {scenario:13} {name:19}"
                    try:
                        result = run_once(bench, server, scenario, probe, check, load)
                    except Failure as exc:
                        failures[scenario].setdefault(name, []).append(str(exc))
                        print(
                            f"{head} FAILED: {exc}\n  {name}'s log ends with:\n{server.tail()}",
                            file=sys.stderr,
                        )
                        continue
                    results[scenario][name].append(result)
                    print(
                        f"{head} {result.rps:8.0f} req/s p99 {result.p99_ms:7.2f} ms  "
                        f"CPU {number(result.cpu_ms, 3)} ms/req  busy {percent(busy(result))}  "
                        f"errors {result.errors}  CPU after the run "
                        f"{number(result.after_cpu_s, 2)} s",
                        file=sys.stderr,
                    )
        memory = {server.name: round(tree_rss_mib(server.process.pid), 1) for server in started}
    except Failure as exc:
        raise SystemExit(f"benchmark stopped: {exc}") from None
    finally:
        bench.stop()

    summaries = {
        scenario: {
            name: summarise(runs, failures[scenario].get(name, []))
            for name, runs in by_server.items()
            if runs
        }
        for scenario, by_server in results.items()
    }
    for scenario, failed in failures.items():
        for name in failed:
            if name not in summaries[scenario]:
                notes[scenario][name] = "FAILED"
    info = versions(args, servers)
    print(
        f"{args.rounds} rounds of {args.duration:g} s per scenario and server, "
        f"wrk -t 1 -c {args.connections} on CPU {LOAD_CORE}, each server on CPU {SERVER_CORE} "
        f"with one worker; medians over the rounds.\n"
    )
    print(report(summaries, notes))
    print("\n" + ", ".join(f"{key} {value}" for key, value in info.items()))
    print(
        "memory (RSS of each server's process tree at the end, MiB): "
        + ", ".join(f"{k} {v}" for k, v in memory.items())
    )
    bad = [
        f"{scenario}/{name}: {s.errors} errors, {len(s.failures)} failed rounds"
        for scenario, by_server in summaries.items()
        for name, s in by_server.items()
        if s.errors or s.failures
    ]
    if bad:
        print(
            "\nWARNING: errors during the load (such a server's numbers are not comparable): "
            + "; ".join(bad)
        )

    out = args.json or HERE / "results" / f"peers-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "settings": {
                    "duration": args.duration,
                    "rounds": args.rounds,
                    "connections": args.connections,
                    "warmup": args.warmup,
                    "timeout": args.timeout,
                    "server_core": SERVER_CORE,
                    "load_core": LOAD_CORE,
                },
                "versions": info,
                "checks": checks,
                "notes": notes,
                "memory_mib": memory,
                "results": {
                    scenario: {name: asdict(s) for name, s in by_server.items()}
                    for scenario, by_server in summaries.items()
                },
            },
            indent=2,
        )
    )
    print(f"\nJSON: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
