"""Logging: one line per event, to stderr, never a secret or a traceback."""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    root = logging.getLogger("passport")
    if getattr(root, "_passport_configured", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    root._passport_configured = True  # type: ignore[attr-defined]
