"""QR sign-in from a registered phone, in real Chromium contexts (CONTRACT
"Easy Login and QR sign-in", "Pages a person sees", "Navigation", "Pages,
security headers and forms").

Two devices: the "PC", a context with no authenticator, which wants to sign
in and shows the QR code; and the "phone", a page with Chromium's virtual
authenticator (CDP WebAuthn) holding the member's passkey, signed out, which
opens the link in that same page.  The PC learns the outcome by itself
(polling), so a test waits for what its page shows, to a deadline."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.browser import (
    add_authenticator,
    register_passkey,
    sign_out,
    start_code_flow,
)
from tests.support.harness import Backend, LiveIdp, start_live_idp

pytest_plugins = ("tests.support.browser",)
"""Its fixtures: ``open_device`` (and the Chromium under it)."""

pytestmark = pytest.mark.browser

OUTCOME_MS = 10_000
"""The PC polls once a second: it shows an outcome within seconds, or never."""

SHORT_TTL_SECONDS = 3


@pytest.fixture(scope="module")
def short_lived_idp(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveIdp]:
    """A second live server whose QR requests expire after a few seconds."""
    root = tmp_path_factory.mktemp("qr_short")
    with start_live_idp(
        root,
        backend,
        name="qr_short",
        extra_config=f"[qr]\nttl_seconds = {SHORT_TTL_SECONDS}\n",
    ) as idp:
        yield idp


@dataclass(frozen=True)
class ShownCode:
    """What the PC's QR page shows: the link (as text), the number, and the
    request's public id its script polls."""

    link: str
    match_code: str
    public_id: str


def _read_qr_page(pc: Page) -> ShownCode:
    status = pc.locator("#qr-status")
    assert status.get_attribute("data-state") == "pending"
    public_id = status.get_attribute("data-public-id")
    assert public_id
    return ShownCode(
        link=pc.locator("#qr-url").input_value(),
        match_code=pc.locator("#qr-match-code").inner_text(),
        public_id=public_id,
    )


def _decode_qr(pc: Page) -> str:
    """The text of the QR image on the PC's screen, read as a phone's camera would."""
    png = pc.locator("#qr-code").screenshot()
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    text: str = barcode.text
    return text


def _show_code(pc: Page, idp: LiveIdp) -> ShownCode:
    """The PC opens the QR sign-in page by itself (no authorization request)."""
    pc.goto(idp.url + "/login/qr")
    return _read_qr_page(pc)


def _phone_with_passkey(open_device: Callable[[], Page], idp: LiveIdp, member: Any) -> Page:
    """A phone whose authenticator holds ``member``'s passkey, then signed out:
    it approves as the passkey's owner, not as a signed-in browser."""
    phone = add_authenticator(open_device())
    register_passkey(phone, idp, member.username)
    sign_out(phone.page)
    return phone.page


def _approve(phone: Page, shown: ShownCode) -> None:
    """Open the link, pick the PC's number and pass the passkey check;
    returns once ``#qr-done`` shows."""
    phone.goto(shown.link)
    phone.locator(f'button[name=match][value="{shown.match_code}"]').click()
    expect(phone.locator("#qr-done")).to_be_visible(timeout=OUTCOME_MS)


def _signed_in_as(page: Page, idp: LiveIdp, username: str) -> bool:
    page.goto(idp.url + "/account")
    return (
        page.url == idp.url + "/account"
        and page.locator("button#logout").count() == 1
        and page.locator("header .who").inner_text() == username
    )


def _sent_to_sign_in(page: Page, idp: LiveIdp) -> bool:
    page.goto(idp.url + "/account")
    return page.url == idp.url + "/login?next=/account"


