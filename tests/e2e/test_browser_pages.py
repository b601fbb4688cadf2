"""Every page a person sees, in a real browser: in Japanese and in English,
readable at a phone's width, and without serious or critical accessibility
violations (axe-core, from npm, run inside each page).

The pages are reached as a person reaches them -- signed out, signed in,
in the middle of an authorization request, on the phone that approves a QR
sign-in, as an admin past the one-time code -- one browser context per
language and width."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.harness import Backend, LiveIdp
from tests.support.pages import Visit, reachable_pages
from tests.support.smtp import SmtpServer

pytest_plugins = ("tests.support.browser",)

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse 1"
PHONE, DESKTOP = {"width": 390, "height": 844}, {"width": 1280, "height": 900}
LANGUAGES = {"en": "en-US", "ja": "ja-JP"}


@pytest.fixture(scope="module", autouse=True)
def _one_backend(backend: Backend) -> None:
    # Pages are the same whatever the database: check them once per run.
    if backend.kind != "sqlite":
        pytest.skip("the pages do not depend on the database; checked on the SQLite run")


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail("make test installs axe-core (tests/a11y, npm ci)")
    return AXE.read_text()


def _audit(page: Page, axe_source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)  # evaluated by the browser's debugger: no CSP applies
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"][:120] for n in v["nodes"]]}
        for v in results
        if v["impact"] in ("serious", "critical")
    ]


def _scrolls_sideways(page: Page) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1"))


@pytest.fixture(scope="module")
def pages(member_idp: LiveIdp, smtp: SmtpServer) -> dict[str, Visit]:
    return reachable_pages(member_idp, smtp)


@pytest.fixture
def context_for(chromium: Browser) -> Iterator[Callable[[str, dict[str, int]], Page]]:
    contexts = []

    def open_one(language: str, viewport: dict[str, int]) -> Page:
        context = chromium.new_context(locale=LANGUAGES[language], viewport=viewport)
        contexts.append(context)
        return context.new_page()

    yield open_one
    for context in contexts:
        context.close()


NAMES = [
    "sign-in", "registration", "forgotten user ID", "forgotten password", "QR sign-in",
    "QR approval", "error", "consent", "step-up", "account", "sessions", "passkeys",
    "security", "cancel", "admin user",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_page_speaks_the_browser_s_language_fits_a_phone_and_passes_axe(
    name: str,
    pages: dict[str, Visit],
    context_for: Callable[[str, dict[str, int]], Page],
    axe_source: str,
) -> None:
    texts = {}
    for language in ("en", "ja"):
        page = context_for(language, PHONE)
        pages[name](page)

        assert page.locator("html").get_attribute("lang") == language
        assert not _scrolls_sideways(page), f"{name} ({language}) scrolls sideways at 390 px"
        assert _audit(page, axe_source) == [], f"{name} ({language})"
        texts[language] = page.title()
    assert texts["en"] != texts["ja"]  # translated, not the same words twice


def test_the_language_switch_on_a_page_changes_it_and_is_remembered(
    member_idp: LiveIdp, context_for: Callable[[str, dict[str, int]], Page]
) -> None:
    page = context_for("en", DESKTOP)
    page.goto(member_idp.url + "/login")
    assert page.locator("html").get_attribute("lang") == "en"

    page.locator("#lang-switch a[hreflang=ja]").click()
    page.wait_for_load_state()

    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("form#login-form").count() == 1  # still the same page
    page.goto(member_idp.url + "/register")
    assert page.locator("html").get_attribute("lang") == "ja"
    page.locator("#lang-switch a[hreflang=en]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
