"""Free TCP ports on loopback for test services; tests never use fixed ports."""

from __future__ import annotations

import contextlib
import socket

from .waiting import wait_until


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, *, start: int = 20000, stop: int = 60000) -> int:
    """A base port P such that P..P+count-1 are all free (for servers that bind a run of ports)."""
    import random

    for _ in range(200):
        base = random.randrange(start, stop - count)
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    def listens() -> bool:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.settimeout(0.5)
            return s.connect_ex((host, port)) == 0

    wait_until(listens, timeout, what=f"something to listen on {host}:{port}")
