"""``/health/live`` and ``/health/ready`` for load balancers and probes.

What they say when the database or Redis is away is checked where those
go away (``test_database_outage``, ``test_redis_outage``)."""

from __future__ import annotations

import requests

from tests.support.harness import LiveIdp


def test_a_serving_node_is_live_and_ready(live_idp: LiveIdp) -> None:
    live = requests.get(live_idp.url + "/health/live", timeout=10)
    ready = requests.get(live_idp.url + "/health/ready", timeout=10)

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "database": "ok",
        "schema": "ok",
        "redis": "ok" if live_idp.settings.redis.url else "none",
    }
    for reply in (live, ready):
        assert reply.headers["Content-Type"] == "application/json"
        assert reply.headers["Cache-Control"] == "no-store"
        assert not reply.cookies  # a probe every few seconds leaves nothing behind


def test_the_health_checks_take_only_get(live_idp: LiveIdp) -> None:
    for path in ("/health/live", "/health/ready"):
        refused = requests.post(live_idp.url + path, timeout=10)
        assert refused.status_code == 405
        assert "GET" in refused.headers["Allow"]
