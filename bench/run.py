"""Benchmark runner: Passport served the production way, next to its baselines, in one run.

Starts, with the same server (Granian) and the same number of workers:
a bare hello-world WSGI app, the least-work session check (``leastwork.py``:
cookie hash + one Redis GET or one primary-key SELECT), and ``passport serve``
on the chosen backend.  Loads each scenario with ``wrk`` from a separate
process and prints requests/s, p50/p99/p999, errors, CPU milliseconds per request
of the server's process tree (``measure.py``), the workers' peak memory, and each
scenario's ratio to its baseline measured in this same run; then the CPU of the
cheapest answer (``Service/Index``) ÷ the hello-world's (issue 12's goal: at most 4).

With ``--pin``, as ``peers.py`` measures: every server on CPU 0 with one worker
(``taskset -c 0``), ``wrk`` on CPU 1 with one thread.

    .venv/bin/python bench/run.py [--backend sqlite|postgresql|mariadb] [--store db|redis]
                                  [--workers N] [--duration S] [--connections C] [--pin]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from argon2 import PasswordHasher
from measure import LOAD_CORE
from measure import SERVER_CORE
from measure import Load
from measure import Result
from measure import background
from measure import free_port
from measure import peak_rss_mib
from measure import pinned
from measure import status_kib
from measure import wait_up
from measure import wrk

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent / "tests"))
PASSWORD = "correct horse battery staple"
REDIS_URL = "redis://127.0.0.1:6379/12"
# Passport from this checkout's src/, whichever venv runs the benchmark.
PASSPORT = [sys.executable, "-m", "passport"]
SRC = str(HERE.parent / "src")


class Servers:
    """The three servers of one run, and what they need."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="passport-bench-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.drop: Callable[[], None] = lambda: None
        if args.backend == "sqlite":
            self.database_url = f"sqlite:///{self.tmp}/bench.sqlite3"
        else:
            from provision import create_mariadb
            from provision import create_postgresql

            create = create_mariadb if args.backend == "mariadb" else create_postgresql
            backend = create(f"passport_b{secrets.token_hex(4)}", secrets.token_urlsafe(18))
            self.database_url, self.drop = backend.url, backend.drop
        self.redis_url = REDIS_URL if args.store == "redis" else ""
        self.kek = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        self.core = SERVER_CORE if args.pin else None

    def base_env(self) -> dict[str, str]:
        """This environment without PASSPORT_* settings, with this checkout's src/ first."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
        return env

    def client(self) -> tuple[str, str]:
        """A confidential application for the token endpoint scenarios."""
        env = self.base_env()
        env |= {"PASSPORT_DATABASE_URL": self.database_url, "PASSPORT_KEY_ENCRYPTION_KEY": self.kek}
        out = subprocess.run(
            [*PASSPORT, "app", "add", "BenchClient", "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=self.tmp,
        )
        app = json.loads(out.stdout)[0]
        return app["ClientId"], app["ClientSecret"]

    def site(self, host: str) -> None:
        """A site guarded by forward-auth at ``host`` (anyone signed in may open it)."""
        env = self.base_env()
        env |= {"PASSPORT_DATABASE_URL": self.database_url, "PASSPORT_KEY_ENCRYPTION_KEY": self.kek}
        subprocess.run(
            [*PASSPORT, "app", "add", "BenchSite", "--forward-auth-host", host, "--json"],
            capture_output=True,
            check=True,
            env=env,
            cwd=self.tmp,
        )

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            pinned(self.core, command),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.base_env() | env,
            cwd=self.tmp,
        )
        self.processes.append(process)
        return process

    def granian(self, target: str, env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        process = self.start(
            [
                str(BIN / "granian"),
                "--interface",
                "wsgi",
                "--workers",
                str(self.args.workers),
                "--blocking-threads",
                "4",
                "--port",
                str(port),
                "--working-dir",
                str(HERE),
                "--log-level",
                "warning",
                "--no-ws",
                target,
            ],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/", process)
        return url, process

    def passport(self) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        env = {
            "PASSPORT_KEY_ENCRYPTION_KEY": self.kek,
            "PASSPORT_LOG_LEVEL": "WARNING",
            "PASSPORT_AUTO_MIGRATE": "true",
            "PASSPORT_DATABASE_URL": self.database_url,
            "PASSPORT_PUBLIC_URL": f"http://127.0.0.1:{port}",  # serve needs it off SQLite
            "PASSPORT_REDIS_URL": self.redis_url,
            "PASSPORT_THROTTLE_IP_LIMIT": "1000000000",
            # wrk stands for the reverse proxy of the forward-auth scenario
            "PASSPORT_TRUSTED_PROXIES": "127.0.0.1",
        }
        process = self.start(
            [
                *PASSPORT,
                "serve",
                "--workers",
                str(self.args.workers),
                "--port",
                str(port),
            ],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        wait_up(url + "/healthz", process)
        return url, process

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=15)
        self.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def argon2_bound(cpus: int) -> tuple[float, float]:
    """Seconds per hash with Passport's default parameters, and the logins/s bound it sets."""
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    hasher.hash(PASSWORD)
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        hasher.hash(PASSWORD)
    seconds = (time.perf_counter() - started) / rounds
    return seconds, cpus / seconds


