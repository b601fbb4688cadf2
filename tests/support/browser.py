"""A real Chromium for end-to-end tests of what a person's browser does.

The ``requests``-based ``harness.Browser`` speaks HTTP; it cannot show what a
browser does with a cookie's attributes (a session cookie dropped on restart,
``SameSite``), with the pages' scripts, or with WebAuthn.  These fixtures
drive Debian's ``/usr/bin/chromium`` through Playwright's sync API.

``playwright install`` cannot download browsers here, so every launch names
the executable.  The flags keep a headless Chromium quiet: we run as root
(``--no-sandbox``), and without the background-networking flags Chromium
keeps trying to reach Google's services on a closed network.

Cost: one Chromium process serves the whole run (``chromium``); each test
opens cheap, isolated contexts on it (``open_device``, one per device).
Only a browser restart needs its own process on a profile directory
(``persistent_browser``).  Passkey tests add a CDP WebAuthn virtual
authenticator to a context's page.

A test module that uses the fixtures names this module as a plugin (not in
``conftest.py``, so a run without browser tests never loads Playwright;
importing the fixtures by name instead trips ruff's F811 at every use)::

    pytest_plugins = ("tests.support.browser",)

Such a module imports the helpers from here too, before pytest loads this
as its plugin, so pytest could not rewrite this module's asserts anyway;
PYTEST_DONT_REWRITE says that is intended (else pytest warns, and warnings
are errors).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.support.harness import LiveIdp

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "chromium",
    "launch_chromium",
    "launch_persistent",
    "open_device",
    "persistent_browser",
    "playwright",
    "sign_in",
]

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (``scripts/install-test-deps``), not a Playwright download."""

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

T = TypeVar("T")


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/install-test-deps")


def launch_chromium(pw: Playwright) -> Browser:
    """A headless Chromium process; contexts opened on it share nothing."""
    _require_chromium()
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))


@contextlib.contextmanager
def launch_persistent(pw: Playwright, user_data_dir: Path) -> Iterator[BrowserContext]:
    """A Chromium on a profile directory, closed (gracefully) on exit.

    Closing it and launching again on the same directory is a real browser
    restart: Chromium writes its cookie store on shutdown and, with a new
    profile's default of no session restore, forgets session cookies while
    keeping persistent ones."""
    _require_chromium()
    context = pw.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver for the run (it is a separate Node process)."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """One Chromium process for the run: starting one costs about a second."""
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


@pytest.fixture
def open_device(chromium: Browser) -> Iterator[Callable[[], Page]]:
    """Opens a new device: an isolated context (own cookies) and its page.

    Every context a test opened is closed after it."""
    contexts: list[BrowserContext] = []

    def open_one() -> Page:
        context = chromium.new_context()
        contexts.append(context)
        return context.new_page()

    yield open_one
    for context in contexts:
        context.close()


@pytest.fixture
def persistent_browser(
    playwright: Playwright,
) -> Callable[[Path], contextlib.AbstractContextManager[BrowserContext]]:
    """``with persistent_browser(profile_dir) as browser:``: see ``launch_persistent``."""

    def launch(user_data_dir: Path) -> contextlib.AbstractContextManager[BrowserContext]:
        return launch_persistent(playwright, user_data_dir)

    return launch


def sign_in(
    page: Page,
    idp: LiveIdp,
    username: str,
    password: str = "correct horse 1",
    *,
    remember: bool,
) -> Page:
    """Open ``/login``, fill ``form#login-form`` as a person would, submit.

    Returns once the reply to the form (and its redirects) has loaded: on
    success that is ``/account``, on a refusal the sign-in page again."""
    page.goto(idp.url + "/login")
    form = page.locator("form#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("input[type=checkbox][name=remember]").set_checked(remember)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    return page
