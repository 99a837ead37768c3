"""What both benchmark runners (``run.py``, ``peers.py``) measure, and how.

* ``wrk`` drives the load and reports throughput, latency percentiles and errors through
  ``stats.lua`` (one JSON line);
* the CPU time a server spends is read from ``/proc``: utime+stime of the server process
  and all its descendants (plus what their reaped children left in cutime+cstime), before
  and after the ``wrk`` run, divided by the requests ``wrk`` completed;
* optionally the CPU of the stores the server talks to, measured the same way: the
  PostgreSQL backends connected to its database, and the Redis server (``INFO cpu``).

Pinning (``taskset``): a server on one core, ``wrk`` on another, so that neither steals
the other's CPU and each server gets exactly one core.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = "0"
LOAD_CORE = "1"


def pinned(core: str | None, command: Sequence[str]) -> list[str]:
    """``command`` run on CPU ``core`` (``taskset -c``), or as is when ``core`` is None."""
    return ["taskset", "-c", core, *command] if core is not None else list(command)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Wait until ``url`` answers 200 (any answer when the server has no such check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early with status {process.returncode} ({url})")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server did not start within {seconds:.0f} s ({url})")


# -- CPU and memory from /proc --


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu_seconds(pid: int) -> float | None:
    """utime+stime+cutime+cstime of one process (None when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state ppid ... utime is field 14 of stat(5), i.e. index 11 here.
    return sum(int(value) for value in fields[11:15]) / TICK


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from the parent links in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(parents.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds the process tree under ``pid`` has used so far (live processes' own
    time plus what the processes they reaped left them)."""
    return sum(process_cpu_seconds(p) or 0.0 for p in descendants(pid))


def status_kib(process: int, field: str) -> int | None:
    """One ``kB`` field of ``/proc/<pid>/status`` (None once the process is gone)."""
    try:
        status = Path(f"/proc/{process}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def tree_rss_mib(pid: int) -> float:
    """Resident memory of the whole process tree now (sum of VmRSS)."""
    return sum(status_kib(p, "VmRSS") or 0 for p in descendants(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """Largest VmHWM (peak resident memory) among the server's processes."""
    peaks = [status_kib(p, "VmHWM") for p in descendants(pid)]
    return max((kib / 1024 for kib in peaks if kib is not None), default=0.0)


class StoreCpu:
    """CPU used by the stores of one server: the PostgreSQL backends connected to its
    database (``databases``), and the whole Redis server (``redis_url``; shared, so only
    meaningful while nothing else uses Redis)."""

    def __init__(self, databases: Sequence[str] = (), redis_url: str = "") -> None:
        self.databases = list(databases)
        self.redis_url = redis_url

    def __bool__(self) -> bool:
        return bool(self.databases or self.redis_url)

    def _backends(self) -> dict[int, float]:
        if not self.databases:
            return {}
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        ) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)", (self.databases,)
            ).fetchall()
        found = {int(row[0]): process_cpu_seconds(int(row[0])) for row in rows}
        return {pid: cpu for pid, cpu in found.items() if cpu is not None}

    def _redis(self) -> float:
        if not self.redis_url:
            return 0.0
        import redis

        with redis.Redis.from_url(self.redis_url) as client:
            info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def sample(self) -> tuple[dict[int, float], float]:
        return self._backends(), self._redis()

    def since(self, before: tuple[dict[int, float], float]) -> float:
        """CPU seconds since ``before``: backends that appeared since count in full, those
        that ended since are lost (connection pools keep theirs for the whole run)."""
        backends_before, redis_before = before
        backends_now, redis_now = self.sample()
        spent = sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_now.items())
        return spent + (redis_now - redis_before)


# -- wrk --


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int  # every kind: connect, read, write, timeout, status >= 400
    requests: int = 0
    status_errors: int = 0  # answers with status >= 400
    cpu_ms: float | None = None  # server process tree, per request
    store_cpu_ms: float | None = None  # its PostgreSQL backends and Redis, per request
    after_cpu_s: float | None = None  # CPU seconds spent after wrk stopped (queued requests)
    baseline: str = ""
    ratio: float = 0.0


@dataclass
class Load:
    """How ``wrk`` loads a server: for how long, with how many connections and threads,
    on which core (None: anywhere), and after how long an answer counts as a timeout
    error (None: wrk's 2 s)."""

    duration: float
    connections: int
    threads: int = 1
    core: str | None = LOAD_CORE
    timeout: float | None = None


def wrk(
    name: str,
    url: str,
    load: Load,
    *,
    headers: Mapping[str, str] | None = None,
    script: str = "stats.lua",
    env: Mapping[str, str] | None = None,
    server_pid: int | None = None,
    store: StoreCpu | None = None,
    connections: int | None = None,
) -> Result:
    """Run ``wrk`` once against ``url``; with ``server_pid``, the CPU per request of that
    process tree (and with ``store``, of its stores) over the run."""
    command = [
        "wrk",
        "-t",
        str(load.threads),
        "-c",
        str(connections or load.connections),
        "-d",
        f"{load.duration:g}s",
        "-s",
        str(HERE / script),
    ]
    if load.timeout:
        command += ["--timeout", f"{load.timeout:g}s"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    environment = {**os.environ, "BENCH_STATS": str(HERE / "stats.lua"), **(env or {})}
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    store_before = store.sample() if store else None
    out = subprocess.run(
        pinned(load.core, [*command, url]),
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before if server_pid else None
    store_cpu = store.since(store_before) if store and store_before else None
    stats = json.loads(out.strip().splitlines()[-1])
    done = int(stats["requests"])

    def per_request(seconds: float | None) -> float | None:
        return seconds * 1000 / done if seconds is not None and done else None

    return Result(
        name=name,
        rps=done / stats["seconds"],
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        p999_ms=stats["p999_us"] / 1000,
        errors=int(stats["errors"]),
        requests=done,
        status_errors=int(stats.get("status_errors", 0)),
        cpu_ms=per_request(cpu),
        store_cpu_ms=per_request(store_cpu),
    )


def settle(pids: Sequence[int], quiet: float = 0.03, most: float = 120) -> dict[int, float]:
    """Wait until the process trees under ``pids`` are idle together (less than ``quiet``
    of a CPU over half a second), at most ``most`` seconds: a server still answering
    requests queued by a finished ``wrk`` run must not steal the CPU of the next one.
    Returns the CPU seconds each tree spent while waited for."""
    started = time.monotonic()
    first = {pid: tree_cpu_seconds(pid) for pid in pids}
    before = first
    while time.monotonic() - started < most:
        time.sleep(0.5)
        now = {pid: tree_cpu_seconds(pid) for pid in pids}
        if sum(now[pid] - before[pid] for pid in pids) < quiet * 0.5:
            break
        before = now
    return {pid: now[pid] - first[pid] for pid in pids}


def background(
    url: str, load: Load, *, script: str, env: Mapping[str, str], connections: int
) -> subprocess.Popen[bytes]:
    """A ``wrk`` run left going in the background (e.g. a login storm), output discarded."""
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{load.duration:g}s",
        "-s",
        str(HERE / script),
        url,
    ]
    environment = {**os.environ, "BENCH_STATS": str(HERE / "stats.lua"), **env}
    return subprocess.Popen(pinned(load.core, command), stdout=subprocess.DEVNULL, env=environment)
