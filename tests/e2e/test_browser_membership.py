"""A whole membership in a real browser, from registration to cancellation.

One person registers, confirms the address by the mailed link, signs in to
a relying service, cannot change the birth date (neither by the form nor by
a hand-made POST), sets up one-time codes with a code pyotp computes from
``#totp-secret``, passes a step-up with it, uses a recovery code once, and
cancels.  Afterwards the account's rows are gone, its refresh token fails,
a back-channel logout token and a signed account-purged SET reach the
service, the user ID is refused to a new registration, and a new
registration with the same address gets another ``sub``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import sign_out, start_code_flow
from tests.support.flows import refresh
from tests.support.harness import LiveIdp, eventually
from tests.support.mailbox import links_in, mail_to
from tests.support.receiver import LogoutReceiver
from tests.support.set_receiver import SetReceiver
from tests.support.smtp import SmtpServer

pytest_plugins = ("tests.support.browser",)
"""Its fixtures: ``open_device`` (and the Chromium under it)."""

pytestmark = pytest.mark.browser

PASSWORD = "my own long passphrase 3"
PURGED = "https://schemas.openid.net/secevent/risc/event-type/account-purged"


@pytest.fixture
def services() -> Iterator[tuple[LogoutReceiver, SetReceiver]]:
    logout, events = LogoutReceiver().up(), SetReceiver().up()
    yield logout, events
    logout.down()
    events.down()


def _register(page: Page, idp: LiveIdp, username: str, email: str) -> None:
    page.goto(idp.url + "/login")
    page.locator("a#register-link").click()
    form = page.locator("form#register-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("input[name=name]").fill("Hanako Yamada")
    form.locator("[name=gender]").select_option("female")
    form.locator("input[name=birthdate]").fill("1990-04-01")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def _sign_in_here(page: Page, username: str) -> None:
    """Fill and send the sign-in form; the browser goes on to the next step or
    to the service (which nobody serves: the flow reads the code it brings)."""
    form = page.locator("form#login-form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()


def _answer_step_up(page: Page, code: str) -> None:
    form = page.locator("form#otp-form")
    form.locator("input[name=otp]").fill(code)
    form.locator("button[type=submit]").click()


def test_a_whole_membership_from_registration_to_cancellation(
    member_idp: LiveIdp,
    smtp: SmtpServer,
    open_device: Callable[[], Page],
    services: tuple[LogoutReceiver, SetReceiver],
) -> None:
    idp = member_idp
    logout, events = services
    shop = idp.create_client(
        name="Shop", first_party=True, backchannel_logout_uri=logout.uri, events_uri=events.uri
    )
    username, email = "b" + secrets.token_hex(5), f"{secrets.token_hex(5)}@example.com"
    page = open_device()

    # Registers, and confirms the address by the mailed link.
    _register(page, idp, username, email)
    expect(page.locator("#register-sent")).to_be_visible()
    (link,) = links_in(mail_to(smtp, email, "Confirm your email address"))
    page.goto(link)
    expect(page.locator("#verified")).to_be_visible()

    # Signs in to the shop.
    flow = start_code_flow(page, idp, shop)
    _sign_in_here(page, username)
    first = flow.id_token_claims(flow.code(page))
    assert first["amr"] == ["pwd"]
    sub = first["sub"]

    # Cannot change the birth date: no field for it, and a hand-made POST is ignored.
    page.goto(idp.url + "/account")
    expect(page.locator("#birthdate")).to_have_text("1990-04-01")
    expect(page.locator("form#profile-form [name=birthdate]")).to_have_count(0)
    token = page.locator("form#profile-form input[name=csrf_token]").input_value()
    reply = page.request.post(
        idp.url + "/account",
        form={"csrf_token": token, "name": "Hanako", "birthdate": "2001-01-01", "gender": "male"},
    )
    assert reply.status < 400
    page.goto(idp.url + "/account")
    expect(page.locator("#birthdate")).to_have_text("1990-04-01")
    expect(page.locator("#gender")).to_have_text("female")

    # Sets up one-time codes with a code computed from #totp-secret.
    page.goto(idp.url + "/account/security")
    with page.expect_navigation():
        page.locator("button#totp-setup").click()
    expect(page.locator("#totp-qr")).to_be_visible()
    totp = pyotp.TOTP(page.locator("#totp-secret").inner_text().strip())
    page.locator("form#totp-confirm-form input[name=otp]").fill(totp.now())
    with page.expect_navigation():
        page.locator("form#totp-confirm-form button[type=submit]").click()
    recovery_codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(recovery_codes) == 10

    # The shop asks for the strong level: the step-up only, with the next code.
    flow = start_code_flow(page, idp, shop, acr_values="urn:idp:acr:2")
    expect(page.locator("form#otp-form")).to_be_visible()
    _answer_step_up(page, totp.at(time.time() + totp.interval))
    stepped = flow.id_token_claims(flow.code(page))
    assert stepped["amr"] == ["pwd", "otp", "mfa"]
    assert stepped["acr"] == "urn:idp:acr:2"
    refresh_token = flow.tokens["refresh_token"]

    # A recovery code passes a step-up once.
    for accepted in (True, False):
        page.goto(idp.url + "/account")
        sign_out(page)
        flow = start_code_flow(page, idp, shop, acr_values="urn:idp:acr:2")
        _sign_in_here(page, username)
        expect(page.locator("form#otp-form")).to_be_visible()
        _answer_step_up(page, recovery_codes[0].strip())
        if accepted:
            flow.code(page)
        else:
            expect(page.locator('[role="alert"]')).to_be_visible()

    # Cancels (the sign-in just made is fresh).
    page.goto(idp.url + "/account/cancel")
    with page.expect_navigation():
        page.locator("button#cancel-confirm").click()
    expect(page.locator("#cancel-done")).to_be_visible()

    # Afterwards: gone, refused, told.
    refreshed = refresh(idp, shop, refresh_token)
    assert refreshed.json()["error"] == "invalid_grant"
    assert eventually(lambda: logout.claims_for(idp.url, sub=sub))
    purged = eventually(lambda: _events_about(idp, events, sub))
    assert purged == [PURGED]
    with idp.services():
        from idp import members
        from idp.errors import NotFoundError

        with pytest.raises(NotFoundError):
            members.get(sub)
    _register(page, idp, username, f"{secrets.token_hex(5)}@example.com")
    expect(page.locator('[role="alert"]')).to_contain_text("That user ID is taken")
    again = "c" + secrets.token_hex(5)
    _register(page, idp, again, email)
    expect(page.locator("#register-sent")).to_be_visible()
    (link,) = links_in(mail_to(smtp, email, "Confirm your email address", nth=2))
    page.goto(link)
    flow = start_code_flow(page, idp, shop)
    _sign_in_here(page, again)
    assert flow.id_token_claims(flow.code(page))["sub"] != sub


def _events_about(idp: LiveIdp, receiver: SetReceiver, sub: str) -> list[str]:
    import requests
    from joserfc import jwt
    from joserfc.jwk import KeySet

    jwks = KeySet.import_key_set(requests.get(idp.url + "/jwks.json", timeout=5).json())
    found = []
    for token in receiver.tokens:
        decoded = jwt.decode(token, jwks, algorithms=["RS256", "ES256"])
        assert decoded.header["typ"] == "secevent+jwt"
        if decoded.claims["sub_id"] == {"format": "iss_sub", "iss": idp.url, "sub": sub}:
            found += list(decoded.claims["events"])
    return sorted(found)
