"""Ports for the test run's servers, never handed to two of them at once.

Binding port 0 and passing the number on is not enough: between the probe's
close and the server's own bind, another test process on the machine
(``scripts/run-suites`` runs the SQLite and the PostgreSQL suite side by side)
may be handed the same number.  A server that then fails to bind would be a
clear error, but granian binds with ``SO_REUSEPORT``: a second provider on the
same port starts as well, and the kernel splits the connections between the
two.  A test then talks to the other suite's provider half of the time -- seen
as a 400 for an unknown client from a provider whose own log was empty.

So every port handed out is written to a registry that all test processes of
this user share, under an exclusive lock, and is not handed out again while the
process that took it lives.  Entries of processes that ended are dropped at the
next call; there is nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from pathlib import Path

__all__ = ["free_port"]

_HOST = "127.0.0.1"
_ATTEMPTS = 200


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and that no other
    caller, in this process or another, is given while this process lives."""
    registry_path = Path(tempfile.gettempdir()) / f"idp-test-ports-{os.getuid()}"
    with registry_path.open("a+", encoding="ascii") as registry:
        fcntl.flock(registry, fcntl.LOCK_EX)  # released when the file closes
        registry.seek(0)
        held = [(pid, port) for pid, port in _entries(registry.read()) if _alive(pid)]
        taken = {port for _, port in held}
        for _ in range(_ATTEMPTS):
            port = _unbound_port()
            if port not in taken:
                break
        else:
            raise RuntimeError(f"no port free of the registry {registry_path} in {_ATTEMPTS} tries")
        held.append((os.getpid(), port))
        registry.seek(0)
        registry.truncate()
        registry.write("".join(f"{pid} {held_port}\n" for pid, held_port in held))
        return port


def _unbound_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _entries(text: str) -> list[tuple[int, int]]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            entries.append((int(fields[0]), int(fields[1])))
    return entries


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
