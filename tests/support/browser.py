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

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)

from tests.support.flows import token_request
from tests.support.harness import LiveIdp, authorization_url, pkce_pair

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CodeFlow",
    "VirtualAuthenticator",
    "add_authenticator",
    "chromium",
    "launch_chromium",
    "launch_persistent",
    "open_device",
    "persistent_browser",
    "playwright",
    "register_passkey",
    "sign_in",
    "sign_out",
    "start_code_flow",
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

ERROR_PAGE = "chrome-error://"
"""Where Chromium's page lands when a navigation fails (an unreachable host)."""


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


def sign_out(page: Page) -> Page:
    """Press ``button#logout`` (a form POST); returns once ``/login`` has loaded."""
    with page.expect_navigation():
        page.locator("button#logout").click()
    return page


@dataclass(frozen=True)
class VirtualAuthenticator:
    """A platform authenticator of one page (CDP WebAuthn), as a phone's or a
    laptop's built-in one: a discoverable-credential store with user
    verification that always passes, so ceremonies need no person."""

    page: Page
    cdp: CDPSession
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        """The passkeys it stores (``credentialId``, ``rpId``, ``userHandle``, ...)."""
        reply = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        credentials: list[dict[str, Any]] = reply["credentials"]
        return credentials


def add_authenticator(page: Page) -> VirtualAuthenticator:
    """Give ``page`` an empty built-in authenticator (CTAP2, internal transport,
    resident keys, user verification).

    It belongs to this page (the CDP session's target), not to the context:
    run every ceremony of the device in this same page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    reply = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualAuthenticator(page=page, cdp=cdp, authenticator_id=reply["authenticatorId"])


def register_passkey(
    authenticator: VirtualAuthenticator,
    idp: LiveIdp,
    username: str,
    password: str = "correct horse 1",
) -> str:
    """Sign in with the password on the authenticator's page and add a passkey
    on ``/account/passkeys`` (``button#passkey-register``) as a person would.

    Returns the new ``li[data-passkey-id]`` value, once the page has reloaded
    with it; the page stays signed in on ``/account/passkeys``."""
    page = authenticator.page
    sign_in(page, idp, username, password, remember=False)
    page.goto(idp.url + "/account/passkeys")
    rows = page.locator("#passkey-list li[data-passkey-id]")
    before = rows.count()
    page.locator("button#passkey-register").click()
    try:
        expect(rows).to_have_count(before + 1, timeout=10_000)
    except AssertionError as e:
        error = page.locator("#passkey-error")
        said = error.inner_text() if error.count() else ""
        raise AssertionError(f"no passkey was added (the page says {said!r})") from e
    passkey_id = rows.last.get_attribute("data-passkey-id")
    assert passkey_id, "the new passkey's row has no id"
    return passkey_id


@dataclass(frozen=True)
class CodeFlow:
    """A relying party's authorization code flow (PKCE S256) in a real page.

    The client's redirect URI (``shop.localhost`` by default) is served by
    nobody, and a route cannot answer it (Playwright routes only the first
    request of a redirect chain, and the provider reaches the client by a
    redirect), so the page records the requests it sends there: the test reads
    the code off that request's URL, as the client's server would.  ``code``
    returns once the page has settled on the browser's error page for the
    unreachable client, so the page can be used again at once."""

    idp: LiveIdp
    client: Any
    verifier: str
    url: str
    arrivals: list[str] = field(default_factory=list)
    """URLs of the requests the page sent to the redirect URI."""
    tokens: dict[str, Any] = field(default_factory=dict)
    """The token response of the last redemption."""

    @property
    def redirect_uri(self) -> str:
        redirect_uri: str = self.client.client.redirect_uris[0]
        return redirect_uri

    def _at_client(self, url: str) -> bool:
        return url.startswith(self.redirect_uri + "?")

    def code(self, page: Page, *, timeout_ms: float = 10_000) -> str:
        """The code the browser brings to the redirect URI, once it gets there."""
        if not self.arrivals:
            # Events reach Python only inside a Playwright call: none is lost
            # between the check above and this wait, which sees any still queued.
            page.wait_for_event(
                "request", lambda request: self._at_client(request.url), timeout=timeout_ms
            )
        (url,) = self.arrivals
        # The request fails; Chromium then commits its error page, which would
        # interrupt the next ``goto`` of this page if it came first.
        # (``wait_for_url`` would raise the failed navigation's error instead.)
        if not page.url.startswith(ERROR_PAGE):
            page.wait_for_event(
                "framenavigated",
                lambda frame: frame == page.main_frame and frame.url.startswith(ERROR_PAGE),
                timeout=timeout_ms,
            )
        codes = parse_qs(urlsplit(url).query).get("code", [])
        assert len(codes) == 1, f"no code at the client: {url}"
        return codes[0]

    def id_token_claims(self, code: str) -> dict[str, Any]:
        """Redeem ``code`` (client_secret_basic, code_verifier) and read the ID
        token's claims (its signature is checked by the protocol tests)."""
        reply = token_request(
            self.idp,
            self.client,
            grant_type="authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=self.verifier,
        )
        assert reply.status_code == 200, reply.text
        self.tokens.clear()
        self.tokens.update(reply.json())
        payload = self.tokens["id_token"].split(".")[1]
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
        return claims


def start_code_flow(page: Page, idp: LiveIdp, client: Any, **params: str) -> CodeFlow:
    """Open ``client``'s authorization request in ``page``, which from now on
    records what it sends to the client's redirect URI; returns once the
    provider's page has loaded."""
    verifier, challenge = pkce_pair()
    url = authorization_url(
        idp, client, code_challenge=challenge, code_challenge_method="S256", **params
    )
    flow = CodeFlow(idp=idp, client=client, verifier=verifier, url=url)

    def record(request: Request) -> None:
        if flow._at_client(request.url):
            flow.arrivals.append(request.url)

    page.on("request", record)
    page.goto(url)
    return flow
