"""The npm relying-party libraries of ``tests/clients`` (openid-client, oidc-client-ts),
pinned by its ``package-lock.json`` and installed by ``make install-test``.

A test that needs them fails — it does not skip — when Node or the packages are
missing, saying how to install them: a suite that silently stops running the real
clients would stop proving anything about them.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from typing import Any

import pytest

CLIENTS = Path(__file__).parent / "clients"
NODE_MODULES = CLIENTS / "node_modules"
INSTALL = "run `make install-test` (npm ci --prefix tests/clients)"


def require(*packages: str) -> str:
    """The path of ``node``, after checking that it and ``packages`` are installed."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"Node.js is not installed (Debian: apt-get install nodejs npm); {INSTALL}")
    missing = [name for name in packages if not (NODE_MODULES / name / "package.json").is_file()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing from {NODE_MODULES}: {INSTALL}", pytrace=False)
    return node


def run(
    script: str, step: str, payload: dict[str, Any], *, package: str, timeout: float = 30
) -> dict[str, Any]:
    """Run one step of a Node driver in ``tests/clients`` that uses ``package``:
    ``payload`` as JSON on stdin, one JSON object back on stdout (``{"ok": ...}``, or
    ``{"error": ...}`` with exit status 2 when the library or the server refused).
    Anything else fails the test with the driver's stderr."""
    node = require(package)
    try:
        done = subprocess.run(
            [node, str(CLIENTS / script), step],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=CLIENTS,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = (
            exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        )
        raise AssertionError(
            f"{script} {step}: no answer in {timeout} s\nstderr:\n{stderr}"
        ) from None
    if done.returncode not in (0, 2):
        raise AssertionError(
            f"{script} {step} exited {done.returncode}\nstderr:\n{done.stderr}\n"
            f"stdout:\n{done.stdout}"
        )
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"{script} {step}: not JSON\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        ) from None
    return answer


class Running:
    """A driver step that prints more than one line while it runs (openid-client's
    device grant polls while the test plays the user): read each line as it comes, then
    the step's answer (``{"ok": ...}`` or ``{"error": ...}``, its last line)."""

    def __init__(self, process: subprocess.Popen[str], stderr: IO[str], name: str) -> None:
        self.process, self.stderr, self.name = process, stderr, name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the end of the output

    def _stderr(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def next(self, timeout: float) -> dict[str, Any]:
        """The next line, as JSON; fails the test when none comes in ``timeout`` s."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.name}: no line in {timeout} s\nstderr:\n{self._stderr()}"
            ) from None
        if line is None:
            code = self.process.wait(timeout=10)
            raise AssertionError(f"{self.name} ended (exit {code})\nstderr:\n{self._stderr()}")
        try:
            answer: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(
                f"{self.name}: not JSON: {line!r}\nstderr:\n{self._stderr()}"
            ) from None
        return answer

    def answer(self, timeout: float, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The lines up to the step's answer (those before it added to ``seen``), then
        the answer, once the process ended as :func:`run` expects."""
        while True:
            line = self.next(timeout)
            if "ok" in line or "error" in line:
                break
            if seen is not None:
                seen.append(line)
        code = self.process.wait(timeout=10)
        if code != (2 if "error" in line else 0):
            raise AssertionError(f"{self.name} exited {code}\nstderr:\n{self._stderr()}")
        return line


@contextmanager
def start(script: str, step: str, payload: dict[str, Any], *, package: str) -> Iterator[Running]:
    """Start one step of a Node driver (as :func:`run`) without waiting for it; the
    process is killed if it still runs when the block ends."""
    node = require(package)
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [node, str(CLIENTS / script), step],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=CLIENTS,
        )
        assert process.stdin is not None and process.stdout is not None
        running = Running(process, stderr, f"{script} {step}")
        try:
            process.stdin.write(json.dumps(payload))
            process.stdin.close()
            yield running
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            running.reader.join(timeout=10)
            process.stdout.close()
