"""Sign-in sessions as a real browser lives them (CONTRACT "Stay signed in",
"Cookies", "/account/sessions").

Only a real browser shows what the cookie attributes mean: whether a session
survives the browser being closed, and what the person's list of signed-in
devices lets them do to another device.  Time passing is the live server's
clock moved forward (``live_clock``), never a sleep or a rewritten row."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.support.browser import sign_in
from tests.support.harness import LiveIdp

pytest_plugins = ("tests.support.browser",)
"""Its fixtures: ``open_device``, ``persistent_browser`` (and the Chromium under them)."""

pytestmark = pytest.mark.browser

PersistentBrowser = Callable[[Path], AbstractContextManager[BrowserContext]]


def _signed_in_at_account(page: Page, idp: LiveIdp) -> bool:
    """Whether ``/account`` shows this browser's person (not the sign-in page)."""
    page.goto(idp.url + "/account")
    return page.url == idp.url + "/account" and page.locator("button#logout").count() == 1


def _sent_to_sign_in(page: Page, idp: LiveIdp) -> bool:
    """Whether ``/account`` sends this browser to sign in and back."""
    page.goto(idp.url + "/account")
    return page.url == idp.url + "/login?next=/account"


def _own_session_id(page: Page, idp: LiveIdp) -> str:
    """The ``sid`` of this browser's session: its "This device" row."""
    page.goto(idp.url + "/account/sessions")
    sid = page.locator('#session-list [aria-current="true"]').get_attribute("data-session-id")
    assert sid
    return sid


def _rows(page: Page) -> list[str]:
    return [
        row.get_attribute("data-session-id") or ""
        for row in page.locator("#session-list [data-session-id]").all()
    ]


def test_stay_signed_in_survives_a_browser_restart(
    live_idp: LiveIdp, persistent_browser: PersistentBrowser, tmp_path: Path
) -> None:
    member = live_idp.create_user()
    profile = tmp_path / "profile"
    with persistent_browser(profile) as browser:
        page = sign_in(browser.new_page(), live_idp, member.username, remember=True)
        assert page.url == live_idp.url + "/account"
        assert page.locator("button#logout").count() == 1
        cookie = next(c for c in browser.cookies(live_idp.url) if c["name"] == "idp_session")
    remember_seconds = live_idp.settings.session.remember_days * 86400
    assert abs(cookie["expires"] - (time.time() + remember_seconds)) < 120
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"

    with persistent_browser(profile) as browser:
        assert _signed_in_at_account(browser.new_page(), live_idp)


def test_without_stay_signed_in_a_browser_restart_signs_out(
    live_idp: LiveIdp, persistent_browser: PersistentBrowser, tmp_path: Path
) -> None:
    member = live_idp.create_user()
    profile = tmp_path / "profile"
    with persistent_browser(profile) as browser:
        page = sign_in(browser.new_page(), live_idp, member.username, remember=False)
        assert page.url == live_idp.url + "/account"
        cookie = next(c for c in browser.cookies(live_idp.url) if c["name"] == "idp_session")
        assert cookie["expires"] == -1  # a browser-session cookie

    with persistent_browser(profile) as browser:
        assert _sent_to_sign_in(browser.new_page(), live_idp)


def _walk_away(idp: LiveIdp) -> None:
    """The person leaves the signed-in browser unused just past the idle timeout."""
    idp.advance(minutes=idp.settings.session.idle_minutes + 1)


def test_an_unchecked_session_ends_after_the_idle_timeout(
    live_clock: LiveIdp, open_device: Callable[[], Page]
) -> None:
    live_idp = live_clock
    """The server ends it, though the browser still holds the cookie."""
    member = live_idp.create_user()
    page = sign_in(open_device(), live_idp, member.username, remember=False)

    _walk_away(live_idp)

    assert any(c["name"] == "idp_session" for c in page.context.cookies())
    assert _sent_to_sign_in(page, live_idp)


def test_a_checked_session_outlives_the_idle_timeout(
    live_clock: LiveIdp, open_device: Callable[[], Page]
) -> None:
    live_idp = live_clock
    """A remembered session slides ``session.remember_days``: an idle pause is nothing to it."""
    member = live_idp.create_user()
    page = sign_in(open_device(), live_idp, member.username, remember=True)

    _walk_away(live_idp)

    assert _signed_in_at_account(page, live_idp)


def test_sign_out_other_devices_signs_out_another_browser(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    first = sign_in(open_device(), live_idp, member.username, remember=False)
    second = sign_in(open_device(), live_idp, member.username, remember=True)
    first.goto(live_idp.url + "/account/sessions")
    assert len(_rows(first)) == 2
    current = first.locator('#session-list [data-session-id][aria-current="true"]')
    assert current.count() == 1
    assert current.locator("button[name=revoke]").count() == 0

    with first.expect_navigation():
        first.locator("button#revoke-others").click()

    assert _sent_to_sign_in(second, live_idp)
    assert _signed_in_at_account(first, live_idp)
    own = _own_session_id(first, live_idp)  # loads the sessions page
    assert _rows(first) == [own]


def test_revoking_one_row_signs_out_that_device_only(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    first, second, third = (
        sign_in(open_device(), live_idp, member.username, remember=False) for _ in range(3)
    )
    sid_1, sid_2, sid_3 = (_own_session_id(page, live_idp) for page in (first, second, third))
    assert sorted(_rows(first)) == sorted([sid_1, sid_2, sid_3])

    with first.expect_navigation():
        first.locator(f'[data-session-id="{sid_2}"] button[name=revoke]').click()

    assert _sent_to_sign_in(second, live_idp)
    assert _signed_in_at_account(third, live_idp)
    assert _signed_in_at_account(first, live_idp)
    first.goto(live_idp.url + "/account/sessions")
    assert sorted(_rows(first)) == sorted([sid_1, sid_3])


def test_the_sessions_page_shows_device_ip_and_last_seen(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    zone = ZoneInfo(live_idp.settings.alerts.timezone)
    before = dt.datetime.now(zone)
    page = sign_in(open_device(), live_idp, member.username, remember=False)

    page.goto(live_idp.url + "/account/sessions")

    after = dt.datetime.now(zone)
    row = page.locator('#session-list [aria-current="true"]')
    assert row.locator(".device").inner_text() == "Chrome on Linux"
    assert row.locator(".ip").inner_text() == "127.0.0.1"
    minutes = {when.strftime("%Y/%m/%d %H:%M %Z") for when in (before, after)}
    assert row.locator("time").inner_text() in minutes
