"""Single sign-on as a person lives it: signed in once, every service lets them in."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.support.browser import sign_in, start_code_flow
from tests.support.harness import LiveIdp, authorization_url, pkce_pair

pytest_plugins = ("tests.support.browser",)
"""Its fixtures: ``open_device`` (and the Chromium under it)."""

pytestmark = pytest.mark.browser


def test_signed_in_at_login_a_new_service_goes_straight_to_consent_and_back(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    page = sign_in(open_device(), live_idp, member.username, remember=False)
    assert page.url == live_idp.url + "/account"
    travel = live_idp.create_client(name="Travel site")

    flow = start_code_flow(page, live_idp, travel)

    assert page.locator("form#login-form").count() == 0
    assert page.locator("form#consent-form").is_visible()
    page.locator("form#consent-form button[name=decision][value=allow]").click()
    claims = flow.id_token_claims(flow.code(page))
    assert claims["sub"] == member.id
    assert claims["amr"] == ["pwd"]


def test_a_service_asking_to_sign_in_again_says_why(
    live_idp: LiveIdp, open_device: Callable[[], Page]
) -> None:
    member = live_idp.create_user()
    page = sign_in(open_device(), live_idp, member.username, remember=False)
    shop = live_idp.create_client(name="Shop", first_party=True)
    pkce = {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}

    page.goto(authorization_url(live_idp, shop, prompt="login", **pkce))

    assert page.locator("form#login-form").is_visible()
    assert page.locator("#signin-reason").inner_text() == "The service asks you to sign in again."
