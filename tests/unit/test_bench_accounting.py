"""``make bench`` counts the CPU of a server's whole process tree: PostgreSQL's
backends start sessions of their own, yet their work is the provider's."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.load import group_cpu_seconds

_BURN_IN_A_SESSION_OF_ITS_OWN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", '''
import os, time
os.setsid()
end = time.process_time() + 0.4
while time.process_time() < end:
    pass
time.sleep(30)
'''])
time.sleep(30)
"""


def test_a_descendant_in_a_session_of_its_own_is_counted() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _BURN_IN_A_SESSION_OF_ITS_OWN], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        counted = 0.0
        while time.monotonic() < deadline and counted < 0.4:
            time.sleep(0.2)
            counted = group_cpu_seconds({server.pid})
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(server.pid)], check=False)
        server.kill()
        server.wait()

    assert counted >= 0.4
