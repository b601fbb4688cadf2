"""RP-initiated logout 1.0 and the person's own sign-out."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.support.flows import introspect, refresh, sign_in
from tests.support.harness import (
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    pkce_pair,
)

AFTER = "http://shop.localhost/bye"


def _logout_url(idp: LiveIdp, **params: str) -> str:
    return "/logout?" + urlencode(params)


def test_rp_initiated_logout_with_a_hint_signs_out_at_once_then_prompt_none_is_login_required(
    live_idp: LiveIdp,
) -> None:
    client = live_idp.create_client(post_logout_redirect_uris=[AFTER])
    signed = sign_in(live_idp, client=client)
    reply = signed.browser.get(
        _logout_url(
            live_idp,
            id_token_hint=signed.tokens["id_token"],
            post_logout_redirect_uri=AFTER,
            state="s1",
        )
    )
    assert reply.status_code == 303
    assert reply.headers["Location"] == AFTER + "?state=s1"
    url = authorization_url(
        live_idp, client, prompt="none", code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    assert callback_params(signed.browser.get(url))["error"] == "login_required"
    assert introspect(live_idp, client, signed.tokens["access_token"]) == {"active": False}
    refreshed = refresh(live_idp, client, signed.tokens["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"


def test_logout_without_a_hint_asks_for_confirmation(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    page = signed.browser.get("/logout")
    assert page.status_code == 200
    assert 'id="logout-form"' in page.text
    assert 'id="logout-confirm"' in page.text
    assert signed.browser.get("/account").status_code == 200  # still signed in


def test_the_confirmation_post_signs_out(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    page = signed.browser.get("/logout")
    reply = signed.browser.post("/logout", {"csrf_token": csrf_token(page.text), "confirm": "1"})
    assert reply.status_code == 200
    assert "You are signed out" in reply.text
    assert signed.browser.get("/account").status_code == 303


def test_the_confirmation_post_without_csrf_is_refused(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    reply = signed.browser.post("/logout", {"confirm": "1"})
    assert reply.status_code == 400
    assert signed.browser.get("/account").status_code == 200


def test_an_unregistered_post_logout_redirect_uri_is_an_error_page(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(post_logout_redirect_uris=[AFTER])
    signed = sign_in(live_idp, client=client)
    reply = signed.browser.get(
        _logout_url(
            live_idp,
            id_token_hint=signed.tokens["id_token"],
            post_logout_redirect_uri="http://evil.localhost/",
        )
    )
    assert reply.status_code == 400
    assert "Location" not in reply.headers
    assert 'role="alert"' in reply.text


def test_a_hint_for_another_session_asks_before_signing_out(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(post_logout_redirect_uris=[AFTER])
    member = live_idp.create_user()
    old = sign_in(live_idp, client=client, member=member)
    current = Browser(live_idp.url)
    sign_in(live_idp, client=client, member=member, browser=current)
    page = current.get(_logout_url(live_idp, id_token_hint=old.tokens["id_token"]))
    assert 'id="logout-form"' in page.text


def test_the_sign_out_button_ends_the_session(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    page = signed.browser.get("/account")
    reply = signed.browser.post("/signout", {"csrf_token": csrf_token(page.text)})
    assert reply.status_code == 303
    assert signed.browser.get("/account").status_code == 303
    assert "idp_device" in signed.browser.http.cookies  # signing out keeps the device


def test_the_sign_out_button_without_csrf_changes_nothing(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    reply = signed.browser.post("/signout", {})
    assert reply.status_code == 400
    assert signed.browser.get("/account").status_code == 200
