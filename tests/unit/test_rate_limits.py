"""Rate limits on every credential check: 429 with Retry-After."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest
from flask import Flask

from idp import accounts, clients
from idp.config import RateLimitSettings, Settings
from tests.support.harness import app_for


@pytest.fixture
def limited_app(app_settings: Settings) -> Iterator[Flask]:
    settings = dataclasses.replace(
        app_settings, ratelimit=RateLimitSettings(signin="3/minute", token="3/minute")
    )
    with app_for(settings) as application:
        yield application


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_the_fourth_sign_in_attempt_in_a_minute_is_429(limited_app: Flask) -> None:
    accounts.create(username="hanako", email="h@example.com", password="a long passphrase")
    browser = limited_app.test_client()
    token = _csrf(browser.get("/login").text)
    form = {"csrf_token": token, "username": "hanako", "password": "wrong password"}
    statuses = [browser.post("/login", data=form).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = browser.post("/login", data=form)
    assert int(limited.headers["Retry-After"]) > 0
    assert 'role="alert"' in limited.text


def test_the_limit_is_per_account_so_another_account_may_still_sign_in(limited_app: Flask) -> None:
    accounts.create(username="hanako", email="h@example.com", password="a long passphrase")
    accounts.create(username="taro", email="t@example.com", password="a long passphrase")
    browser = limited_app.test_client()
    token = _csrf(browser.get("/login").text)
    for _ in range(4):
        browser.post("/login", data={"csrf_token": token, "username": "hanako", "password": "x"})
    other = browser.post(
        "/login", data={"csrf_token": token, "username": "taro", "password": "a long passphrase"}
    )
    assert other.status_code == 303


def test_the_token_endpoint_answers_429_as_json(limited_app: Flask) -> None:
    machine = clients.create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    http = limited_app.test_client()
    form = {
        "grant_type": "client_credentials",
        "scope": "admin",
        "client_id": machine.client.client_id,
        "client_secret": machine.client_secret or "",
    }
    statuses = [http.post("/token", data=form).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = http.post("/token", data=form)
    assert limited.json == {
        "error": "rate_limited",
        "error_description": "Too many requests. Wait a minute and try again.",
    }
    assert int(limited.headers["Retry-After"]) > 0
