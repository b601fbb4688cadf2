"""What the machine allows: signatures per second on one core, and a bare
Flask view's requests per second under granian on that core."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from bench.load import SERVER_CPU, Measurement, Repeated, request_env, run_wrk
from bench.providers import HOST, free_port

__all__ = ["bare_flask", "signatures_per_second"]


def signatures_per_second(seconds: float = 2.0) -> dict[str, float]:
    """RS256 (2048-bit) and ES256 signatures per second on SERVER_CPU."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CPU})
    try:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        message = b"x" * 300
        signers = {
            "RS256": lambda: rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()),
            "ES256": lambda: ec_key.sign(message, ec.ECDSA(hashes.SHA256())),
        }
        rates = {}
        for name, sign in signers.items():
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                sign()
                count += 1
            rates[name] = count / elapsed
        return rates
    finally:
        os.sched_setaffinity(0, previous)


@contextlib.contextmanager
def _bare_server() -> Iterator[tuple[int, set[int]]]:
    port = free_port()
    granian = str(Path(sys.executable).parent / "granian")
    process = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), granian, "--interface", "wsgi", "--factory",
         "--workers", "1", "--host", HOST, "--port", str(port), "bench.bare:create_app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://{HOST}:{port}/", timeout=1).ok:
                    break
            time.sleep(0.1)
        yield port, {process.pid}
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=15)


def bare_flask(connections: int, seconds: int) -> Measurement:
    with _bare_server() as (port, groups):
        request = Repeated("GET", "/", expect='"ok"')
        return run_wrk(
            base=f"http://{HOST}:{port}",
            script="check.lua",
            env=request_env(request),
            connections=connections,
            seconds=seconds,
            server_groups=groups,
        )
