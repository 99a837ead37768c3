"""Benchmark runner: Passport served the production way, next to its baselines, in one run.

Starts, with the same server (Granian) and the same number of workers:
a bare hello-world WSGI app, the least-work session check (``leastwork.py``:
cookie hash + one Redis GET or one primary-key SELECT), and ``passport serve``
on the chosen backend.  Loads each scenario with ``wrk`` from a separate
process and prints requests/s, p50/p99/p999, errors, the workers' peak memory,
and each scenario's ratio to its baseline measured in this same run.

    .venv/bin/python bench/run.py [--backend sqlite|postgresql|mariadb] [--store db|redis]
                                  [--workers N] [--duration S] [--connections C]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from argon2 import PasswordHasher

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE.parent / "tests"))
PASSWORD = "correct horse battery staple"
REDIS_URL = "redis://127.0.0.1:6379/12"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    baseline: str = ""
    ratio: float = 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start ({url})")


def peak_rss_mib(pid: int) -> float:
    """Largest VmHWM (peak resident memory) among the server's worker processes."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    peaks = []
    for child in [pid, *map(int, children.split())]:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def wrk(
    name: str,
    url: str,
    args: argparse.Namespace,
    headers: dict[str, str] | None = None,
    script: str = "stats.lua",
    env: dict[str, str] | None = None,
    connections: int | None = None,
) -> Result:
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        str(connections or args.connections),
        "-d",
        f"{args.duration}s",
        "-s",
        str(HERE / script),
    ]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    environment = os.environ | {"BENCH_STATS": str(HERE / "stats.lua")} | (env or {})
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, env=environment
    ).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    return Result(
        name,
        stats["requests"] / stats["seconds"],
        stats["p50_us"] / 1000,
        stats["p99_us"] / 1000,
        stats["p999_us"] / 1000,
        stats["errors"],
    )


class Servers:
    """The three servers of one run, and what they need."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="passport-bench-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.drop = lambda: None
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

    def client(self) -> tuple[str, str]:
        """A confidential application for the token endpoint scenarios."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        env |= {"PASSPORT_DATABASE_URL": self.database_url, "PASSPORT_KEY_ENCRYPTION_KEY": self.kek}
        out = subprocess.run(
            [str(BIN / "passport"), "app", "add", "BenchClient", "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=self.tmp,
        )
        app = json.loads(out.stdout)[0]
        return app["ClientId"], app["ClientSecret"]

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=base | env,
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
        }
        process = self.start(
            [
                str(BIN / "passport"),
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
    sizes = []
    for child in map(int, children.split()):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def soak(args: argparse.Namespace, base: str, cookie: dict[str, str], pid: int) -> None:
    """Mixed traffic for ``args.soak`` seconds; memory of each worker sampled every 10 s."""
    env = os.environ | {"BENCH_STATS": str(HERE / "stats.lua")}
    command = [
        "wrk",
        "-t",
        "2",
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
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as load:
        time.sleep(min(30, args.soak / 10))  # warm-up: caches and pools fill first
        while load.poll() is None:
            samples.append(worker_rss_mib(pid))
            time.sleep(10)
        out = load.stdout.read() if load.stdout else ""
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
    args = parser.parse_args()
    args.store = args.store or ("db" if args.backend == "sqlite" else "redis")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    cpus = os.cpu_count() or 1

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
        hello, _ = servers.granian("hello:app", {})
        least_env = (
            {"BENCH_REDIS_URL": servers.redis_url}
            if servers.redis_url
            else {"BENCH_DATABASE_URL": servers.database_url}
        )
        least, _ = servers.granian("leastwork:app", least_env)

        results: list[Result] = []
        hello_r = wrk("hello-world WSGI (baseline)", hello + "/", args)
        least_r = wrk(f"least-work session check ({args.store})", least + "/", args, cookie)
        results += [hello_r, least_r]
        scenarios = [
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
            result = wrk(name, base + path, args, headers)
            result.baseline, result.ratio = baseline.name, result.rps / baseline.rps
            results.append(result)

        if args.soak:
            soak(args, base, cookie, passport.pid)
            return

        client_id, secret = servers.client()
        basic = {
            "Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        }
        grant_env = {"BENCH_BODY": "grant_type=client_credentials"}
        token_r = wrk(
            "token endpoint (client credentials)",
            base + "/oauth2/token",
            args,
            basic,
            script="post.lua",
            env=grant_env,
        )
        keycloak = 4 * 120 * cpus
        token_r.baseline, token_r.ratio = f"4x Keycloak {keycloak}/s", token_r.rps / keycloak
        results.append(token_r)
        access = requests.post(
            base + "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers=basic,
            timeout=10,
        ).json()["access_token"]
        intro_r = wrk(
            "token introspection",
            base + "/oauth2/introspect",
            args,
            basic,
            script="post.lua",
            env={"BENCH_BODY": f"token={access}"},
        )
        intro_r.baseline, intro_r.ratio = least_r.name, intro_r.rps / least_r.rps
        jwks_r = wrk("JWKS", base + "/.well-known/jwks.json", args)
        jwks_r.baseline, jwks_r.ratio = hello_r.name, jwks_r.rps / hello_r.rps
        results += [intro_r, jwks_r]

        hash_seconds, bound = argon2_bound(cpus)
        storm_env = {"BENCH_ORIGIN": base}
        login_r = wrk(
            "Account/login",
            base + "/Account/login",
            args,
            script="login.lua",
            env=storm_env,
            connections=cpus * 2,
        )
        login_r.baseline, login_r.ratio = f"argon2id bound {bound:.0f}/s", login_r.rps / bound
        results.append(login_r)

        idle = next(r for r in results if r.name == "Account/status (session)")
        with subprocess.Popen(
            [
                "wrk",
                "-t",
                "1",
                "-c",
                str(cpus * 2),
                "-d",
                f"{args.duration + 2}s",
                "-s",
                str(HERE / "login.lua"),
                base + "/Account/login",
            ],
            stdout=subprocess.DEVNULL,
            env=os.environ | storm_env | {"BENCH_STATS": str(HERE / "stats.lua")},
        ) as storm:
            time.sleep(1)
            during = wrk(
                "Account/status during login storm",
                base + "/Account/status",
                args,
                cookie,
                connections=8,
            )
            storm.wait()
        during.baseline, during.ratio = "p99 vs idle status p99", during.p99_ms / idle.p99_ms
        results.append(during)

        print(
            f"backend={args.backend} store={args.store} workers={args.workers} cpus={cpus} "
            f"connections={args.connections} duration={args.duration}s "
            f"argon2id={hash_seconds * 1000:.1f}ms/hash"
        )
        print(
            f"{'scenario':38} {'req/s':>8} {'p50':>7} {'p99':>7} {'p999':>7} {'err':>4} "
            f"{'ratio':>6}  baseline"
        )
        for r in results:
            ratio = f"{r.ratio:6.2f}" if r.baseline else "      "
            print(
                f"{r.name:38} {r.rps:8.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.p999_ms:7.2f} "
                f"{r.errors:4d} {ratio}  {r.baseline}"
            )
        print(f"peak worker memory: passport {peak_rss_mib(passport.pid):.0f} MiB")
    finally:
        servers.stop()


if __name__ == "__main__":
    main()
