"""Benchmark runner: Passport served the production way, next to a baseline, in one run.

Starts a bare hello-world WSGI app and ``passport serve`` with the same server
(Granian), the same number of workers, on loopback; loads each scenario with
``wrk`` from a separate process; prints requests/s, p50/p99 latency, errors,
and every scenario's ratio to the hello-world baseline measured in this run
(absolute numbers drift on shared machines, ratios much less).

    .venv/bin/python bench/run.py [--workers 2] [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery staple"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early ({url})")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start ({url})")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(name: str, url: str, args: argparse.Namespace, headers: dict[str, str]) -> Result:
    command = [
        "wrk",
        "--latency",
        "-t",
        "2",
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
    ]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))

    def parse(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return _ms(value, unit)

    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?(\d+)"):
        errors += sum(int(n) for n in re.findall(pattern, out))
    return Result(name, rps, parse(lat["50"]), parse(lat["99"]), errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="passport-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    env |= {"PASSPORT_LOG_LEVEL": "WARNING", "PASSPORT_DATABASE_URL": f"sqlite:///{tmp}/b.sqlite3"}
    hello_port, passport_port = free_port(), free_port()
    hello = subprocess.Popen(
        [
            str(BIN / "granian"),
            "--interface",
            "wsgi",
            "--workers",
            str(args.workers),
            "--blocking-threads",
            "4",
            "--port",
            str(hello_port),
            "--working-dir",
            str(HERE),
            "--log-level",
            "warning",
            "--no-ws",
            "hello:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    passport = subprocess.Popen(
        [
            str(BIN / "passport"),
            "serve",
            "--workers",
            str(args.workers),
            "--port",
            str(passport_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp,
    )
    try:
        base = f"http://127.0.0.1:{passport_port}"
        wait_up(f"http://127.0.0.1:{hello_port}/", hello)
        wait_up(base + "/healthz", passport)
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
        cookie = f"passport_session={login.cookies['passport_session']}"

        print(
            f"workers={args.workers} connections={args.connections} duration={args.duration}s "
            f"cpus={os.cpu_count()} backend=sqlite"
        )
        results = [
            wrk("hello-world WSGI (baseline)", f"http://127.0.0.1:{hello_port}/", args, {}),
            wrk("Service/getApplication", base + "/Service/getApplication?name=Passport", args, {}),
            wrk("Account/status (anonymous)", base + "/Account/status", args, {}),
            wrk(
                "Account/status (session cookie)",
                base + "/Account/status",
                args,
                {"Cookie": cookie},
            ),
        ]
        baseline = results[0].rps
        print(
            f"{'scenario':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6}"
        )
        for r in results:
            print(
                f"{r.name:36} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
                f"{r.rps / baseline:6.2f}"
            )
    finally:
        for process in (hello, passport):
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
