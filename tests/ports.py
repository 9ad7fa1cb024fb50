"""Loopback ports for servers a test starts in another process (a gateway, dynalite, llama-server).

Such a server binds the port it is given a moment after the test picks it. A port picked with ``bind(0)``
comes from the kernel's ephemeral range, the range every other ``bind(0)`` and outgoing connection draws
from too: with several test processes at once (pytest-xdist workers, compat's two Pythons) another
process's server could take the port in between, and the test then talked to the wrong server. These ports
come from below that range, where only another ``free_port()`` picks; each call draws at random, never
hands out a port twice in one process, and checks that the port is free when it is picked.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10_000  # well above the well-known ports and the usual local services
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
_draw = random.Random()  # seeded from the OS: another process draws a different sequence


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; elsewhere (macOS: 49,152) this is below the range too


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A free loopback port outside the ephemeral range, not handed out before in this process."""
    highest = _ephemeral_start() - 1
    if highest - LOWEST < 1_000:  # an unusual range: fall back to the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for _ in range(200):
        port = _draw.randint(LOWEST, highest)
        if port not in _handed_out and _is_free(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST} and {highest}")
