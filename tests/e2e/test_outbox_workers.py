"""Several workers drain one outbox: each logout is delivered once (CONTRACT "Robustness").

The live server runs its own worker; the test starts a second ``idp worker``
on the same database.  The relying service is slow, and the provider's clock
runs twenty times faster than real time, so a worker holding a batch of
messages would see its lease run out in the middle and another worker take
them over.  A lease per message, checked when its outcome is recorded, keeps
every logout to one delivery."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from idp import forced_logout, sessions
from tests.support.flows import SignedIn, sign_in
from tests.support.harness import IDP, LiveIdp, eventually
from tests.support.receiver import LogoutReceiver

PEOPLE = 12


@contextlib.contextmanager
def second_worker(idp: LiveIdp) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env["IDP_TEST_CLOCK_FILE"] = str(idp.clock_path)
    process = subprocess.Popen(
        [IDP, "--config", str(idp.config_path), "worker", "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@contextlib.contextmanager
def fast_clock(idp: LiveIdp, *, speed: float) -> Iterator[None]:
    """The provider's clock runs ``speed`` times faster than real time."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.25):
            idp.advance(seconds=0.25 * (speed - 1))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.fixture
def slow_service() -> Iterator[LogoutReceiver]:
    receiver = LogoutReceiver().up()
    receiver.delay_seconds = 0.5
    yield receiver
    receiver.down()


def _session_ids(idp: LiveIdp, people: list[SignedIn]) -> list[str]:
    with idp.services():
        return [sessions.list_for_user(p.member.id)[0].id for p in people]


def test_two_workers_deliver_each_logout_once_to_a_slow_service(
    live_clock: LiveIdp, slow_service: LogoutReceiver
) -> None:
    idp = live_clock
    shop = idp.create_client(backchannel_logout_uri=slow_service.uri, first_party=True)
    sids = _session_ids(idp, [sign_in(idp, client=shop) for _ in range(PEOPLE)])

    with second_worker(idp), fast_clock(idp, speed=20):
        with idp.services():
            report = forced_logout.force_logout(
                session_ids=sids, reason=forced_logout.LogoutReason.ADMIN, actor="test"
            )
        assert sorted(report.session_ids) == sorted(sids)
        queued = eventually(
            lambda: all(len(rows := idp.outbox(sid)) == 1 and rows[0][1] for sid in sids),
            timeout=60,
        )
        assert queued

    # Each message was claimed once (a second claim would count a second
    # attempt even before its duplicate arrived) and arrived once.
    assert [idp.outbox(sid)[0][0] for sid in sids] == [1] * PEOPLE
    assert sorted(c["sid"] for c in slow_service.claims_for(idp.url)) == sorted(sids)