def test_the_qr_image_encodes_the_link_shown_beside_it(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    pc = open_device()
    shown = _show_code(pc, live_idp)

    scanned = _decode_qr(pc)

    assert scanned == shown.link
    assert shown.link.startswith(live_idp.url + "/qr/")
    assert len(shown.match_code) == 2
    assert shown.match_code.isdigit()


def test_the_qr_image_is_a_link_to_copy_that_a_click_does_not_follow(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    """The membership help page: right-click the code (long-press on a phone)
    and copy its URL.  A click on this device stays on the waiting page and
    selects the URL beside the code instead."""
    pc = open_device()
    shown = _show_code(pc, live_idp)
    link = pc.locator("a#qr-link")

    assert link.get_attribute("href") == shown.link
    assert link.locator("svg#qr-code").count() == 1

    pc.locator("#qr-code").click()

    assert pc.url == live_idp.url + "/login/qr"
    selected = pc.evaluate(
        "() => { const f = document.activeElement;"
        " return [f.id, f.value.slice(f.selectionStart, f.selectionEnd)]; }"
    )
    assert selected == ["qr-url", shown.link]
    expect(pc.locator("#qr-status")).to_have_attribute("data-state", "pending")


def test_easy_login_without_a_passkey_device_shows_the_qr_sign_in(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    """No user-verifying platform authenticator: ``button#passkey-login``
    offers the registered phone instead."""
    pc = open_device()
    pc.goto(live_idp.url + "/login")

    pc.locator("button#passkey-login").click()

    pc.wait_for_url(live_idp.url + "/login/qr", timeout=OUTCOME_MS)
    expect(pc.locator("svg#qr-code")).to_be_visible()
    assert pc.locator("#qr-url").input_value().startswith(live_idp.url + "/qr/")


def test_the_phone_is_shown_who_asks(live_idp: LiveIdp, open_device: Callable[[], Page]) -> None:
    zone = ZoneInfo(live_idp.settings.alerts.timezone)
    before = dt.datetime.now(zone)
    shown = _show_code(open_device(), live_idp)
    after = dt.datetime.now(zone)
    phone = open_device()

    phone.goto(shown.link)

    info = phone.locator("#qr-request-info")
    assert [dd.inner_text() for dd in info.locator("dd").all()[:3]] == [
        "Chrome on Linux",
        "127.0.0.1",
        "Unknown",
    ]
    minutes = {when.strftime("%Y/%m/%d %H:%M %Z") for when in (before, after)}
    assert info.locator("time").inner_text() in minutes
    offered = [b.get_attribute("value") for b in phone.locator("button[name=match]").all()]
    assert len(offered) == 3
    assert len(set(offered)) == 3
    assert shown.match_code in offered
    assert phone.locator("button#qr-deny").count() == 1


def test_a_phone_approval_signs_the_pc_in_and_completes_an_authorization(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    client = live_idp.create_client(first_party=True)
    phone = _phone_with_passkey(open_device, live_idp, member)
    pc = open_device()
    flow = start_code_flow(pc, live_idp, client)
    assert pc.url.startswith(live_idp.url + "/login?interaction=")
    with pc.expect_navigation():
        pc.locator("a#qr-login").click()
    assert pc.url.startswith(live_idp.url + "/login/qr?interaction=")
    shown = _read_qr_page(pc)
    scanned = _decode_qr(pc)

    _approve(phone, replace(shown, link=scanned))

    claims = flow.id_token_claims(flow.code(pc, timeout_ms=OUTCOME_MS))
    assert claims["sub"] == member.id
    assert claims["amr"] == ["hwk", "user", "mca"]
    assert _signed_in_as(pc, live_idp, member.username)


def test_the_link_is_refused_after_use(live_idp: LiveIdp, open_device: Callable[[], Page]) -> None:
    member = live_idp.create_user()
    phone = _phone_with_passkey(open_device, live_idp, member)
    pc = open_device()
    shown = _show_code(pc, live_idp)
    _approve(phone, shown)
    pc.wait_for_url(live_idp.url + "/account", timeout=OUTCOME_MS)

    reply = phone.goto(shown.link)

    assert reply is not None
    assert reply.status == 400
    assert phone.locator("[role=alert]").inner_text() == "This sign-in request was already used."
    assert phone.locator("button[name=match]").count() == 0
    assert phone.locator("#qr-request-info").count() == 0


def test_a_wrong_number_leaves_the_pc_signed_out(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    phone = _phone_with_passkey(open_device, live_idp, member)
    pc = open_device()
    shown = _show_code(pc, live_idp)
    phone.goto(shown.link)
    wrong = next(
        value
        for button in phone.locator("button[name=match]").all()
        if (value := button.get_attribute("value")) != shown.match_code
    )

    phone.locator(f'button[name=match][value="{wrong}"]').click()

    phone_error = phone.locator("#qr-approve-error")
    expect(phone_error).to_be_visible(timeout=OUTCOME_MS)
    assert phone_error.get_attribute("role") == "alert"
    assert phone_error.inner_text() == (
        "That was not the number on the other screen. The request is denied."
    )
    expect(pc.locator("#qr-status")).to_have_attribute("data-state", "denied", timeout=OUTCOME_MS)
    assert pc.locator("#qr-error").inner_text() == "The sign-in request was denied on your phone."
    assert pc.locator("#qr-error").get_attribute("role") == "alert"
    assert _sent_to_sign_in(pc, live_idp)


def test_deny_leaves_the_pc_signed_out(live_idp: LiveIdp, open_device: Callable[[], Page]) -> None:
    member = live_idp.create_user()
    phone = _phone_with_passkey(open_device, live_idp, member)
    pc = open_device()
    shown = _show_code(pc, live_idp)
    phone.goto(shown.link)

    with phone.expect_navigation():
        phone.locator("button#qr-deny").click()

    assert phone.locator("[role=alert]").inner_text() == (
        "You denied this sign-in request. Nobody was signed in."
    )
    expect(pc.locator("#qr-status")).to_have_attribute("data-state", "denied", timeout=OUTCOME_MS)
    assert pc.locator("#qr-error").inner_text() == "The sign-in request was denied on your phone."
    assert _sent_to_sign_in(pc, live_idp)


def test_an_expired_request_leaves_the_pc_signed_out(
    short_lived_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    pc = open_device()
    shown = _show_code(pc, short_lived_idp)

    expect(pc.locator("#qr-status")).to_have_attribute(
        "data-state", "expired", timeout=(SHORT_TTL_SECONDS + 5) * 1000
    )

    assert pc.locator("#qr-error").inner_text() == "The code has expired. Go back and start again."
    phone = open_device()
    phone.goto(shown.link)
    assert phone.locator("[role=alert]").inner_text() == "This sign-in request has expired."
    assert phone.locator("button[name=match]").count() == 0
    assert _sent_to_sign_in(pc, short_lived_idp)


def test_a_third_browser_cannot_collect_the_approval(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    phone = _phone_with_passkey(open_device, live_idp, member)
    pc = open_device()
    shown = _show_code(pc, live_idp)
    # The PC stops hearing about its request, so the approval waits uncollected.
    pc.route("**/login/qr/*/status", lambda route: route.abort())
    _approve(phone, shown)
    assert pc.url == live_idp.url + "/login/qr"  # still waiting: nobody collected yet
    third = open_device()
    third.goto(live_idp.url + "/login")

    refused = third.evaluate(
        """async (publicId) => {
            const reply = await fetch(`/login/qr/${publicId}/collect`, {
                method: "POST",
                credentials: "same-origin",
                headers: {
                    "Content-Type": "application/json",
                    "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content,
                },
                body: "{}",
            });
            return {status: reply.status, body: await reply.json()};
        }""",
        shown.public_id,
    )

    assert 400 <= refused["status"] < 500
    assert refused["body"]["error"] == "refused"  # by the QR request, not for want of CSRF
    assert _sent_to_sign_in(third, live_idp)
    pc.unroute("**/login/qr/*/status")
    pc.wait_for_url(live_idp.url + "/account", timeout=OUTCOME_MS)
    assert _signed_in_as(pc, live_idp, member.username)


def test_qr_pages_send_no_referrer_and_no_store(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    pc = open_device()
    shown_reply = pc.goto(live_idp.url + "/login/qr")
    shown = _read_qr_page(pc)
    phone = open_device()

    link_reply = phone.goto(shown.link)

    for reply in (shown_reply, link_reply):
        assert reply is not None
        assert reply.status == 200
        headers = reply.headers
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
