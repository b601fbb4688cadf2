"""The test run's ports: one process's port is never another's while it lives.

The kernel is made to offer the same number to both processes (the probe is
replaced by a fixed sequence), which is what happens, rarely, between the two
suites that ``scripts/run-suites`` runs side by side.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import ports

ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys
from tests.support import ports
ports._unbound_port = lambda: 41001
print(ports.free_port(), flush=True)
sys.stdin.read()  # hold the port until the test closes stdin
"""


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_port_another_process_holds_is_not_handed_out(
    registry_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with subprocess.Popen(  # S603 ok: this interpreter, fixed script
        [sys.executable, "-c", _HOLDER],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(registry_dir)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "41001"
            offers = iter((41001, 41001, 41002))
            monkeypatch.setattr(ports, "_unbound_port", lambda: next(offers))
            assert ports.free_port() == 41002
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)

    # Once the holder has ended, its port is free again and its entry dropped.
    monkeypatch.setattr(ports, "_unbound_port", lambda: 41001)
    assert ports.free_port() == 41001
    registry = (registry_dir / f"idp-test-ports-{os.getuid()}").read_text()
    assert registry.split() == [str(os.getpid()), "41002", str(os.getpid()), "41001"]


def test_a_process_is_not_handed_its_own_port_twice(
    registry_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offers = iter((41003, 41003, 41004))
    monkeypatch.setattr(ports, "_unbound_port", lambda: next(offers))
    assert [ports.free_port(), ports.free_port()] == [41003, 41004]


def test_a_damaged_registry_is_read_past(
    registry_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (registry_dir / f"idp-test-ports-{os.getuid()}").write_text("junk\n\x00\x01 2 3\n1 \n")
    monkeypatch.setattr(ports, "_unbound_port", lambda: 41005)
    assert ports.free_port() == 41005


def test_the_port_is_really_free() -> None:
    port = ports.free_port()
    with socket.create_server(("127.0.0.1", port)):
        pass
