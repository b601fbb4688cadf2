"""A statement sent to PostgreSQL on a path that died is given up in seconds.

A failover that moves the database's address, or a firewall that forgets
a connection, leaves the client's socket open and its data unanswered; the
kernel retransmits for some fifteen minutes before it tells libpq, and a
request thread waits as long.  ``idp.db.POSTGRESQL_CONNECTION_DEFAULTS``
bounds that (libpq's ``tcp_user_timeout``): the statement fails, counts as
"the database did not answer" (503), and the pool opens a fresh connection.

The path is real: the client runs in a network namespace of its own and
reaches the server through a veth pair (and a relay to the test cluster's
loopback address); taking the host's end of the pair down drops every
packet, as a partition does.  It needs root (CAP_NET_ADMIN) and the ``ip``
tool; elsewhere the test says why it is skipped."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from idp.db import UNACKNOWLEDGED_MILLISECONDS
from tests.support.harness import Backend

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, os, sys, time
from sqlalchemy import create_engine, text
from idp.db import configure_engine, unavailable

url = sys.argv[1]
engine = create_engine(url, **configure_engine(url))
connection = engine.connect()
connection.execute(text("SELECT 1"))
connection.rollback()
print("ready", flush=True)
sys.stdin.readline()
started = time.monotonic()
try:
    connection.execute(text("SELECT 1"))
    outcome = {"answered": True}
except Exception as e:
    outcome = {"answered": False, "unavailable": unavailable(e), "error": type(e).__name__}
outcome["seconds"] = time.monotonic() - started
print(json.dumps(outcome), flush=True)
os._exit(0)
"""


@dataclass
class DatabasePath:
    """A network path from a namespace to the test cluster, and its switch."""

    namespace: str
    host_link: str

    def cut(self) -> None:
        _ip("link", "set", self.host_link, "down")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _relay(listener: socket.socket, target: tuple[str, int], stop: threading.Event) -> None:
    """Forward each connection to ``target`` (the cluster listens on loopback only)."""
    pairs: list[tuple[socket.socket, socket.socket]] = []
    while not stop.is_set():
        readable, _, _ = select.select([listener], [], [], 0.2)
        if not readable:
            continue
        client, _ = listener.accept()
        server = socket.create_connection(target, timeout=10)
        pairs.append((client, server))
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()
    for client, server in pairs:
        for s in (client, server):
            s.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)


@pytest.fixture
def path_to_database(backend: Backend) -> Iterator[tuple[DatabasePath, str]]:
    if backend.kind != "postgresql":
        pytest.skip("a network path to PostgreSQL")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network namespace needs root and the ip tool")
    url = make_url(backend.make_url("partition"))
    tag = f"{os.getpid() % 10000}"
    namespace, host_link, inner_link = f"idpns{tag}", f"idph{tag}", f"idpi{tag}"
    octet = os.getpid() % 250 + 1
    host_address, inner_address = f"10.213.{octet}.1", f"10.213.{octet}.2"
    stop = threading.Event()
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", inner_link)
        _ip("link", "set", inner_link, "netns", namespace)
        _ip("addr", "add", f"{host_address}/30", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("-n", namespace, "addr", "add", f"{inner_address}/30", "dev", inner_link)
        _ip("-n", namespace, "link", "set", inner_link, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as e:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", namespace)
        pytest.skip(f"no network namespace here: {e.stderr.decode().strip()}")
    listener = socket.create_server((host_address, 0))
    relay = threading.Thread(
        target=_relay, args=(listener, (url.host, url.port), stop), daemon=True
    )
    relay.start()
    try:
        relayed = url.set(host=host_address, port=listener.getsockname()[1])
        path = DatabasePath(namespace, host_link)
        yield path, relayed.render_as_string(hide_password=False)
    finally:
        stop.set()
        relay.join(timeout=5)
        listener.close()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", namespace)


def _client_in(path: DatabasePath, url: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        ["ip", "netns", "exec", path.namespace, sys.executable, "-c", _CHILD, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        raise AssertionError(f"the client did not connect: {line!r} {child.communicate()[1]}")
    return child


def test_a_statement_on_a_dead_path_fails_in_seconds_and_counts_as_unavailable(
    path_to_database: tuple[DatabasePath, str],
) -> None:
    path, url = path_to_database
    bounded = _client_in(path, url)  # the provider's own connection parameters
    unbounded = _client_in(path, url + "?tcp_user_timeout=0")  # libpq's: the kernel's
    path.cut()
    started = time.monotonic()
    for child in (bounded, unbounded):
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    limit = UNACKNOWLEDGED_MILLISECONDS / 1000 + 20
    try:
        out, _ = bounded.communicate(timeout=limit)
        waited = time.monotonic() - started
        still_waiting = unbounded.poll() is None
    except subprocess.TimeoutExpired:
        pytest.fail(f"a statement on a dead path still waited after {limit:.0f} s")
    finally:
        for child in (bounded, unbounded):
            child.kill()
            child.communicate()

    outcome = json.loads(out)
    assert outcome["answered"] is False
    assert outcome["unavailable"] is True  # a 503 with Retry-After, not a 500
    assert outcome["seconds"] < UNACKNOWLEDGED_MILLISECONDS / 1000 + 10
    assert still_waiting, f"without the bound the statement gave up too ({waited:.0f} s)"
