"""Logging: one line per event, to stderr, never a secret or a traceback."""

from __future__ import annotations

import logging
import sys
import traceback


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


def code_location(exc: BaseException) -> str:
    """Where an exception happened, as file:line frames only (no message, no locals, no
    SQL): what a log line or a terminal may show of an unexpected error."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/passport/" in f.filename] or frames
    return " < ".join(
        f"{f.filename.rsplit('/passport/', 1)[-1]}:{f.lineno} in {f.name}"
        for f in reversed(ours[-4:])
    )
