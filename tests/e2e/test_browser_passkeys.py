"""Easy Login with passkeys in a real Chromium (CONTRACT "Easy Login and QR
sign-in", "Pages a person sees", "Navigation").

The device's built-in authenticator is Chromium's virtual one (CDP WebAuthn:
CTAP2, internal transport, resident keys, user verification that passes), so
every ceremony runs the page's own script against the real server, as on a
laptop with a fingerprint reader.  Sign-in is always by ``button#passkey-login``
with the user-ID field left empty and unfocused: a discoverable credential
says whose account it is."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Response, expect

from tests.support.browser import (
    add_authenticator,
    register_passkey,
    sign_out,
    start_code_flow,
)
from tests.support.harness import LiveIdp

pytest_plugins = ("tests.support.browser",)
"""Its fixtures: ``open_device`` (and the Chromium under it)."""

pytestmark = pytest.mark.browser

CEREMONY_MS = 10_000
"""A ceremony with the virtual authenticator answers at once; this is a deadline."""


def _signed_in_as(page: Page, idp: LiveIdp, username: str) -> bool:
    """Whether ``/account`` shows this browser signed in as ``username``."""
    page.goto(idp.url + "/account")
    return (
        page.url == idp.url + "/account"
        and page.locator("button#logout").count() == 1
        and page.locator("header .who").inner_text() == username
    )


def _sent_to_sign_in(page: Page, idp: LiveIdp) -> bool:
    page.goto(idp.url + "/account")
    return page.url == idp.url + "/login?next=/account"


def _press_easy_login(page: Page) -> None:
    """Click ``button#passkey-login`` with nothing typed (and the field never focused)."""
    assert page.locator("input[name=username]").input_value() == ""
    page.locator("button#passkey-login").click()


def test_registering_stores_a_discoverable_passkey_for_this_site(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    laptop = add_authenticator(open_device())

    passkey_id = register_passkey(laptop, live_idp, member.username)

    (credential,) = laptop.credentials()
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == "localhost"
    rows = laptop.page.locator("#passkey-list li[data-passkey-id]")
    assert [row.get_attribute("data-passkey-id") for row in rows.all()] == [passkey_id]


def test_a_registered_passkey_signs_in_without_a_user_id(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    laptop = add_authenticator(open_device())
    register_passkey(laptop, live_idp, member.username)
    page = sign_out(laptop.page)
    assert page.url == live_idp.url + "/login"

    _press_easy_login(page)

    page.wait_for_url(live_idp.url + "/account", timeout=CEREMONY_MS)
    assert _signed_in_as(page, live_idp, member.username)


def test_a_passkey_sign_in_reports_amr_hwk_and_user(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    client = live_idp.create_client(first_party=True)
    laptop = add_authenticator(open_device())
    register_passkey(laptop, live_idp, member.username)
    page = sign_out(laptop.page)
    flow = start_code_flow(page, live_idp, client)
    assert page.url.startswith(live_idp.url + "/login?interaction=")

    _press_easy_login(page)

    claims = flow.id_token_claims(flow.code(page, timeout_ms=CEREMONY_MS))
    assert claims["sub"] == member.id
    assert claims["amr"] == ["hwk", "user"]


def test_an_empty_authenticator_gets_a_visible_message(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    """A device with a built-in authenticator but no passkey of ours: the
    request fails in the page, with a message, and no server error."""
    laptop = add_authenticator(open_device())
    page = laptop.page
    replies: list[Response] = []
    page.on("response", lambda reply: replies.append(reply))
    page.goto(live_idp.url + "/login")

    _press_easy_login(page)

    error = page.locator("#easy-login-error")
    expect(error).to_be_visible(timeout=CEREMONY_MS)
    assert error.get_attribute("role") == "alert"
    assert error.inner_text() == "No passkey was used. Try again, or sign in another way."
    assert page.url == live_idp.url + "/login"
    assert [r.url for r in replies if r.status >= 500] == []
    assert laptop.credentials() == []
    assert _sent_to_sign_in(page, live_idp)


def test_passkeys_can_be_renamed_and_deleted(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    laptop = add_authenticator(open_device())
    passkey_id = register_passkey(laptop, live_idp, member.username)
    page = laptop.page
    row = page.locator(f'#passkey-list li[data-passkey-id="{passkey_id}"]')

    row.locator("input[name=name]").fill("Work laptop")
    with page.expect_navigation():
        row.locator("button[name=rename]").click()

    assert page.url == live_idp.url + "/account/passkeys"
    assert row.locator(".name").inner_text() == "Work laptop"

    with page.expect_navigation():
        row.locator("button[name=delete]").click()

    assert page.url == live_idp.url + "/account/passkeys"
    assert page.locator("#passkey-list li[data-passkey-id]").count() == 0


def test_a_deleted_passkey_no_longer_signs_in(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    """The device still holds the key; the account no longer accepts it."""
    member = live_idp.create_user()
    laptop = add_authenticator(open_device())
    passkey_id = register_passkey(laptop, live_idp, member.username)
    page = laptop.page
    with page.expect_navigation():
        page.locator(
            f'#passkey-list li[data-passkey-id="{passkey_id}"] button[name=delete]'
        ).click()
    sign_out(page)
    assert len(laptop.credentials()) == 1

    _press_easy_login(page)

    error = page.locator("#easy-login-error")
    expect(error).to_be_visible(timeout=CEREMONY_MS)
    assert error.inner_text() == "This passkey is not registered with any account."
    assert _sent_to_sign_in(page, live_idp)
