"""Redis going away takes neither sign-in nor the rate limits with it.

The shared counters live in Redis.  Here its process is stopped (SIGSTOP:
connections hang, as behind a dead network path) under a live provider:
sign-ins still work, wrong passwords are still counted and refused past
the limit (in the node's memory), the ceremonies Flask-Limiter caps still
answer; once Redis runs again the counts go back to it.  Nothing is a 500
and nothing hangs past the client's timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.support.flows import WRONG_PASSWORD, password_attempt
from tests.support.harness import Backend, Browser, LiveIdp, eventually, start_live_idp
from tests.support.services import RedisServer

PASSWORD = "correct horse 1"
WRONG = WRONG_PASSWORD


@pytest.fixture(scope="module")
def outage(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveIdp, RedisServer]]:
    if backend.kind != "postgresql":
        pytest.skip("Redis serves the PostgreSQL deployments; checked on that run")
    root: Path = tmp_path_factory.mktemp("redis-outage")
    with RedisServer() as shared:
        own = Backend(kind=backend.kind, make_url=backend.make_url, redis_url=shared.url)
        with start_live_idp(
            root, own, name="redis_outage", extra_config="[risk]\nlock_after_failures = 3\n"
        ) as idp:
            yield idp, shared


def _shared_keys(shared: RedisServer) -> list[bytes]:
    return list(redis.Redis.from_url(shared.url).scan_iter("idp-failures*"))


def _readiness(idp: LiveIdp) -> tuple[int, dict[str, str]]:
    reply = requests.get(idp.url + "/health/ready", timeout=10)
    return reply.status_code, reply.json()


def test_while_redis_does_not_answer_sign_in_works_and_failures_are_still_limited(
    outage: tuple[LiveIdp, RedisServer],
) -> None:
    idp, shared = outage
    member, guessed = idp.create_user(), idp.create_user()
    assert password_attempt(idp, guessed.username, "wrong guess 0") == WRONG
    assert _shared_keys(shared)  # counted in Redis while it answers
    shared.pause()
    try:
        assert password_attempt(idp, member.username, PASSWORD) == "signed in"
        for n in range(1, 4):
            assert password_attempt(idp, guessed.username, f"wrong guess {n}") == WRONG
        # Three failures counted in this node's memory: the account's lock holds.
        assert password_attempt(idp, guessed.username, PASSWORD) == WRONG
        ceremony = Browser(idp.url).get("/login/qr")  # capped per address by Flask-Limiter
        assert ceremony.status_code == 200, ceremony.text[:300]
        assert 'id="qr-code"' in ceremony.text
        assert "Redis does not answer" in idp.log()
        # Still ready: without Redis a node serves, counting alone.
        assert _readiness(idp) == (
            200,
            {"status": "ok", "database": "ok", "schema": "ok", "redis": "unavailable"},
        )
    finally:
        shared.resume()

    fresh = idp.create_user()
    before = set(_shared_keys(shared))

    def counted_in_redis_again() -> bool:
        password_attempt(idp, fresh.username, "wrong again")
        return bool(set(_shared_keys(shared)) - before)

    eventually(counted_in_redis_again, timeout=40, interval=2)
    assert "Redis answers again" in idp.log()
    assert _readiness(idp) == (
        200,
        {"status": "ok", "database": "ok", "schema": "ok", "redis": "ok"},
    )
    assert "Traceback" not in idp.log()
