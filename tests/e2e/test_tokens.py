"""Refresh rotation and reuse detection, introspection, revocation, UserInfo."""

from __future__ import annotations

import requests

from tests.support.flows import introspect, refresh, sign_in, token_request
from tests.support.harness import LiveIdp


def test_refresh_token_rotates_on_every_use(live_idp: LiveIdp) -> None:
    first = sign_in(live_idp)
    reply = refresh(live_idp, first.client, first.tokens["refresh_token"])
    assert reply.status_code == 200
    second = reply.json()
    assert second["refresh_token"] != first.tokens["refresh_token"]
    assert second["access_token"] != first.tokens["access_token"]
    assert "id_token" in second


def test_reused_refresh_token_revokes_the_family_and_ends_the_session(live_clock: LiveIdp) -> None:
    live_idp = live_clock
    # Arrange: signed in, refreshed once, the reuse grace is over
    first = sign_in(live_idp)
    rotated = refresh(live_idp, first.client, first.tokens["refresh_token"]).json()
    live_idp.advance(seconds=live_idp.settings.tokens.refresh_reuse_seconds + 1)
    # Act: the spent token returns
    reply = refresh(live_idp, first.client, first.tokens["refresh_token"])
    # Assert
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_grant"
    assert introspect(live_idp, first.client, rotated["access_token"]) == {"active": False}
    after = refresh(live_idp, first.client, rotated["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    account = first.browser.get("/account")
    assert account.status_code == 303
    assert "/login" in account.headers["Location"]


def test_a_confidential_clients_overlapping_refresh_gets_a_fresh_pair(live_idp: LiveIdp) -> None:
    """Two workers of one web service refresh the same token at once: both
    get tokens, and the person stays signed in (CONTRACT "Stay signed in")."""
    signed = sign_in(live_idp)
    old = signed.tokens["refresh_token"]
    first = refresh(live_idp, signed.client, old)
    second = refresh(live_idp, signed.client, old)
    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first.json()["refresh_token"]
    for reply in (first, second):
        again = refresh(live_idp, signed.client, reply.json()["refresh_token"])
        assert again.status_code == 200
    assert signed.browser.get("/account").status_code == 200


def test_a_public_clients_reused_refresh_token_ends_the_session_at_once(live_idp: LiveIdp) -> None:
    public = live_idp.create_client(public=True)
    signed = sign_in(live_idp, client=public)
    old = signed.tokens["refresh_token"]
    rotated = refresh(live_idp, public, old)
    assert rotated.status_code == 200
    reused = refresh(live_idp, public, old)
    assert reused.json()["error"] == "invalid_grant"
    after = refresh(live_idp, public, rotated.json()["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    assert signed.browser.get("/account").status_code == 303


def test_introspection_answers_active_until_revocation(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    access = signed.tokens["access_token"]
    before = introspect(live_idp, signed.client, access)
    assert before["active"] is True
    assert before["sub"] == signed.member.id
    assert before["client_id"] == signed.client.client.client_id
    assert before["scope"] == "openid profile email"
    revoked = requests.post(
        live_idp.url + "/revoke", data={"token": access}, auth=signed.auth, timeout=10
    )
    assert revoked.status_code == 200
    assert introspect(live_idp, signed.client, access) == {"active": False}
    userinfo = requests.get(
        live_idp.url + "/userinfo", headers={"Authorization": f"Bearer {access}"}, timeout=10
    )
    assert userinfo.status_code == 401
    assert userinfo.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoking_a_refresh_token_revokes_its_access_tokens(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    requests.post(
        live_idp.url + "/revoke",
        data={"token": signed.tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=signed.auth,
        timeout=10,
    )
    assert introspect(live_idp, signed.client, signed.tokens["access_token"]) == {"active": False}
    reply = refresh(live_idp, signed.client, signed.tokens["refresh_token"])
    assert reply.json()["error"] == "invalid_grant"


def test_a_client_cannot_introspect_another_clients_token(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    other = live_idp.create_client(name="Travel")
    assert introspect(live_idp, other, signed.tokens["access_token"]) == {"active": False}


def test_an_admin_client_may_introspect_any_token(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    admin = live_idp.create_client(
        name="Ops", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    assert introspect(live_idp, admin, signed.tokens["access_token"])["active"] is True


def test_introspecting_a_forged_token_is_inactive(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    header, claims, signature = signed.tokens["access_token"].split(".")
    forged = f"{header}.{claims}.{signature[:-4]}AAAA"
    for token in (forged, "not-a-token", "a.b.c", "x" * 5000):
        assert introspect(live_idp, signed.client, token) == {"active": False}


def test_a_reused_authorization_code_fails_and_revokes_the_first_tokens(live_idp: LiveIdp) -> None:
    from tests.support.harness import Browser, authorization_url, callback_params, pkce_pair

    client = live_idp.create_client()
    member = live_idp.create_user()
    verifier, challenge = pkce_pair()
    url = authorization_url(
        live_idp, client, code_challenge=challenge, code_challenge_method="S256"
    )
    code = callback_params(Browser(live_idp.url).authorize(url, username=member.username))["code"]
    exchange = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.client.redirect_uris[0],
        "code_verifier": verifier,
    }
    first = token_request(live_idp, client, **exchange).json()
    again = token_request(live_idp, client, **exchange)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert introspect(live_idp, client, first["access_token"]) == {"active": False}
    refreshed = refresh(live_idp, client, first["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"


def test_userinfo_answers_get_and_post_with_claims_by_scope(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp, scope="openid email")
    headers = {"Authorization": f"Bearer {signed.tokens['access_token']}"}
    got = requests.get(live_idp.url + "/userinfo", headers=headers, timeout=10)
    posted = requests.post(live_idp.url + "/userinfo", headers=headers, timeout=10)
    expected = {"sub": signed.member.id, "email": signed.member.email, "email_verified": True}
    assert got.json() == expected
    assert posted.json() == expected


def test_userinfo_without_a_token_is_401_with_www_authenticate(live_idp: LiveIdp) -> None:
    reply = requests.get(live_idp.url + "/userinfo", headers={"Accept": "text/html"}, timeout=10)
    assert reply.status_code == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.json()["error"] == "invalid_token"


# --- machine tokens (client_credentials) -------------------------------------------------


def _machine_token(live_idp: LiveIdp) -> tuple[object, str]:
    machine = live_idp.create_client(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"]
    )
    reply = token_request(live_idp, machine, grant_type="client_credentials")
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return machine, token


def _revoke(live_idp: LiveIdp, client: object, token: str) -> int:
    c = client.client  # type: ignore[attr-defined]
    reply = requests.post(
        live_idp.url + "/revoke",
        data={"token": token},
        auth=(c.client_id, client.client_secret),  # type: ignore[attr-defined]
        timeout=10,
    )
    return reply.status_code


def test_a_machine_token_is_live_until_revoked_though_issuing_it_wrote_nothing(
    live_idp: LiveIdp,
) -> None:
    machine, token = _machine_token(live_idp)
    assert introspect(live_idp, machine, token)["active"] is True

    assert _revoke(live_idp, machine, token) == 200

    assert introspect(live_idp, machine, token)["active"] is False
    assert _revoke(live_idp, machine, token) == 200  # again: nothing changes, nothing breaks
    assert introspect(live_idp, machine, token)["active"] is False


def test_two_revocations_of_one_machine_token_at_once_both_succeed(live_idp: LiveIdp) -> None:
    from tests.support.race import race

    machine, token = _machine_token(live_idp)

    outcomes = race(*(lambda: _revoke(live_idp, machine, token) for _ in range(2)))

    assert outcomes == [200, 200]
    assert introspect(live_idp, machine, token)["active"] is False


def test_a_machine_token_cannot_be_revoked_by_another_client(live_idp: LiveIdp) -> None:
    machine, token = _machine_token(live_idp)
    other, _ = _machine_token(live_idp)

    assert _revoke(live_idp, other, token) == 200  # RFC 7009 §2.2: the same answer

    assert introspect(live_idp, machine, token)["active"] is True
