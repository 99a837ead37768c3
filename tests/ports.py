"""Ports for the servers the tests start (Passport, Apache, nginx, Caddy, SMTP, proxies).

A port the kernel picks (bind to 0) comes from its ephemeral range, the same range every
outgoing connection of the run takes its own port from: between choosing a port and the
server binding it, a client connection of another worker could take it, and the server
then failed to start ("Address already in use": seen in a full run).  So the ports are
chosen below that range, from a slice of its own for each pytest-xdist worker, in turn
from a random start (a port a previous run left in TIME_WAIT is seldom next), each
checked free when chosen.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

LOW, HIGH = 10_000, 32_000  # below Linux's default ephemeral range (32768-60999)
_WORKERS = 16  # slices: more xdist workers than this share them, still checked free
_SLICE = (HIGH - LOW) // _WORKERS


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % _WORKERS if worker.isdigit() else 0
    start = LOW + index * _SLICE
    return range(start, start + _SLICE)


_PORTS = _slice()
_turn = itertools.count(random.randrange(len(_PORTS)))


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now, from this worker's slice; every
    socket is held until all are chosen."""
    held: list[socket.socket] = []
    try:
        for _ in range(len(_PORTS)):
            if len(held) == count:
                break
            port = _PORTS[next(_turn) % len(_PORTS)]
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        if len(held) < count:
            raise RuntimeError(f"no {count} free ports in {_PORTS}")
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]
