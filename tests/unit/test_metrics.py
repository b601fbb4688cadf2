"""``/metrics``: requests by route, sign-ins by method and outcome, the
outbox's backlog; for the allowed networks only."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

from idp import mail
from idp.config import Settings
from idp.db import db
from tests.support.harness import app_for, csrf_token


def _value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_are_counted_by_route_not_by_path(app: Flask) -> None:
    http = app.test_client()
    before = _value(
        http.get("/metrics").text,
        "idp_http_requests_total",
        endpoint="/account/sessions/<sid>/revoke",
    )
    http.post("/account/sessions/some-session-id/revoke")
    text = http.get("/metrics").text

    assert (
        _value(
            text,
            "idp_http_requests_total",
            endpoint="/account/sessions/<sid>/revoke",
            method="POST",
        )
        == before + 1
    )
    assert "some-session-id" not in text
    assert _value(text, "idp_http_request_duration_seconds_count", endpoint="/metrics") >= 1


def test_the_published_documents_are_counted_too(app: Flask) -> None:
    http = app.test_client()
    http.get("/jwks.json")
    assert (
        _value(
            http.get("/metrics").text,
            "idp_http_requests_total",
            endpoint="/jwks.json",
            status="200",
        )
        >= 1
    )


def test_sign_ins_are_counted_by_method_and_outcome(app: Flask) -> None:
    http = app.test_client()
    before = _value(http.get("/metrics").text, "idp_signins_total", method="pwd", result="failure")
    token = csrf_token(http.get("/login").text)
    http.post("/login", data={"csrf_token": token, "username": "nobody", "password": "guess"})

    after = _value(http.get("/metrics").text, "idp_signins_total", method="pwd", result="failure")
    assert after == before + 1


def test_the_outbox_backlog_is_read_from_the_database(app: Flask) -> None:
    with app.app_context():
        mail.queue(
            to="someone@example.com",
            user_id=None,
            template="user_id",
            context={"name": "x", "username": "x", "link": "http://localhost:5999/login"},
        )
        db.session.commit()
    text = app.test_client().get("/metrics").text

    assert _value(text, "idp_outbox_waiting", kind="mail") == 1
    assert _value(text, "idp_outbox_undelivered", kind="mail") == 0
    assert _value(text, "idp_outbox_oldest_seconds", kind="mail") >= 0


def test_an_address_outside_the_allowed_networks_gets_404(
    app_settings: Settings, tmp_path: Path
) -> None:
    import dataclasses

    closed = dataclasses.replace(
        app_settings,
        metrics=dataclasses.replace(app_settings.metrics, allowed_networks=("10.0.0.0/8",)),
    )
    with app_for(closed) as app:
        assert app.test_client().get("/metrics").status_code == 404
        assert (
            app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code
            == 200
        )
