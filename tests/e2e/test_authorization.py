"""The authorization endpoint: errors, prompts and what is never redirected."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import requests

from idp import members
from tests.support.flows import sign_in
from tests.support.harness import (
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    pkce_pair,
)


def _pkce() -> dict[str, str]:
    return {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}


def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    url = authorization_url(
        live_idp, client, redirect_uri="http://shop.localhost/elsewhere", **_pkce()
    )
    reply = Browser(live_idp.url).get(url)
    assert reply.status_code == 400
    assert "Location" not in reply.headers
    assert 'role="alert"' in reply.text
    assert "invalid_request" in reply.text


def test_an_unknown_client_gets_an_error_page(live_idp: LiveIdp) -> None:
    reply = Browser(live_idp.url).get(
        "/authorize?response_type=code&client_id=nobody&redirect_uri=http://evil.localhost/&scope=openid"
    )
    assert reply.status_code == 400
    assert "Location" not in reply.headers
    assert "invalid_client" in reply.text


def test_a_public_client_without_pkce_is_refused(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(public=True)
    url = authorization_url(live_idp, client)
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "invalid_request"
    assert params["iss"] == live_idp.url
    assert "state" in params


def test_pkce_plain_is_refused(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    url = authorization_url(
        live_idp, client, code_challenge="a" * 43, code_challenge_method="plain"
    )
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "invalid_request"


def test_a_public_client_completes_the_flow_with_pkce(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(public=True)
    signed = sign_in(live_idp, client=client)
    assert signed.tokens["token_type"] == "Bearer"
    assert "id_token" in signed.tokens


def test_a_repeated_parameter_is_invalid_request(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    url = authorization_url(live_idp, client, **_pkce()) + "&nonce=a&nonce=b"
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "invalid_request"


def test_request_objects_are_not_supported(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    url = authorization_url(live_idp, client, request="eyJhbGciOiJub25lIn0.e30.", **_pkce())
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "request_not_supported"
    url = authorization_url(live_idp, client, request_uri="https://evil.example/r", **_pkce())
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "request_uri_not_supported"


def test_prompt_none_without_a_session_is_login_required(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    url = authorization_url(live_idp, client, prompt="none", **_pkce())
    params = callback_params(Browser(live_idp.url).get(url))
    assert params["error"] == "login_required"


def test_prompt_none_with_a_session_and_consent_issues_a_code(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    url = authorization_url(live_idp, signed.client, prompt="none", **_pkce())
    params = callback_params(signed.browser.get(url))
    assert "code" in params


def test_prompt_login_asks_for_the_password_again(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    url = authorization_url(live_idp, signed.client, prompt="login", **_pkce())
    page = signed.browser.follow(signed.browser.get(url))
    assert 'id="login-form"' in page.text


def test_max_age_zero_forces_a_fresh_sign_in(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    url = authorization_url(live_idp, signed.client, max_age="0", **_pkce())
    page = signed.browser.follow(signed.browser.get(url))
    assert 'id="login-form"' in page.text


def test_the_sign_in_page_names_the_service_and_prefills_the_login_hint(
    live_idp: LiveIdp,
) -> None:
    client = live_idp.create_client(name="Kumo Travel")
    url = authorization_url(live_idp, client, login_hint="hanako", **_pkce())
    browser = Browser(live_idp.url)
    page = browser.follow(browser.get(url))
    assert 'id="login-form"' in page.text
    assert 'value="hanako"' in page.text
    assert "to continue to Kumo Travel" in page.text


def test_denying_consent_returns_access_denied(live_idp: LiveIdp) -> None:
    client = live_idp.create_client()
    member = live_idp.create_user()
    url = authorization_url(live_idp, client, **_pkce())
    leaving = Browser(live_idp.url).authorize(url, username=member.username, consent="deny")
    params = callback_params(leaving)
    assert params["error"] == "access_denied"


def test_consent_is_remembered_per_client(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    url = authorization_url(live_idp, signed.client, **_pkce())
    assert "code" in callback_params(signed.browser.follow(signed.browser.get(url)))


def test_a_first_party_client_skips_consent(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(first_party=True)
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    page = browser.follow(browser.get(authorization_url(live_idp, client, **_pkce())))
    leaving = browser.sign_in(page, member.username, "correct horse 1")
    assert "code" in callback_params(leaving)


def test_a_sign_in_post_without_its_csrf_token_is_refused(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    browser.get("/login")
    reply = browser.post("/login", {"username": member.username, "password": "correct horse 1"})
    assert reply.status_code == 400
    assert "idp_session" not in browser.http.cookies


def test_a_wrong_password_shows_the_same_alert_as_an_unknown_user(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    wrong = browser.sign_in(browser.get("/login"), member.username, "wrong password!")
    unknown = browser.sign_in(browser.get("/login"), "nobody-here", "wrong password!")
    alert = '<p class="alert" role="alert">The user ID or password is incorrect.</p>'
    assert alert in wrong.text
    assert alert in unknown.text


def test_signing_in_without_a_request_shows_the_account(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    page = browser.sign_in(browser.get("/login"), member.username, "correct horse 1")
    assert page.url.endswith("/account")
    assert member.username in page.text
    assert 'id="logout"' in page.text


def test_an_account_page_sends_a_signed_out_person_to_sign_in_and_back(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    reply = browser.get("/account")
    assert reply.status_code == 303
    location = urlsplit(reply.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/account"]
    page = browser.sign_in(browser.follow(reply), member.username, "correct horse 1")
    assert urlsplit(page.url).path == "/account"


def test_login_next_never_leaves_the_provider(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    page = browser.get("/login?next=//evil.example/x")
    reply = browser.submit_login(page, member.username, "correct horse 1")
    assert reply.headers["Location"] == live_idp.url + "/account"


def test_pages_send_the_security_headers(live_idp: LiveIdp) -> None:
    reply = requests.get(live_idp.url + "/login", timeout=10)
    csp = reply.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert reply.headers["Cache-Control"] == "no-store"


def test_the_session_cookie_is_httponly_and_samesite_lax(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    reply = browser.submit_login(browser.get("/login"), member.username, "correct horse 1")
    cookies = reply.raw.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("idp_session="))
    device = next(c for c in cookies if c.startswith("idp_device="))
    for cookie in (session, device):
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert "Path=/" in cookie
    assert "Max-Age" not in session
    assert "Expires" not in session


def test_a_stay_signed_in_cookie_slides_with_use(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    browser.sign_in(browser.get("/login"), member.username, "correct horse 1", remember=True)
    page = browser.get("/account")
    (cookie,) = [c for c in page.raw.headers.getlist("Set-Cookie") if c.startswith("idp_session=")]
    max_age = int(cookie.split("Max-Age=")[1].split(";")[0])
    assert 30 * 86400 - 120 <= max_age <= 30 * 86400
    assert "HttpOnly" in cookie


def test_a_browser_session_cookie_is_not_made_persistent_by_use(live_idp: LiveIdp) -> None:
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    browser.sign_in(browser.get("/login"), member.username, "correct horse 1")
    page = browser.get("/account")
    assert not [c for c in page.raw.headers.getlist("Set-Cookie") if c.startswith("idp_session=")]


def test_the_profile_form_changes_the_name_and_nothing_else(live_idp: LiveIdp) -> None:
    member = live_idp.create_user(name="Old Name", gender="female", birthdate=dt.date(1990, 4, 1))
    browser = Browser(live_idp.url)
    page = browser.sign_in(browser.get("/login"), member.username, "correct horse 1")
    assert 'id="profile-form"' in page.text
    reply = browser.post(
        "/account",
        {
            "csrf_token": csrf_token(page.text),
            "name": "  New   Name ",
            "gender": "male",
            "birthdate": "2000-01-01",
        },
    )
    assert reply.status_code == 303
    with live_idp.services():
        after = members.get(member.id)
    assert after.name == "New Name"
    assert after.gender == "female"
    assert after.birthdate == dt.date(1990, 4, 1)


def test_a_signed_out_profile_post_changes_nothing(live_idp: LiveIdp) -> None:
    browser = Browser(live_idp.url)
    page = browser.get("/login")
    reply = browser.post("/account", {"csrf_token": csrf_token(page.text), "name": "Mallory"})
    assert reply.status_code == 303
    assert "/login" in reply.headers["Location"]
