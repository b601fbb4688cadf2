"""How a person reaches each page, for the page checks and the screenshots.

:func:`reachable_pages` makes a member, an admin and a client on a live
provider and returns, for each page a person sees, a function that takes a
fresh browser page there the way a person gets there: signed out, signed
in, in the middle of an authorization request, on the phone that approves a
QR sign-in, as an admin past the one-time code."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page

from tests.support.harness import LiveIdp, authorization_url, pkce_pair
from tests.support.mailbox import mail_to, mails_to, text_of
from tests.support.smtp import SmtpServer

__all__ = ["PASSWORD", "Visit", "reachable_pages"]

PASSWORD = "correct horse 1"

Visit = Callable[[Page], None]


def reachable_pages(idp: LiveIdp, smtp: SmtpServer) -> dict[str, Visit]:
    """Name -> how to get a fresh browser context to that page."""
    member = idp.create_user(email=f"{secrets.token_hex(6)}@example.com", name="Hanako")
    admin = idp.create_user(email=f"{secrets.token_hex(6)}@example.com", is_admin=True)
    shop = idp.create_client(name="Travel Agency")

    def sign_in(page: Page, who: Any = member, then: str = "/account") -> None:
        page.goto(f"{idp.url}/login?next={then}")
        page.locator("input[name=username]").fill(who.username)
        page.locator("input[name=password]").fill(PASSWORD)
        with page.expect_navigation():
            page.locator("form#login-form button[type=submit]").click()

    def visit(path: str) -> Visit:
        return lambda page: page.goto(idp.url + path) and None

    def signed_in(path: str) -> Visit:
        def go(page: Page) -> None:
            sign_in(page)
            page.goto(idp.url + path)

        return go

    def consent(page: Page) -> None:
        sign_in(page)
        url = authorization_url(
            idp, shop, code_challenge=pkce_pair()[1], code_challenge_method="S256"
        )
        page.goto(url)
        page.locator("form#consent-form").wait_for()

    def step_up(page: Page) -> None:
        sign_in(page)
        url = authorization_url(
            idp,
            shop,
            code_challenge=pkce_pair()[1],
            code_challenge_method="S256",
            acr_values="urn:idp:acr:2",
        )
        page.goto(url)
        page.locator("form#otp-form").wait_for()

    def qr_approval(page: Page) -> None:
        page.goto(idp.url + "/login/qr")
        link = page.locator("#qr-url").input_value()
        page.goto(link)

    def admin_user(page: Page) -> None:
        # Counted before the sign-in: its way to /admin shows the step-up page,
        # which mails the code; the mail may arrive before the next line runs.
        before = len(mails_to(smtp, admin.email, "Your sign-in code"))
        sign_in(page, admin, "/admin")
        page.goto(idp.url + "/admin")
        code = re.search(
            r"\b(\d{6})\b",
            text_of(mail_to(smtp, admin.email, "Your sign-in code", nth=before + 1)),
        )
        assert code
        page.locator("input[name=otp]").fill(code.group(1))
        with page.expect_navigation():
            page.locator("form#otp-form button[type=submit]").click()
        page.goto(f"{idp.url}/admin/users/{member.id}")

    return {
        "sign-in": visit("/login"),
        "registration": visit("/register"),
        "forgotten user ID": visit("/recover/user-id"),
        "forgotten password": visit("/recover/password"),
        "QR sign-in": visit("/login/qr"),
        "QR approval": qr_approval,
        "error": visit("/authorize?client_id=nobody&response_type=code"),
        "consent": consent,
        "step-up": step_up,
        "account": signed_in("/account"),
        "sessions": signed_in("/account/sessions"),
        "passkeys": signed_in("/account/passkeys"),
        "security": signed_in("/account/security"),
        "cancel": signed_in("/account/cancel"),
        "admin user": admin_user,
    }
