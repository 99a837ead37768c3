"""The npm relying-party libraries of ``tests/clients`` (openid-client, oidc-client-ts),
pinned by its ``package-lock.json`` and installed by ``make install-test``.

A test that needs them fails — it does not skip — when Node or the packages are
missing, saying how to install them: a suite that silently stops running the real
clients would stop proving anything about them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
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
