"""Single use under concurrency, against the live server (CONTRACT "Robustness").

Each race is two real threads released together, repeated: a code redeemed
twice at once, a refresh token used twice at once, a refresh or a code
exchange racing a forced logout, an interaction resumed twice at once.
Whatever the interleaving, exactly one wins, the other counts as reuse and
takes back what the winner got, and nothing outlives a forced logout."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from tests.support.flows import (
    authorization_code,
    introspect,
    redeem,
    refresh,
    sign_in,
    token_request,
)
from tests.support.harness import (
    Backend,
    Browser,
    LiveIdp,
    authorization_url,
    callback_params,
    pkce_pair,
    start_live_idp,
)
from tests.support.race import race

REPEAT = 5


@pytest.fixture(scope="module")
def admin_token(live_idp: LiveIdp) -> str:
    admin = live_idp.create_client(
        name="Ops", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    reply = token_request(live_idp, admin, grant_type="client_credentials", scope="admin")
    token: str = reply.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def strict_idp(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIdp]:
    """A provider with the refresh reuse grace turned off."""
    root: Path = tmp_path_factory.mktemp("strict")
    with start_live_idp(
        root, backend, name="strict", extra_config="[tokens]\nrefresh_reuse_seconds = 0\n"
    ) as idp:
        yield idp


def _sid(tokens: dict[str, Any]) -> str:
    part = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return str(claims["sid"])


def _current_sid(browser: Browser) -> str:
    """The session of this browser, as its sessions page shows it."""
    page = browser.get("/account/sessions").text
    match = re.search(r'data-session-id="([^"]+)" aria-current="true"', page)
    assert match, page[:500]
    return match.group(1)


def _assert_dead(idp: LiveIdp, client: Any, tokens: dict[str, Any]) -> None:
    """Nothing of ``tokens`` works any more."""
    if client.client_secret:
        assert introspect(idp, client, tokens["access_token"]) == {"active": False}
    refreshed = refresh(idp, client, tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_of_two_simultaneous_redemptions_of_a_code_one_wins_and_loses_it_again(
    live_idp: LiveIdp,
) -> None:
    shop = live_idp.create_client(name="Race shop", first_party=True)
    member = live_idp.create_user()
    for _ in range(REPEAT):
        code, verifier, _ = authorization_code(live_idp, client=shop, member=member)

        replies = race(
            lambda c=code, v=verifier: redeem(live_idp, shop, c, v),
            lambda c=code, v=verifier: redeem(live_idp, shop, c, v),
        )

        assert sorted(r.status_code for r in replies) == [200, 400]
        winner = next(r for r in replies if r.status_code == 200).json()
        loser = next(r for r in replies if r.status_code == 400).json()
        assert loser["error"] == "invalid_grant"
        _assert_dead(live_idp, shop, winner)


@pytest.mark.parametrize("kind", ["public", "confidential-without-grace"])
def test_of_two_simultaneous_uses_of_a_refresh_token_one_wins_and_the_session_ends(
    live_idp: LiveIdp, strict_idp: LiveIdp, kind: str
) -> None:
    idp = live_idp if kind == "public" else strict_idp
    client = idp.create_client(name="Race app", public=kind == "public", first_party=True)
    for _ in range(REPEAT):
        signed = sign_in(idp, client=client)
        old = signed.tokens["refresh_token"]

        replies = race(
            lambda o=old: refresh(idp, client, o),
            lambda o=old: refresh(idp, client, o),
        )

        assert sorted(r.status_code for r in replies) == [200, 400]
        winner = next(r for r in replies if r.status_code == 200).json()
        _assert_dead(idp, client, winner)
        assert signed.browser.get("/account").status_code == 303  # signed out


def test_a_confidential_clients_simultaneous_refreshes_both_succeed(live_idp: LiveIdp) -> None:
    shop = live_idp.create_client(name="Race web shop", first_party=True)
    for _ in range(REPEAT):
        signed = sign_in(live_idp, client=shop)
        old = signed.tokens["refresh_token"]

        replies = race(
            lambda o=old: refresh(live_idp, shop, o), lambda o=old: refresh(live_idp, shop, o)
        )

        assert [r.status_code for r in replies] == [200, 200]
        for reply in replies:
            assert refresh(live_idp, shop, reply.json()["refresh_token"]).status_code == 200
        assert signed.browser.get("/account").status_code == 200


def _forced_logout(idp: LiveIdp, admin_token: str, sid: str) -> requests.Response:
    return requests.delete(
        f"{idp.url}/admin/api/sessions/{sid}",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )


def test_a_refresh_racing_a_forced_logout_issues_nothing_that_outlives_it(
    live_idp: LiveIdp, admin_token: str
) -> None:
    shop = live_idp.create_client(name="Race bank", first_party=True)
    for _ in range(REPEAT * 2):
        signed = sign_in(live_idp, client=shop)
        sid = _sid(signed.tokens)

        refreshed, ended = race(
            lambda t=signed.tokens["refresh_token"]: refresh(live_idp, shop, t),
            lambda s=sid: _forced_logout(live_idp, admin_token, s),
        )

        assert ended.status_code == 200
        if refreshed.status_code == 200:
            _assert_dead(live_idp, shop, refreshed.json())
        else:
            assert refreshed.json()["error"] == "invalid_grant"
        _assert_dead(live_idp, shop, signed.tokens)


def test_a_code_exchange_racing_a_forced_logout_issues_nothing_that_outlives_it(
    live_idp: LiveIdp, admin_token: str
) -> None:
    shop = live_idp.create_client(name="Race travel", first_party=True)
    member = live_idp.create_user()
    for _ in range(REPEAT * 2):
        browser = Browser(live_idp.url)
        code, verifier, _ = authorization_code(
            live_idp, client=shop, member=member, browser=browser
        )
        sid = _current_sid(browser)

        exchanged, ended = race(
            lambda c=code, v=verifier: redeem(live_idp, shop, c, v),
            lambda s=sid: _forced_logout(live_idp, admin_token, s),
        )

        assert ended.status_code == 200
        if exchanged.status_code == 200:
            _assert_dead(live_idp, shop, exchanged.json())
        else:
            assert exchanged.json()["error"] == "invalid_grant"


def test_of_two_simultaneous_resumes_of_an_interaction_one_gets_a_code(
    live_idp: LiveIdp,
) -> None:
    shop = live_idp.create_client(name="Race resume", first_party=True)
    member = live_idp.create_user()
    for _ in range(REPEAT):
        browser = Browser(live_idp.url)
        url = authorization_url(
            live_idp, shop, code_challenge=pkce_pair()[1], code_challenge_method="S256"
        )
        login_page = browser.follow(browser.get(url))
        signed_in = browser.submit_login(login_page, member.username, "correct horse 1")
        resume = urljoin(live_idp.url, signed_in.headers["Location"])
        assert "/authorize/resume/" in resume

        replies = race(
            lambda u=resume, b=browser: b.get(u),
            lambda u=resume, b=browser: b.get(u),
        )

        codes = [r for r in replies if r.status_code == 303 and "code=" in r.headers["Location"]]
        assert len(codes) == 1, [(r.status_code, r.headers.get("Location")) for r in replies]
        assert "code" in callback_params(codes[0])
        refused = next(r for r in replies if r is not codes[0])
        assert refused.status_code == 400
        assert 'role="alert"' in refused.text
