"""The express lane (``idp.protocol.express``) answers the plain cases by
itself -- Flask behind it is never reached for them -- and hands everything
else on untouched, the body it read included.  That its answers equal
Flask's is checked against a live server (``tests/e2e/test_express_lane.py``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder, run_wsgi_app

from idp import accounts, clients, sessions, tokens
from idp.config import Settings
from idp.db import db
from idp.protocol.express import ExpressLane


class BehindTheLane:
    """Stands for Flask: counts what reaches it and keeps the body it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(environ["wsgi.input"].read(length))
        start_response("418 Behind", [])
        return [b""]


def _call(lane: ExpressLane, method: str, path: str, **kw: Any) -> tuple[str, bytes]:
    environ = EnvironBuilder(method=method, path=path, **kw).get_environ()
    body, status, _ = run_wsgi_app(lane, environ, buffered=True)
    return status, b"".join(body)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _machine() -> Any:
    return clients.create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )


def test_a_machine_token_and_its_introspection_never_reach_flask(app: Flask) -> None:
    behind = BehindTheLane()
    lane = ExpressLane(behind, app)
    machine = _machine()
    auth = _basic(machine.client.client_id, machine.client_secret)

    status, body = _call(
        lane, "POST", "/token", data={"grant_type": "client_credentials"}, headers=auth
    )
    assert status == "200 OK"
    token = json.loads(body)["access_token"]
    status, body = _call(lane, "POST", "/introspect", data={"token": token}, headers=auth)

    assert status == "200 OK"
    assert json.loads(body)["active"] is True
    assert behind.bodies == []


def _signed_in(settings: Settings) -> tuple[Any, tokens.TokenSet]:
    """A confidential client and the tokens a member's sign-in gave it."""
    shop = clients.create(name="Shop", redirect_uris=["https://shop.example/cb"])
    member = accounts.create(
        username="express", email="express@example.com", password="a long unusual passphrase"
    )
    started = sessions.start(
        user_id=member.id,
        policy=settings.session,
        remember=False,
        amr=["pwd"],
        ip="192.0.2.1",
        user_agent="test",
    )
    rp = clients.lookup(shop.client.client_id)
    assert rp is not None
    signed = tokens.sign_for_person(
        client=rp,
        member=member,
        auth=tokens.Authentication(
            user_id=member.id,
            session_id=started.session.id,
            auth_time=dt.datetime.now(dt.UTC),
            amr=("pwd",),
            acr="1",
        ),
        scope="openid profile",
        family_id=tokens.new_family_id(),
        refresh_scope="openid profile",
        offline=False,
        nonce=None,
    )
    issued = tokens.record(signed)
    db.session.commit()  # record joins the caller's transaction
    return shop, issued


def refresh_through(lane: ExpressLane, shop: Any, refresh_token: str | None) -> tuple[str, bytes]:
    """A confidential client's refresh, sent to ``lane``."""
    return _call(
        lane,
        "POST",
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=_basic(shop.client.client_id, shop.client_secret),
    )


def test_userinfo_never_reaches_flask(app: Flask, app_settings: Settings) -> None:
    behind = BehindTheLane()
    lane = ExpressLane(behind, app)
    _, issued = _signed_in(app_settings)

    status, body = _call(
        lane, "GET", "/userinfo", headers={"Authorization": f"Bearer {issued.access_token}"}
    )

    assert status == "200 OK"
    assert json.loads(body)["preferred_username"] == "express"
    assert behind.bodies == []


def test_a_refresh_never_reaches_flask(app: Flask, app_settings: Settings) -> None:
    behind = BehindTheLane()
    lane = ExpressLane(behind, app)
    shop, issued = _signed_in(app_settings)

    status, body = refresh_through(lane, shop, issued.refresh_token)

    assert status == "200 OK"
    assert json.loads(body)["refresh_token"] != issued.refresh_token
    assert behind.bodies == []


def test_what_the_lane_does_not_answer_reaches_flask_with_its_body(app: Flask) -> None:
    behind = BehindTheLane()
    lane = ExpressLane(behind, app)
    machine = _machine()
    wrong = _basic(machine.client.client_id, machine.client_secret + "x")

    status, _ = _call(
        lane, "POST", "/token", data={"grant_type": "client_credentials"}, headers=wrong
    )
    assert status == "418 Behind"
    _call(lane, "POST", "/introspect", data="token=a&token=b", content_type=_FORM)
    _call(lane, "GET", "/userinfo", headers={"Authorization": "Bearer not-a-token"})

    assert behind.bodies == [b"grant_type=client_credentials", b"token=a&token=b", b""]


_FORM = "application/x-www-form-urlencoded"
