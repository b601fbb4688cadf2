"""A refresh signs its tokens before its transaction takes a lock.

The two signatures are most of a refresh's work.  Made while the session
row is locked (and, on SQLite, the process's one write lock is held), every
other refresh and sign-in waits on them; ``make bench`` measured a fifth of
SQLite's refresh throughput lost that way at four request threads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from idp import prepared, runtime, sessions
from idp.config import Settings
from idp.protocol.express import ExpressLane
from tests.unit.test_express_lane_alone import BehindTheLane, _signed_in, refresh_through


def test_a_refresh_signs_before_it_locks_or_writes(
    app: Flask, app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = ExpressLane(BehindTheLane(), app)
    shop, issued = _signed_in(app_settings)
    steps: list[str] = []
    keys = runtime.current_from(app).keys
    sign, lock, queue = keys.sign, sessions.lock, prepared.queue_for_the_write

    def signing(claims: dict[str, Any], **kw: Any) -> str:
        steps.append("sign")
        return sign(claims, **kw)

    def locking(session_id: str) -> Any:
        steps.append("lock")
        return lock(session_id)

    def writing(pooled: Any) -> None:
        steps.append("write")
        queue(pooled)

    monkeypatch.setattr(keys, "sign", signing)
    monkeypatch.setattr(sessions, "lock", locking)
    monkeypatch.setattr(prepared, "queue_for_the_write", writing)

    status, body = refresh_through(lane, shop, issued.refresh_token)

    assert status == "200 OK", body
    assert json.loads(body)["id_token"]
    assert steps[:3] == ["sign", "sign", "lock"]
    assert "sign" not in steps[3:]
    assert "write" in steps[3:]
