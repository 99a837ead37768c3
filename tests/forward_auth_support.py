"""Real reverse proxies in front of a tiny upstream, guarded by a live Passport.

nginx (``auth_request``) and Caddy (``forward_auth``) run in the foreground on free ports
of 127.0.0.1 with the configurations shipped in ``docs/forward-auth/`` — only the host
names and ports are replaced, so the documentation cannot drift from what is tested.
Host names are ``*.passport.test`` (Chromium maps them to 127.0.0.1 with
``--host-resolver-rules``; ``requests`` sends the ``Host`` header), so that the session
cookie's domain ``passport.test`` reaches both Passport and the sites.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from conftest import free_port

DOCS = Path(__file__).resolve().parent.parent / "docs" / "forward-auth"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
SSO = "sso.passport.test"
NGINX_SITE = "app.passport.test"
CADDY_SITE = "caddy.passport.test"


class _Echo(BaseHTTPRequestHandler):
    """The protected application: answers every request with the headers it received."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Proxies:
    passport: str  # http://sso.passport.test:<port>
    passport_port: int
    nginx_port: int
    caddy_port: int
    upstream_port: int
    database_url: str
    logs: Path

    @property
    def nginx_site(self) -> str:
        return f"http://{NGINX_SITE}:{self.nginx_port}"

    @property
    def caddy_site(self) -> str:
        return f"http://{CADDY_SITE}:{self.caddy_port}"

    def output(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs.glob("*.log")
        )


def _wait(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')}")
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')}")


def nginx_config(passport_port: int, nginx_port: int, upstream_port: int) -> str:
    site = (DOCS / "nginx.conf").read_text()
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{nginx_port};"),
        ("app.example.com", NGINX_SITE),
        ("sso.example.com", f"{SSO}:{passport_port}"),
        ("127.0.0.1:8000", f"127.0.0.1:{passport_port}"),
        ("127.0.0.1:3000", f"127.0.0.1:{upstream_port}"),
    ):
        assert old in site, old
        site = site.replace(old, new)
    return site


def caddy_config(passport_port: int, caddy_port: int, upstream_port: int, storage: Path) -> str:
    site = (DOCS / "Caddyfile").read_text()
    for old, new in (
        ("app.example.com {", f"http://{CADDY_SITE}:{caddy_port} {{"),
        ("127.0.0.1:8000", f"127.0.0.1:{passport_port}"),
        ("127.0.0.1:3000", f"127.0.0.1:{upstream_port}"),
    ):
        assert old in site, old
        site = site.replace(old, new)
    return f"{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {storage}\n}}\n\n{site}"


def start(tmp: Path, database_url: str) -> Iterator[Proxies]:
    """Passport, the upstream, nginx and Caddy; stopped (by their process ids) after."""
    logs = tmp / "logs"
    logs.mkdir()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    upstream_port = upstream.server_address[1]
    passport_port, nginx_port, caddy_port = free_port(), free_port(), free_port()
    passport_url = f"http://{SSO}:{passport_port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")} | {
        "PASSPORT_PUBLIC_URL": passport_url,
        "PASSPORT_TRUSTED_PROXIES": "127.0.0.1",
        "PASSPORT_COOKIE_DOMAIN": "passport.test",
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        log = logs / "passport.log"
        passport = subprocess.Popen(
            [sys.executable, "-m", "passport", "serve", "--port", str(passport_port),
             "--database-url", database_url],
            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=environment, cwd=tmp,
        )  # fmt: skip
        started.append(passport)
        _wait(passport_port, passport, "passport serve", log)

        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        (nginx_dir / "site.conf").write_text(nginx_config(passport_port, nginx_port, upstream_port))
        user = "user root;\n" if os.geteuid() == 0 else ""
        (nginx_dir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {nginx_dir}/nginx.pid;\n"
            f"error_log {logs}/nginx.log info;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n access_log {logs}/nginx-access.log;\n"
            + "".join(
                f" {kind}_temp_path {nginx_dir}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f" include {nginx_dir}/site.conf;\n}}\n"
        )
        nginx = subprocess.Popen(
            [NGINX, "-p", str(nginx_dir), "-e", str(logs / "nginx.log"), "-c",
             str(nginx_dir / "nginx.conf")],
            stdout=(logs / "nginx-out.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(nginx)
        _wait(nginx_port, nginx, "nginx", logs / "nginx.log")

        caddy_dir = tmp / "caddy"
        caddy_dir.mkdir()
        caddyfile = caddy_dir / "Caddyfile"
        caddyfile.write_text(
            caddy_config(passport_port, caddy_port, upstream_port, caddy_dir / "data")
        )
        caddy = subprocess.Popen(
            [CADDY, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            stdout=(logs / "caddy.log").open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(caddy_dir), "XDG_DATA_HOME": str(caddy_dir),
                 "XDG_CONFIG_HOME": str(caddy_dir)},
        )  # fmt: skip
        started.append(caddy)
        _wait(caddy_port, caddy, "caddy", logs / "caddy.log")
        yield Proxies(
            passport_url, passport_port, nginx_port, caddy_port, upstream_port, database_url, logs
        )
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        upstream.shutdown()
