"""Smaller security rules, each by name: SSRF, cookies, audit, markup."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from idp import backchannel, clients, outbox
from idp.config import LogoutSettings, ServerSettings, Settings
from idp.db import db
from idp.errors import DeliveryFailedError, UsageError
from idp.models import SignInAttempt
from tests.support.harness import app_for, csrf_token


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, never bound
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_a_non_public_address_is_no_back_channel_target(address: str) -> None:
    assert not backchannel.is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_a_public_address_is_a_back_channel_target(address: str) -> None:
    assert backchannel.is_public_address(ipaddress.ip_address(address))


@pytest.fixture
def guarded_app(app_settings: Settings) -> Iterator[Flask]:
    settings = dataclasses.replace(app_settings, logout=LogoutSettings(allow_private_uris=False))
    with app_for(settings) as application:
        yield application


def test_the_address_checked_is_the_address_connected_to(
    guarded_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that answers a public address to the check and a
    loopback one a moment later never gets the loopback connection."""
    answers = iter(["8.8.8.8", "127.0.0.1"])
    resolved: list[str] = []
    connected: list[tuple[str, int]] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        address = next(answers)
        resolved.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise OSError("no route in this test")

    monkeypatch.setattr(backchannel.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(backchannel.socket, "create_connection", create_connection)

    with pytest.raises(DeliveryFailedError):
        backchannel.post_form(
            "https://rp.example/logout", {"logout_token": "x"}, content_type="text/plain"
        )

    assert resolved == ["8.8.8.8"]
    assert connected == [("8.8.8.8", 443)]


def test_a_name_resolving_to_loopback_is_refused_for_good(
    guarded_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(backchannel.socket, "getaddrinfo", getaddrinfo)
    item = outbox.OutboxItem(
        id=1,
        kind=backchannel.KIND,
        payload={"client_id": "c", "uri": "https://rp.example/logout", "sid": "s", "sub": "u"},
        attempts=1,
        created_at=dt.datetime.now(dt.UTC),
        expires_at=dt.datetime.now(dt.UTC),
        lease_id="lease",
    )
    with pytest.raises(DeliveryFailedError) as excinfo:
        backchannel.deliver(item)
    assert excinfo.value.permanent is True


@pytest.fixture
def https_app(app_settings: Settings) -> Iterator[Flask]:
    settings = dataclasses.replace(
        app_settings, server=ServerSettings(issuer="https://id.example.com")
    )
    with app_for(settings) as application:
        yield application


@pytest.mark.parametrize(
    "uri",
    [
        'https://shop.example/cb?next="x"',
        "https://shop.example/c b",
        "https://shop.example/日本",
        "https://shop.example/cb\n",
    ],
)
def test_a_uri_with_characters_a_uri_may_not_hold_is_refused(app: Flask, uri: str) -> None:
    """Registered URIs are compared as written: they must be URIs (RFC 3986),
    with anything else percent-encoded."""
    with pytest.raises(UsageError, match="percent-encode"):
        clients.create(name="Shop", redirect_uris=[uri])
    with pytest.raises(UsageError, match="percent-encode"):
        clients.create(
            name="Shop",
            redirect_uris=["https://shop.example/cb"],
            backchannel_logout_uri=uri,
        )


def test_the_csrf_cookie_is_host_bound_on_https(https_app: Flask) -> None:
    reply = https_app.test_client().get("/login", base_url="https://id.example.com")
    cookie = next(c for c in reply.headers.getlist("Set-Cookie") if "csrf" in c)
    assert cookie.startswith("__Host-idp_csrf=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_a_failed_sign_in_is_recorded_whether_or_not_the_account_exists(app: Flask) -> None:
    http = app.test_client()
    token = csrf_token(http.get("/login").text)
    http.post("/login", data={"csrf_token": token, "username": "nobody", "password": "guess"})

    attempts = db.session.execute(
        select(SignInAttempt.method, SignInAttempt.result, SignInAttempt.reason).where(
            SignInAttempt.user_id.is_(None)
        )
    ).all()
    assert [tuple(a) for a in attempts] == [("pwd", "failure", "unknown_user")]


def test_the_qr_image_is_the_svg_element_itself(app: Flask) -> None:
    page = app.test_client().get("/login/qr").text
    assert '<svg id="qr-code"' in page