def worker_rss_mib(pid: int) -> list[float]:
    """Current resident memory of each worker process of the server."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    sizes = [status_kib(child, "VmRSS") for child in map(int, children.split())]
    return [kib / 1024 for kib in sizes if kib is not None]


def soak(args: argparse.Namespace, load: Load, base: str, cookie: dict[str, str], pid: int) -> None:
    """Mixed traffic for ``args.soak`` seconds; memory of each worker sampled every 10 s."""
    env = os.environ | {"BENCH_STATS": str(HERE / "stats.lua")}
    command = [
        "wrk",
        "-t",
        str(load.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{args.soak}s",
        "-s",
        str(HERE / "mixed.lua"),
        "-H",
        f"Cookie: {cookie['Cookie']}",
        base,
    ]
    samples: list[list[float]] = []
    with subprocess.Popen(
        pinned(load.core, command), stdout=subprocess.PIPE, text=True, env=env
    ) as running:
        time.sleep(min(30, args.soak / 10))  # warm-up: caches and pools fill first
        while running.poll() is None:
            samples.append(worker_rss_mib(pid))
            time.sleep(10)
        out = running.stdout.read() if running.stdout else ""
    stats = json.loads(out.strip().splitlines()[-1])
    first, last = samples[0], samples[-1]
    print(
        f"soak {args.soak}s: {stats['requests'] / stats['seconds']:.0f} req/s, "
        f"p99 {stats['p99_us'] / 1000:.2f} ms, errors {stats['errors']}"
    )
    for index, (start, end) in enumerate(zip(first, last, strict=False)):
        growth = (end - start) / start * 100 if start else 0.0
        print(f"worker {index}: {start:.0f} MiB after warm-up -> {end:.0f} MiB ({growth:+.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "mariadb"], default="sqlite")
    parser.add_argument("--store", choices=["db", "redis"], default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        help="Instead: mixed traffic for this many seconds, sampling memory.",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help=f"Servers on CPU {SERVER_CORE} with one worker, wrk on CPU {LOAD_CORE} with one "
        "thread (taskset), as bench/peers.py measures.",
    )
    args = parser.parse_args()
    args.store = args.store or ("db" if args.backend == "sqlite" else "redis")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    if args.pin and shutil.which("taskset") is None:
        raise SystemExit("--pin needs taskset (apt-get install util-linux)")
    if args.pin:
        args.workers = 1
    # The CPUs the server may use: the bounds below (Keycloak's rate, argon2id's) scale with it.
    cpus = 1 if args.pin else os.cpu_count() or 1
    load = Load(
        duration=args.duration,
        connections=args.connections,
        threads=1 if args.pin else 2,
        core=LOAD_CORE if args.pin else None,
    )

    servers = Servers(args)
    try:
        base, passport = servers.passport()
        origin = {"Origin": base}
        requests.post(
            base + "/Account/register",
            data={"username": "bench", "password": PASSWORD},
            headers=origin,
            timeout=10,
        )
        login = requests.post(
            base + "/Account/login",
            data={"username": "bench", "password": PASSWORD},
            headers=origin,
            timeout=10,
        )
        cookie = {"Cookie": f"passport_session={login.cookies['passport_session']}"}
        hello, hello_p = servers.granian("hello:app", {})
        least_env = (
            {"BENCH_REDIS_URL": servers.redis_url}
            if servers.redis_url
            else {"BENCH_DATABASE_URL": servers.database_url}
        )
        least, least_p = servers.granian("leastwork:app", least_env)
        index = requests.get(base + "/Service/Index", timeout=10)
        if index.status_code != 200 or index.json().get("Data", {}).get("Service") != "Passport":
            raise SystemExit(f"Service/Index answered {index.status_code}: {index.text[:200]}")
        pid = passport.pid

        results: list[Result] = []
        hello_r = wrk("hello-world WSGI (baseline)", hello + "/", load, server_pid=hello_p.pid)
        least_r = wrk(
            f"least-work session check ({args.store})",
            least + "/",
            load,
            headers=cookie,
            server_pid=least_p.pid,
        )
        results += [hello_r, least_r]
        scenarios = [
            ("Service/Index", "/Service/Index", {}, hello_r),
            ("Service/getApplication", "/Service/getApplication?name=Passport", {}, hello_r),
            ("Account/status (anonymous)", "/Account/status", {}, hello_r),
            ("Account/status (session)", "/Account/status", cookie, least_r),
            (
                "Permission/check (session)",
                "/Permission/check?application=Passport&permission=admin",
                cookie,
                least_r,
            ),
        ]
        for name, path, headers, baseline in scenarios:
            result = wrk(name, base + path, load, headers=headers, server_pid=pid)
            result.baseline, result.ratio = baseline.name, result.rps / baseline.rps
            results.append(result)

        # A reverse proxy's check of a guarded site (Caddy's and Traefik's headers), next
        # to the session check it must not cost more than (issue 16).
        servers.site("app.bench.example")
        proxy = {
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.bench.example",
            "X-Forwarded-Uri": "/reports?page=2",
        }
        check = requests.get(base + "/forward-auth", headers=cookie | proxy, timeout=10)
        if check.status_code != 200 or check.headers.get("Remote-User") != "bench":
            raise SystemExit(f"forward-auth answered {check.status_code}: {check.text[:200]}")
        status_r = next(r for r in results if r.name == "Account/status (session)")
        result = wrk(
            "forward-auth check (session)",
            base + "/forward-auth",
            load,
            headers=cookie | proxy,
            server_pid=pid,
        )
        result.baseline, result.ratio = status_r.name, result.rps / status_r.rps
        results.append(result)

        if args.soak:
            soak(args, load, base, cookie, pid)
            return

        client_id, secret = servers.client()
        basic = {
            "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        }
        # One token by hand first: its answer is checked, and the signing keys made at first
        # use are made by it rather than by many concurrent requests at once.
        first = requests.post(
            base + "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=basic,
            timeout=10,
        )
        if first.status_code != 200 or "access_token" not in first.json():
            raise SystemExit(f"token endpoint answered {first.status_code}: {first.text[:200]}")
        access = first.json()["access_token"]
        grant_env = {"BENCH_BODY": "grant_type=client_credentials"}
        token_r = wrk(
            "token endpoint (client credentials)",
            base + "/oauth2/token",
            load,
            headers=basic,
            script="post.lua",
            env=grant_env,
            server_pid=pid,
        )
        keycloak = 4 * 120 * cpus
        token_r.baseline, token_r.ratio = f"4x Keycloak {keycloak}/s", token_r.rps / keycloak
        results.append(token_r)
        intro_r = wrk(
            "token introspection",
            base + "/oauth2/introspect",
            load,
            headers=basic,
            script="post.lua",
            env={"BENCH_BODY": f"token={access}"},
            server_pid=pid,
        )
        intro_r.baseline, intro_r.ratio = least_r.name, intro_r.rps / least_r.rps
        jwks_r = wrk("JWKS", base + "/.well-known/jwks.json", load, server_pid=pid)
        jwks_r.baseline, jwks_r.ratio = hello_r.name, jwks_r.rps / hello_r.rps
        results += [intro_r, jwks_r]

        hash_seconds, bound = argon2_bound(cpus)
        storm_env = {"BENCH_ORIGIN": base}
        login_r = wrk(
            "Account/login",
            base + "/Account/login",
            load,
            script="login.lua",
            env=storm_env,
            connections=cpus * 2,
            server_pid=pid,
        )
        login_r.baseline, login_r.ratio = f"argon2id bound {bound:.0f}/s", login_r.rps / bound
        results.append(login_r)

        idle = next(r for r in results if r.name == "Account/status (session)")
        storm_load = Load(args.duration + 2, cpus * 2, 1, load.core)
        with background(
            base + "/Account/login",
            storm_load,
            script="login.lua",
            env=storm_env,
            connections=cpus * 2,
        ) as storm:
            time.sleep(1)
            # No CPU per request here: the server's CPU goes mostly to the storm's logins.
            during = wrk(
                "Account/status during login storm",
                base + "/Account/status",
                load,
                headers=cookie,
                connections=8,
            )
            storm.wait()
        during.baseline, during.ratio = "p99 vs idle status p99", during.p99_ms / idle.p99_ms
        results.append(during)

        pinning = (
            f" pinned: servers on CPU {SERVER_CORE}, wrk -t 1 on CPU {LOAD_CORE}"
            if args.pin
            else ""
        )
        print(
            f"backend={args.backend} store={args.store} workers={args.workers} cpus={cpus} "
            f"connections={args.connections} duration={args.duration}s "
            f"argon2id={hash_seconds * 1000:.1f}ms/hash{pinning}"
        )
        print(
            f"{'scenario':38} {'req/s':>8} {'p50':>7} {'p99':>7} {'p999':>7} {'err':>4} "
            f"{'CPU ms':>7} {'ratio':>6}  baseline"
        )
        for r in results:
            ratio = f"{r.ratio:6.2f}" if r.baseline else "      "
            cpu = f"{r.cpu_ms:7.3f}" if r.cpu_ms is not None else f"{'-':>7}"
            print(
                f"{r.name:38} {r.rps:8.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.p999_ms:7.2f} "
                f"{r.errors:4d} {cpu} {ratio}  {r.baseline}"
            )
        print("(CPU ms: CPU milliseconds per request of the server's process tree)")
        cheapest = next(r for r in results if r.name == "Service/Index")
        if cheapest.cpu_ms and hello_r.cpu_ms:
            print(
                f"cheapest answer CPU ÷ hello CPU: {cheapest.cpu_ms / hello_r.cpu_ms:.2f} "
                f"(Service/Index {cheapest.cpu_ms:.3f} ms ÷ hello-world {hello_r.cpu_ms:.3f} ms; "
                "goal <= 4)"
            )
        print(f"peak worker memory: passport {peak_rss_mib(passport.pid):.0f} MiB")
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
