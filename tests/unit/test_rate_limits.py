"""Rate limits count failures, per target and address (CONTRACT "Settings": ratelimit.*).

Successes are never throttled, and nobody can lock a client or a person
out from an address of their own choosing."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import accounts, clients
from idp.config import RateLimitSettings, Settings
from tests.support.harness import app_for


@pytest.fixture
def limited_app(app_settings: Settings) -> Iterator[Flask]:
    settings = dataclasses.replace(
        app_settings,
        ratelimit=RateLimitSettings(signin="3/minute", token="3/minute"),
        # One proxy in front: the address is X-Forwarded-For's last entry.
        server=dataclasses.replace(app_settings.server, trusted_proxies=1),
    )
    with app_for(settings) as application:
        yield application


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _sign_in(browser: FlaskClient, login: str, password: str, *, ip: str) -> int:
    token = _csrf(browser.get("/login").text)
    reply = browser.post(
        "/login",
        data={"csrf_token": token, "username": login, "password": password},
        headers={"X-Forwarded-For": ip},
    )
    return reply.status_code


def _person(name: str) -> None:
    accounts.create(username=name, email=f"{name}@example.com", password="a long passphrase")


def test_the_fourth_failed_sign_in_in_a_minute_is_429(limited_app: Flask) -> None:
    _person("hanako")
    browser = limited_app.test_client()
    statuses = [_sign_in(browser, "hanako", "wrong", ip="192.0.2.1") for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    token = _csrf(browser.get("/login").text)
    limited = browser.post(
        "/login",
        data={"csrf_token": token, "username": "hanako", "password": "wrong"},
        headers={"X-Forwarded-For": "192.0.2.1"},
    )
    assert int(limited.headers["Retry-After"]) > 0
    assert 'role="alert"' in limited.text


def test_the_user_id_and_the_email_of_one_account_share_a_bucket(limited_app: Flask) -> None:
    _person("hanako")
    browser = limited_app.test_client()
    assert _sign_in(browser, "hanako", "wrong", ip="192.0.2.1") == 200
    assert _sign_in(browser, "HANAKO@example.com", "wrong", ip="192.0.2.1") == 200
    assert _sign_in(browser, "Hanako", "wrong", ip="192.0.2.1") == 200
    assert _sign_in(browser, "hanako@example.com", "wrong", ip="192.0.2.1") == 429


def test_an_attackers_failures_do_not_lock_the_person_out_elsewhere(limited_app: Flask) -> None:
    _person("hanako")
    http = limited_app.test_client()  # one client: the address is what differs
    for _ in range(5):
        _sign_in(http, "hanako", "guess", ip="203.0.113.9")
    assert _sign_in(http, "hanako", "a long passphrase", ip="192.0.2.1") == 303


def test_failures_on_one_account_leave_another_account_free(limited_app: Flask) -> None:
    _person("hanako")
    _person("taro")
    browser = limited_app.test_client()
    for _ in range(4):
        _sign_in(browser, "hanako", "x", ip="192.0.2.1")
    assert _sign_in(browser, "taro", "a long passphrase", ip="192.0.2.1") == 303


def test_one_address_failing_across_many_accounts_is_slowed_down(limited_app: Flask) -> None:
    browser = limited_app.test_client()
    # Ten times the per-account rate across accounts: 30 failures, then 429.
    statuses = [_sign_in(browser, f"nobody{i}", "x", ip="192.0.2.7") for i in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


def _machine() -> clients.Registered:
    return clients.create(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )


def _client_credentials(
    http: FlaskClient, machine: clients.Registered, *, secret: str | None = None, ip: str
) -> int:
    form = {
        "grant_type": "client_credentials",
        "scope": "admin",
        "client_id": machine.client.client_id,
        "client_secret": machine.client_secret if secret is None else secret,
    }
    return http.post("/token", data=form, headers={"X-Forwarded-For": ip}).status_code


def test_successful_token_requests_are_never_throttled(limited_app: Flask) -> None:
    machine = _machine()
    http = limited_app.test_client()
    statuses = [_client_credentials(http, machine, ip="192.0.2.1") for _ in range(20)]
    assert statuses == [200] * 20


def test_wrong_secrets_are_429_as_json_beyond_the_limit(limited_app: Flask) -> None:
    machine = _machine()
    http = limited_app.test_client()
    statuses = [_client_credentials(http, machine, secret="x", ip="203.0.113.9") for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    form = {"grant_type": "client_credentials", "client_id": machine.client.client_id}
    limited = http.post(
        "/token", data={**form, "client_secret": "x"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert limited.status_code == 429
    assert limited.json == {
        "error": "rate_limited",
        "error_description": "Too many attempts. Wait a minute and try again.",
    }
    assert int(limited.headers["Retry-After"]) > 0


def test_a_flood_of_wrong_secrets_does_not_lock_the_real_client_out(limited_app: Flask) -> None:
    machine = _machine()
    http = limited_app.test_client()
    for _ in range(20):
        _client_credentials(http, machine, secret="wrong", ip="203.0.113.9")
    assert _client_credentials(http, machine, ip="192.0.2.1") == 200
    # ...and not even from the attacker's own address: a success is a success.
    assert _client_credentials(http, machine, ip="203.0.113.9") == 200
