"""Every error code the token endpoint can answer, in-process (Flask test client)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask

from idp import clients


@pytest.fixture
def confidential(app: Flask) -> Any:
    return clients.create(name="Shop", redirect_uris=["https://shop.example/cb"])


@pytest.fixture
def machine(app: Flask) -> Any:
    return clients.create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )


def _basic(client: Any, secret: str | None = None) -> dict[str, str]:
    raw = f"{client.client.client_id}:{secret or client.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _post(app: Flask, data: dict[str, str] | str, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post("/token", data=data, headers=headers or {})


def test_missing_grant_type_is_invalid_request(app: Flask, confidential: Any) -> None:
    reply = _post(app, {"code": "x"}, _basic(confidential))
    assert reply.status_code == 400
    assert reply.json["error"] == "invalid_request"


def test_repeated_parameter_is_invalid_request(app: Flask, confidential: Any) -> None:
    reply = _post(
        app,
        "grant_type=refresh_token&refresh_token=a&refresh_token=b",
        {**_basic(confidential), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 400
    assert reply.json["error"] == "invalid_request"


def test_unknown_grant_type_is_unsupported_grant_type(app: Flask, confidential: Any) -> None:
    reply = _post(app, {"grant_type": "password"}, _basic(confidential))
    assert reply.json["error"] == "unsupported_grant_type"


def test_wrong_secret_is_invalid_client_with_www_authenticate(
    app: Flask, confidential: Any
) -> None:
    reply = _post(
        app, {"grant_type": "authorization_code", "code": "x"}, _basic(confidential, "nope")
    )
    assert reply.status_code == 401
    assert reply.json["error"] == "invalid_client"
    assert "WWW-Authenticate" in reply.headers


def test_unknown_client_is_invalid_client(app: Flask) -> None:
    reply = _post(
        app,
        {"grant_type": "client_credentials", "client_id": "ghost", "client_secret": "x"},
    )
    assert reply.json["error"] == "invalid_client"
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="idp"'


def test_bad_code_is_invalid_grant(app: Flask, confidential: Any) -> None:
    reply = _post(
        app,
        {
            "grant_type": "authorization_code",
            "code": "forged",
            "redirect_uri": "https://shop.example/cb",
        },
        _basic(confidential),
    )
    assert reply.status_code == 400
    assert reply.json["error"] == "invalid_grant"


def test_bad_refresh_token_is_invalid_grant(app: Flask, confidential: Any) -> None:
    reply = _post(
        app, {"grant_type": "refresh_token", "refresh_token": "forged"}, _basic(confidential)
    )
    assert reply.json["error"] == "invalid_grant"


def test_a_grant_the_client_lacks_is_unauthorized_client(app: Flask, confidential: Any) -> None:
    reply = _post(app, {"grant_type": "client_credentials"}, _basic(confidential))
    assert reply.json["error"] == "unauthorized_client"


def test_a_scope_the_client_lacks_is_invalid_scope(app: Flask, machine: Any) -> None:
    reply = _post(app, {"grant_type": "client_credentials", "scope": "openid"}, _basic(machine))
    assert reply.json["error"] == "invalid_scope"


def test_client_credentials_with_admin_scope_is_issued(app: Flask, machine: Any) -> None:
    reply = _post(app, {"grant_type": "client_credentials", "scope": "admin"}, _basic(machine))
    assert reply.status_code == 200
    assert reply.json["scope"] == "admin"
    assert reply.headers["Cache-Control"] == "no-store"


def test_client_secret_post_is_accepted(app: Flask, machine: Any) -> None:
    reply = _post(
        app,
        {
            "grant_type": "client_credentials",
            "scope": "admin",
            "client_id": machine.client.client_id,
            "client_secret": machine.client_secret,
        },
    )
    assert reply.status_code == 200


def test_get_on_the_token_endpoint_is_json(app: Flask) -> None:
    reply = app.test_client().get("/token", headers={"Accept": "text/html"})
    assert reply.status_code == 405
    assert reply.json["error"] == "invalid_request"


def test_an_oversized_body_is_413(app: Flask, machine: Any) -> None:
    reply = _post(app, {"grant_type": "client_credentials", "pad": "x" * 70_000}, _basic(machine))
    assert reply.status_code == 413
    assert reply.json["error"] == "invalid_request"


def test_errors_are_json_whatever_the_accept_header(app: Flask, confidential: Any) -> None:
    reply = app.test_client().post(
        "/token",
        data={"grant_type": "nope"},
        headers={**_basic(confidential), "Accept": "text/html"},
    )
    assert reply.headers["Content-Type"].startswith("application/json")
