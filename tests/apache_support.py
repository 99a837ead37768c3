"""A real Apache httpd with mod_auth_openidc, run by a test as a foreground subprocess.

Nothing of the system's Apache is used but its binary and modules: the configuration,
pid file, logs, mutexes and runtime files live in a private directory, Apache listens on
a free port of 127.0.0.1, and it is stopped (SIGTERM, then SIGKILL) when the test ends.
Run as root, Apache will not serve as root (its children switch to ``www-data``), so the
directory is handed to that user; run as anyone else, it serves as that user.

Behind Apache an :class:`Echo` upstream (a thread in the test process, reached through
``mod_proxy_http``) answers every request with the headers it received, as JSON: what
the application behind mod_auth_openidc sees (``OIDC_CLAIM_*`` headers, the user).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from ports import free_port  # noqa: F401 - re-exported for the Apache tests
from ports import free_ports  # noqa: F401

APACHE = "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
# What the configurations below use; mod_unixd, mod_log_config and mod_so are built in.
NEEDED = (
    "mpm_event",
    "authn_core",
    "authz_core",
    "authz_user",
    "headers",
    "proxy",
    "proxy_http",
    "socache_shmcb",
    "ssl",
    "auth_openidc",
)
# The unprivileged user Debian's Apache serves as when started by root.
SERVICE_USER = "www-data"


def available() -> str:
    """Why Apache with mod_auth_openidc cannot run here ("" when it can)."""
    if not os.access(APACHE, os.X_OK):
        return f"{APACHE} is not installed (Debian package apache2)"
    missing = [m for m in NEEDED if not (MODULES / f"mod_{m}.so").exists()]
    if missing:
        return f"Apache modules missing: {', '.join(missing)} (libapache2-mod-auth-openidc)"
    return ""


class Echo:
    """The application behind Apache: answers every request with what it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = {
                    "method": self.command,
                    "path": self.path,
                    # Header names as sent (Apache keeps OIDC_CLAIM_email's case).
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length).decode(errors="replace"),
                }
                echo.requests.append(seen)
                data = json.dumps(seen).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Apache:
    """A running Apache; ``url`` is where it listens, ``error_log()`` what it said."""

    url: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] | None = None

    def error_log(self) -> str:
        parts = []
        for name in ("access.log", "error.log", "stderr.log"):
            path = self.root / name
            if path.exists():
                text = path.read_text(errors="replace")
                if text.strip():
                    parts.append(f"--- {name} ---\n{text[-6000:]}")
        return "\n".join(parts) or "(Apache's logs are empty)"

    def logged(self, text: str, log: str = "error.log") -> bool:
        """Whether Apache's whole error log (or ``log``) holds ``text``."""
        path = self.root / log
        return path.exists() and text in path.read_text(errors="replace")

    def accessed(self, text: str) -> bool:
        """Whether the access log (time, vhost, request line, status) holds ``text``."""
        return self.logged(text, "access.log")

    def why(self, response: requests.Response) -> str:
        """An assertion message: the response, then what Apache logged."""
        return (
            f"{response.request.method} {response.url} -> {response.status_code} "
            f"{dict(response.headers)}\n{response.text[:800]}\n{self.error_log()}"
        )

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            # SIGTERM is Apache's "stop now": the parent ends its children and exits.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.process = None


def config(
    apache: Apache, body: str, *, listen: bool = True, log_level: str = "auth_openidc:debug"
) -> str:
    """The whole httpd.conf: server basics in ``apache.root``, then ``body`` (which says
    ``Listen 127.0.0.1:<apache.port>`` itself when ``listen`` is false, e.g. in a vhost)."""
    root = apache.root
    loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in NEEDED)
    user = ""
    if os.geteuid() == 0:
        user = f"User {SERVICE_USER}\nGroup {SERVICE_USER}\n"
    return f"""\
ServerRoot "{root}"
ServerName 127.0.0.1
{f"Listen 127.0.0.1:{apache.port}" if listen else ""}
PidFile "{root}/httpd.pid"
DefaultRuntimeDir "{root}"
Mutex file:{root} default
ErrorLog "{root}/error.log"
CustomLog "{root}/access.log" "%{{%T}}t %v:%p \\"%r\\" %>s"
LogLevel warn {log_level}
{loads}
{user}StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 4
MaxSpareThreads 32
Timeout 30
KeepAlive Off
DocumentRoot "{root}/htdocs"
<Directory />
    Require all denied
</Directory>
{body}
"""


def start(root: Path, port: int, render: Callable[[Apache], str]) -> Apache:
    """Write the configuration ``render`` gives and start Apache in the foreground; wait
    (bounded) until it answers.  On failure the error log is in the exception."""
    apache = Apache(url=f"http://127.0.0.1:{port}", port=port, root=root)
    (root / "htdocs").mkdir(exist_ok=True)
    conf = root / "httpd.conf"
    conf.write_text(render(apache))
    if os.geteuid() == 0:
        # Apache's children serve as www-data: the runtime files are theirs to write.
        entry = pwd.getpwnam(SERVICE_USER)
        for path in (root, *root.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    check = subprocess.run(
        [APACHE, "-t", "-d", str(root), "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check.returncode != 0:
        raise RuntimeError(f"Apache refuses its configuration:\n{check.stderr}\n{conf.read_text()}")
    stderr = (root / "stderr.log").open("wb")
    apache.process = subprocess.Popen(
        [APACHE, "-d", str(root), "-f", str(conf), "-DFOREGROUND"],
        stdout=stderr,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
    )
    stderr.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if apache.process.poll() is not None:
            log = apache.error_log()
            apache.process = None
            raise RuntimeError(f"Apache exited at start:\n{log}")
        try:
            requests.get(apache.url + "/", timeout=1)
            return apache
        except requests.ConnectionError:
            time.sleep(0.1)
    apache.stop()
    raise RuntimeError(f"Apache did not answer within 20 s:\n{apache.error_log()}")


def tls_certificate(root: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (``cert.pem``, ``key.pem`` in ``root``):
    mod_auth_openidc fetches a JWKS or introspects over https only, and trusts this one
    through ``OIDCCABundlePath``."""
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def private_root() -> Path:
    """A fresh directory for one Apache, reachable by the user its children serve as
    (pytest's ``tmp_path`` is inside a directory only its owner may enter)."""
    root = Path(tempfile.mkdtemp(prefix="passport-apache-"))
    root.chmod(0o755)
    return root


def remove(root: Path) -> None:
    """Delete an Apache's directory; ``KEEP_APACHE=1`` in the environment keeps it (its
    configuration and logs) for a look after the test."""
    if os.environ.get("KEEP_APACHE"):
        return
    shutil.rmtree(root, ignore_errors=True)


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    explain: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``predicate`` until it returns something true, at most ``timeout`` seconds;
    else fail saying ``what`` was awaited and what ``explain`` tells then (a log)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}\n{explain()}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
