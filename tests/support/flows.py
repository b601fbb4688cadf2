"""Whole flows the end-to-end tests build on: sign in and get tokens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.authenticator import SoftAuthenticator
from tests.support.harness import (
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    pkce_pair,
)


@dataclass
class SignedIn:
    browser: Browser
    client: Any
    member: Any
    tokens: dict[str, Any]

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client.client.client_id, self.client.client_secret)


def register_software_passkey(
    idp: LiveIdp, username: str, password: str, *, name: str | None = None
) -> tuple[requests.Response, SoftAuthenticator]:
    """A new browser signs in and registers a software passkey through the
    account page's API: the answer to the registration, and the passkey."""
    browser = Browser(idp.url)
    browser.sign_in(browser.get("/login"), username, password)
    token = csrf_token(browser.get("/account/passkeys").text)
    headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
    options = browser.http.post(
        idp.url + "/account/passkeys/options", headers=headers, data="{}", timeout=10
    ).json()["publicKey"]
    phone = SoftAuthenticator(rp_id=urlsplit(idp.url).hostname or "", origin=idp.url)
    body: dict[str, Any] = {"credential": phone.create(options)}
    if name is not None:
        body["name"] = name
    reply = browser.http.post(
        idp.url + "/account/passkeys", headers=headers, data=json.dumps(body), timeout=10
    )
    return reply, phone


def token_request(idp: LiveIdp, client: Any, **data: str) -> requests.Response:
    auth = (client.client.client_id, client.client_secret) if client.client_secret else None
    if auth is None:
        data.setdefault("client_id", client.client.client_id)
    return requests.post(idp.url + "/token", data=data, auth=auth, timeout=10)


def sign_in(
    idp: LiveIdp,
    *,
    client: Any | None = None,
    member: Any | None = None,
    browser: Browser | None = None,
    remember: bool = False,
    scope: str = "openid profile email",
    **params: str,
) -> SignedIn:
    """A person signs in through the code flow and the client redeems the code."""
    client = client or idp.create_client()
    member = member or idp.create_user()
    browser = browser or Browser(idp.url)
    verifier, challenge = pkce_pair()
    url = authorization_url(
        idp, client, scope=scope, code_challenge=challenge, code_challenge_method="S256", **params
    )
    leaving = browser.authorize(url, username=member.username, remember=remember)
    code = callback_params(leaving)["code"]
    reply = token_request(
        idp,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=client.client.redirect_uris[0],
        code_verifier=verifier,
    )
    assert reply.status_code == 200, reply.text
    return SignedIn(browser=browser, client=client, member=member, tokens=reply.json())


def refresh(idp: LiveIdp, client: Any, refresh_token: str) -> requests.Response:
    """The client presents a refresh token (RFC 6749 §6)."""
    return token_request(idp, client, grant_type="refresh_token", refresh_token=refresh_token)


def authorization_code(
    idp: LiveIdp,
    *,
    client: Any,
    member: Any,
    browser: Browser | None = None,
    remember: bool = False,
    scope: str = "openid profile email",
) -> tuple[str, str, Browser]:
    """A person signs in and allows the client; the code it got (not yet
    redeemed), its PKCE verifier and the browser."""
    browser = browser or Browser(idp.url)
    verifier, challenge = pkce_pair()
    url = authorization_url(
        idp, client, scope=scope, code_challenge=challenge, code_challenge_method="S256"
    )
    leaving = browser.authorize(url, username=member.username, remember=remember)
    return callback_params(leaving)["code"], verifier, browser


def redeem(idp: LiveIdp, client: Any, code: str, verifier: str) -> requests.Response:
    return token_request(
        idp,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=client.client.redirect_uris[0],
        code_verifier=verifier,
    )


def introspect(idp: LiveIdp, client: Any, token: str) -> dict[str, Any]:
    reply = requests.post(
        idp.url + "/introspect",
        data={"token": token},
        auth=(client.client.client_id, client.client_secret),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def answer_step_up(
    browser: Browser, page: requests.Response, field: str, value: str
) -> requests.Response:
    """Answer the step-up page's ``form#otp-form`` (``field`` ``otp``) or
    ``form#birthdate-form``; the unfollowed reply."""
    form = "otp-form" if field == "otp" else "birthdate-form"
    assert f'id="{form}"' in page.text, page.text[:500]
    data = {"csrf_token": csrf_token(page.text), field: value}
    for hidden in ("interaction", "next"):
        found = re.search(rf'name="{hidden}" value="([^"]*)"', page.text)
        if found:
            data[hidden] = found.group(1)
    return browser.post("/login/step-up", data)


WRONG_PASSWORD = "The user ID or password is incorrect."
"""The sign-in page's refusal of a wrong password (and of an unknown user)."""


def password_attempt(idp: LiveIdp, login: str, password: str) -> str:
    """One sign-in with a password from a fresh browser: ``"signed in"``, or
    the words of the page's alert (its per-page tokens aside)."""
    browser = Browser(idp.url)
    reply = browser.submit_login(browser.get("/login"), login, password)
    if reply.status_code == 303:
        return "signed in"
    alert = re.search(r'role="alert">([^<]*)<', reply.text)
    return alert.group(1) if alert else f"{reply.status_code} {reply.text[:200]}"
