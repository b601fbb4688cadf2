"""Interop: Apache httpd with mod_auth_openidc signs people in through the IdP.

A service behind Apache needs no OIDC code of its own: Debian's
``libapache2-mod-auth-openidc`` discovers the provider, sends the browser to
it with PKCE, redeems the code with the client secret (the confidential
client of the contract), keeps the tokens in its own server-side session and
refreshes them from whichever worker thread a request lands in.  These tests
drive a real Apache (``tests/support/apache.py``) against the live IdP."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from tests.support.apache import PAGE_TEXT, ApacheRelyingParty, redirect_uri_for
from tests.support.harness import (
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    pkce_pair,
)
from tests.support.ports import free_port

PARALLEL_REQUESTS = 8
ROUNDS = 5


def _start_rp(idp: LiveIdp, **options: Any) -> tuple[Any, ApacheRelyingParty]:
    port = free_port()
    client = idp.create_client(name="Apache shop", redirect_uris=[redirect_uri_for(port)])
    rp = ApacheRelyingParty(
        issuer=idp.url,
        client_id=client.client.client_id,
        client_secret=client.client_secret,
        port=port,
        **options,
    )
    return client, rp


@pytest.fixture
def apache_rp(live_idp: LiveIdp) -> Iterator[ApacheRelyingParty]:
    """Apache protecting ``/protected``; it refreshes only when it must."""
    _, rp = _start_rp(live_idp)
    with rp:
        yield rp


@pytest.fixture
def refreshing_rp(live_idp: LiveIdp) -> Iterator[tuple[Any, ApacheRelyingParty]]:
    """Apache that refreshes the tokens before every authenticated request:
    it wants them valid for longer than the IdP ever issues them for."""
    lifetime = live_idp.settings.tokens.access_token_ttl_seconds
    client, rp = _start_rp(live_idp, refresh_before_expiry_seconds=lifetime + 60)
    with rp:
        yield client, rp


def follow_across(browser: Browser, response: requests.Response) -> requests.Response:
    """Follow redirects wherever they go (Apache and the IdP), as a browser does."""
    for _ in range(10):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        response = browser.get(urljoin(response.url, response.headers["Location"]))
    raise AssertionError("redirect loop")


def sign_in_through_apache(
    idp: LiveIdp, browser: Browser, rp: ApacheRelyingParty, member: Any
) -> requests.Response:
    """Open the protected page, sign in and allow at the IdP; the page landed on."""
    sent = browser.get(rp.protected_url)
    assert sent.status_code == 302, (sent.status_code, sent.text[:300], rp.error_log())
    leaving = browser.authorize(sent.headers["Location"], username=member.username)
    location = leaving.headers.get("Location", "")
    assert location.startswith(rp.redirect_uri + "?"), (
        f"the IdP answered {leaving.status_code} {location}\n{idp.log()}"
    )
    return follow_across(browser, leaving)


def what_came_back(reply: requests.Response) -> str:
    """The protected page, or in a few words what came instead."""
    if (reply.status_code, reply.text) == (200, PAGE_TEXT):
        return "the page"
    if reply.status_code in (301, 302, 303, 307, 308):
        return f"{reply.status_code} to {reply.headers['Location'].split('?')[0]}"
    title = re.search(r"<title>(.*?)</title>", reply.text, re.S)
    return f"{reply.status_code} {title.group(1).strip() if title else reply.text[:60]!r}"


def idp_events(idp: LiveIdp, member: Any) -> list[str]:
    """What the IdP recorded for the member, oldest first (for failure messages)."""
    from idp import events

    with idp.services():
        return [e.kind for e in reversed(events.list_for_user(member.id))]


def test_apache_sends_the_person_to_the_idp_with_pkce(
    live_idp: LiveIdp, apache_rp: ApacheRelyingParty
) -> None:
    # Act: a person who is not signed in opens the protected page
    sent = Browser(live_idp.url).get(apache_rp.protected_url)
    # Assert: Apache redirects to the discovered authorization endpoint
    assert sent.status_code == 302, apache_rp.error_log()
    location = urlsplit(sent.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == live_idp.url + "/authorize"
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert params["response_type"] == "code"
    assert params["client_id"] == apache_rp.client_id
    assert params["redirect_uri"] == apache_rp.redirect_uri
    assert params["scope"] == "openid profile email"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"]
    assert params["nonce"]


def test_a_person_signs_in_and_apache_passes_their_claims_to_the_page(
    live_idp: LiveIdp, apache_rp: ApacheRelyingParty
) -> None:
    # Arrange
    member = live_idp.create_user(name="Hanako Yamada")
    browser = Browser(live_idp.url)
    # Act: sign in and allow at the IdP, back through Apache's redirect URI
    landed = sign_in_through_apache(live_idp, browser, apache_rp, member)
    # Assert: the page itself, with the claims Apache hands the application
    assert landed.status_code == 200, apache_rp.error_log()
    assert landed.url == apache_rp.protected_url
    assert landed.text == PAGE_TEXT
    assert landed.headers["X-OIDC-Sub"] == member.id
    assert landed.headers["X-OIDC-Preferred-Username"] == member.username
    session = browser.get(apache_rp.info_url).json()
    assert session["remote_user"] == member.username
    assert session["id_token"]["iss"] == live_idp.url
    assert session["id_token"]["sub"] == member.id
    assert session["userinfo"]["sub"] == member.id
    assert session["userinfo"]["name"] == "Hanako Yamada"


def test_apache_refreshes_the_tokens_before_each_request(
    live_idp: LiveIdp, refreshing_rp: tuple[Any, ApacheRelyingParty]
) -> None:
    # Arrange: signed in through Apache, which refreshes before every request
    _, rp = refreshing_rp
    browser = Browser(live_idp.url)
    landed = sign_in_through_apache(live_idp, browser, rp, live_idp.create_user())
    # Act: the next page, one at a time
    again = browser.get(rp.protected_url)
    # Assert: served, with a newly refreshed access token
    assert (again.status_code, again.text) == (200, PAGE_TEXT), rp.error_log()
    assert again.headers["X-OIDC-Access-Token"] != landed.headers["X-OIDC-Access-Token"]


def test_overlapping_refreshes_of_one_service_keep_the_person_signed_in(
    live_idp: LiveIdp, refreshing_rp: tuple[Any, ApacheRelyingParty]
) -> None:
    """CONTRACT "Stay signed in": a confidential client presenting a refresh
    token it rotated less than ``tokens.refresh_reuse_seconds`` ago gets a
    fresh pair, because parallel workers of one service do exactly that."""
    # Arrange: signed in through Apache, which refreshes before every request
    client, rp = refreshing_rp
    member = live_idp.create_user()
    browser = Browser(live_idp.url)
    landed = sign_in_through_apache(live_idp, browser, rp, member)
    assert (landed.status_code, landed.text) == (200, PAGE_TEXT), rp.error_log()

    # Act: several tabs' worth of requests at once, a few times over; each
    # worker thread of Apache refreshes with the refresh token it read
    def one_request(barrier: threading.Barrier) -> str:
        with requests.Session() as tab:
            tab.cookies = browser.http.cookies.copy()
            barrier.wait(timeout=10)
            return what_came_back(tab.get(rp.protected_url, allow_redirects=False, timeout=30))

    rounds: list[list[str]] = []
    with ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS) as pool:
        for _ in range(ROUNDS):
            barrier = threading.Barrier(PARALLEL_REQUESTS)
            rounds.append(list(pool.map(one_request, [barrier] * PARALLEL_REQUESTS)))

    # Assert: every request got the page, and the person is still signed in,
    # at the service and at the IdP
    story = f"IdP events: {idp_events(live_idp, member)}\nApache's error log:\n{rp.error_log()}"
    assert rounds == [["the page"] * PARALLEL_REQUESTS] * ROUNDS, story
    assert what_came_back(browser.get(rp.protected_url)) == "the page", story
    _, challenge = pkce_pair()
    silent = browser.get(
        authorization_url(
            live_idp, client, prompt="none", code_challenge=challenge, code_challenge_method="S256"
        )
    )
    assert "code" in callback_params(silent), f"{silent.headers.get('Location')}\n{story}"
