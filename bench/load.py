"""Load on one core, measured from the other.

Every run is pinned: the provider's processes to ``SERVER_CPU`` (by the
caller, with ``taskset``), the load generator to ``LOAD_CPU``.  Two
generators, the same for both providers:

* :func:`run_wrk` -- wrk with a Lua script of ``bench/lua/`` that checks
  every answer (status, and a substring of the body), for the endpoints a
  relying service calls again and again;
* :func:`run_flows` -- whole sign-ins (authorization request, sign-in page,
  password, code exchange) by threads of this process, each with its own
  cookies: too many steps with cookies and forms for wrk, and few enough per
  second (the argon2 hash costs tens of milliseconds on both sides) that a
  Python client keeps up.

A run with any error is void: the table says so instead of a figure.  CPU
time is read from ``/proc`` for the provider's process groups and from the
generator's own usage, so the table shows whether the server's core was
saturated and the generator's was not."""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LOAD_CPU",
    "SERVER_CPU",
    "Measurement",
    "Repeated",
    "group_cpu_seconds",
    "request_env",
    "run_flows",
    "run_wrk",
]

SERVER_CPU = 0
LOAD_CPU = 1
LUA = Path(__file__).parent / "lua"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Repeated:
    """One request a wrk run repeats, and what every answer must be."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    status: int = 200
    expect: str = ""
    """A plain substring every answer's body must hold."""


def request_env(request: Repeated) -> dict[str, str]:
    """The environment ``check.lua`` reads its request from."""
    return {
        "BENCH_METHOD": request.method,
        "BENCH_PATH": request.path,
        "BENCH_BODY": request.body,
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in request.headers.items()),
        "BENCH_STATUS": str(request.status),
        "BENCH_EXPECT": request.expect,
    }


@dataclass(slots=True)
class Measurement:
    requests: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    server_cpu: float = 0.0
    """Share of one core the provider's processes used (1.0: saturated)."""
    load_cpu: float = 0.0
    note: str = ""

    @property
    def void(self) -> bool:
        return self.errors > 0 or self.requests == 0


def group_cpu_seconds(pgids: set[int]) -> float:
    """User and system CPU seconds of every live process in these groups, and
    of their descendants: PostgreSQL's server processes each start a session
    of their own, so its backends are children of the group, not members."""
    processes: dict[int, tuple[int, int, int]] = {}  # pid: (parent, group, ticks)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # ppid, pgrp; utime + stime
        processes[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]))
    counted = {pid for pid, (_, group, _) in processes.items() if group in pgids}
    while (
        children := {pid for pid, (parent, _, _) in processes.items() if parent in counted}
        - counted
    ):
        counted |= children
    return sum(processes[pid][2] for pid in counted) / TICKS


_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _parse_wrk(output: str, result: Measurement) -> None:
    for pct, value, unit in _LATENCY.findall(output):
        ms = float(value) * _UNIT[unit]
        if pct == "50":
            result.p50_ms = ms
        else:
            result.p99_ms = ms
    if found := re.search(r"(\d+) requests in ([\d.]+)(\w+)", output):
        result.requests = int(found.group(1))
    if found := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result.per_second = float(found.group(1))
    errors = 0
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in found.groups())
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found.group(1))
    if found := re.search(r"^BAD (\d+)$", output, re.M):
        errors = max(errors, int(found.group(1)))
    result.errors = errors


def run_wrk(
    *,
    base: str,
    script: str,
    env: dict[str, str],
    connections: int,
    seconds: int,
    server_groups: set[int],
    one_connection_per_thread: bool = False,
) -> Measurement:
    """wrk against ``base`` with ``bench/lua/<script>``, pinned to LOAD_CPU."""
    threads = connections if one_connection_per_thread else min(4, connections)
    argv = [
        "taskset",
        "-c",
        str(LOAD_CPU),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA / script),
        base,
    ]
    before = group_cpu_seconds(server_groups)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    output = proc.stdout.read() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = Measurement(seconds=wall)
    result.server_cpu = (group_cpu_seconds(server_groups) - before) / wall
    result.load_cpu = (usage.ru_utime + usage.ru_stime) / wall
    if proc.returncode != 0:
        result.errors = max(1, result.errors)
        result.note = f"wrk exited {proc.returncode}: {output.strip()[-300:]}"
        return result
    _parse_wrk(output, result)
    return result


def run_flows(
    *,
    flow: Callable[[int], None],
    connections: int,
    seconds: int,
    server_groups: set[int],
) -> Measurement:
    """``connections`` threads each repeating ``flow(thread_index)`` (one
    whole sign-in, raising on any wrong answer) for ``seconds``; the rate is
    sign-ins per second and the latencies are those of whole sign-ins."""
    os.sched_setaffinity(0, {LOAD_CPU})
    deadline = time.monotonic() + seconds
    durations: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                flow(index)
            except Exception as e:  # a wrong answer is counted, never hidden
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                durations.append(time.monotonic() - began)

    before_server = group_cpu_seconds(server_groups)
    before_self = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    wall = time.monotonic() - started
    after_self = resource.getrusage(resource.RUSAGE_SELF)
    result = Measurement(seconds=wall, requests=len(durations), errors=len(failures))
    result.per_second = len(durations) / wall
    if durations:
        ordered = sorted(durations)
        result.p50_ms = statistics.median(ordered) * 1000
        result.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    result.server_cpu = (group_cpu_seconds(server_groups) - before_server) / wall
    result.load_cpu = (
        after_self.ru_utime - before_self.ru_utime + after_self.ru_stime - before_self.ru_stime
    ) / wall
    if failures:
        result.note = failures[0][:300]
    return result
