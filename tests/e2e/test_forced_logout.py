"""Forced logout reaches every relying service by back-channel logout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.flows import SignedIn, introspect, refresh, sign_in, token_request
from tests.support.harness import (
    LiveIdp,
    authorization_url,
    callback_params,
    csrf_token,
    pkce_pair,
)
from tests.support.receiver import LogoutReceiver, eventually

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    r = LogoutReceiver().up()
    yield r
    r.down()


@pytest.fixture
def admin_token(live_idp: LiveIdp) -> str:
    admin = live_idp.create_client(
        name="Ops", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    reply = token_request(live_idp, admin, grant_type="client_credentials", scope="admin")
    token: str = reply.json()["access_token"]
    return token


def _shop(live_idp: LiveIdp, receiver: LogoutReceiver, **kw: Any) -> Any:
    return live_idp.create_client(backchannel_logout_uri=receiver.uri, **kw)


def _claims(signed: SignedIn) -> dict[str, Any]:
    import base64
    import json

    part = signed.tokens["id_token"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _assert_logged_out_everywhere(live_idp: LiveIdp, signed: SignedIn) -> None:
    refreshed = refresh(live_idp, signed.client, signed.tokens["refresh_token"])
    assert refreshed.json()["error"] == "invalid_grant"
    assert introspect(live_idp, signed.client, signed.tokens["access_token"]) == {"active": False}
    url = authorization_url(
        live_idp,
        signed.client,
        prompt="none",
        code_challenge=pkce_pair()[1],
        code_challenge_method="S256",
    )
    assert callback_params(signed.browser.get(url))["error"] == "login_required"


def _assert_logout_token(claims: dict[str, Any], live_idp: LiveIdp, signed: SignedIn) -> None:
    assert claims["_header"]["typ"] == "logout+jwt"
    assert claims["_header"]["kid"]
    assert claims["iss"] == live_idp.url
    assert claims["aud"] == signed.client.client.client_id
    assert claims["sub"] == signed.member.id
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims
    assert claims["exp"] - claims["iat"] == 120
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"]


def test_admin_api_forced_logout_sends_a_verifiable_logout_token(
    live_idp: LiveIdp, receiver: LogoutReceiver, admin_token: str
) -> None:
    signed = sign_in(live_idp, client=_shop(live_idp, receiver))
    sid = _claims(signed)["sid"]
    reply = requests.delete(
        f"{live_idp.url}/admin/api/sessions/{sid}",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.json() == {"session_id": sid, "ended": True}
    claims = eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))[0]
    _assert_logout_token(claims, live_idp, signed)
    _assert_logged_out_everywhere(live_idp, signed)


def test_the_persons_own_sign_out_sends_a_logout_token(
    live_idp: LiveIdp, receiver: LogoutReceiver
) -> None:
    signed = sign_in(live_idp, client=_shop(live_idp, receiver))
    page = signed.browser.get("/account")
    signed.browser.post("/signout", {"csrf_token": csrf_token(page.text)})
    sid = _claims(signed)["sid"]
    _assert_logout_token(
        eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))[0], live_idp, signed
    )
    _assert_logged_out_everywhere(live_idp, signed)


def test_rp_initiated_logout_sends_a_logout_token(
    live_idp: LiveIdp, receiver: LogoutReceiver
) -> None:
    signed = sign_in(live_idp, client=_shop(live_idp, receiver))
    signed.browser.get("/logout?id_token_hint=" + signed.tokens["id_token"])
    sid = _claims(signed)["sid"]
    assert eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))
    _assert_logged_out_everywhere(live_idp, signed)


def test_refresh_token_reuse_ends_the_session_and_sends_a_logout_token(
    live_clock: LiveIdp, receiver: LogoutReceiver
) -> None:
    live_idp = live_clock
    signed = sign_in(live_idp, client=_shop(live_idp, receiver))
    old = signed.tokens["refresh_token"]
    rotated = refresh(live_idp, signed.client, old).json()
    live_idp.advance(seconds=live_idp.settings.tokens.refresh_reuse_seconds + 1)
    refresh(live_idp, signed.client, old)
    sid = _claims(signed)["sid"]
    assert eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))
    signed.tokens = {**signed.tokens, **rotated}
    _assert_logged_out_everywhere(live_idp, signed)


def test_a_service_that_is_down_gets_the_logout_once_it_is_back(
    live_clock: LiveIdp, admin_token: str
) -> None:
    live_idp = live_clock
    receiver = LogoutReceiver()  # not listening yet: connection refused
    signed = sign_in(live_idp, client=_shop(live_idp, receiver))
    sid = _claims(signed)["sid"]
    requests.delete(
        f"{live_idp.url}/admin/api/sessions/{sid}",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    # At least one attempt failed against the closed port...
    eventually(lambda: [r for r in live_idp.outbox(sid) if r[0] >= 1 and r[2]])
    receiver.up()
    try:
        live_idp.advance(seconds=30)  # ...and the longest back-off is over
        claims = eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))
        assert claims[0]["sid"] == sid
        # Delivered (2xx): the message is finished and can never be claimed again.
        ((attempts, delivered, _),) = eventually(lambda: [r for r in live_idp.outbox(sid) if r[1]])
        assert delivered
        assert attempts >= 2
        assert len(receiver.claims_for(live_idp.url, sid=sid)) == 1
    finally:
        receiver.down()


def test_every_client_holding_tokens_from_the_session_is_told(
    live_idp: LiveIdp, receiver: LogoutReceiver, admin_token: str
) -> None:
    member = live_idp.create_user()
    shop = sign_in(live_idp, client=_shop(live_idp, receiver, name="Shop"), member=member)
    travel = sign_in(
        live_idp,
        client=_shop(live_idp, receiver, name="Travel"),
        member=member,
        browser=shop.browser,
    )
    sid = _claims(shop)["sid"]
    assert _claims(travel)["sid"] == sid  # one sign-in, two services
    requests.post(
        f"{live_idp.url}/admin/api/users/{member.id}/logout",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    audiences = eventually(
        lambda: (
            {c["aud"] for c in receiver.claims_for(live_idp.url, sid=sid)}
            == {
                shop.client.client.client_id,
                travel.client.client.client_id,
            }
        )
    )
    assert audiences


def test_admin_api_lists_a_users_sessions(live_idp: LiveIdp, admin_token: str) -> None:
    signed = sign_in(live_idp, remember=True)
    for ref in (signed.member.id, signed.member.username):
        reply = requests.get(
            f"{live_idp.url}/admin/api/users/{ref}/sessions",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        assert reply.status_code == 200
        (session,) = reply.json()["sessions"]
        assert session["id"] == _claims(signed)["sid"]
        assert session["ip"] == "127.0.0.1"
        assert session["stay_signed_in"] is True


def test_admin_api_without_a_token_is_401_with_www_authenticate(live_idp: LiveIdp) -> None:
    for method, path in (
        ("GET", "/admin/api/users/x/sessions"),
        ("DELETE", "/admin/api/sessions/x"),
        ("POST", "/admin/api/users/x/logout"),
    ):
        reply = requests.request(
            method, live_idp.url + path, headers={"Accept": "text/html"}, timeout=10
        )
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert reply.headers["Content-Type"].startswith("application/json")
    bad = requests.get(
        live_idp.url + "/admin/api/users/x/sessions",
        headers={"Authorization": "Bearer nope"},
        timeout=10,
    )
    assert bad.status_code == 401


def test_admin_api_with_a_non_admin_token_is_403(live_idp: LiveIdp) -> None:
    batch = live_idp.create_client(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"]
    )
    machine_token = token_request(live_idp, batch, grant_type="client_credentials").json()[
        "access_token"
    ]
    user_token = sign_in(live_idp).tokens["access_token"]
    for token in (machine_token, user_token):
        reply = requests.get(
            live_idp.url + "/admin/api/users/x/sessions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert reply.status_code == 403
        assert reply.json()["error"] == "insufficient_scope"


def test_admin_api_unknown_user_or_session_is_404(live_idp: LiveIdp, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    for method, path in (
        ("GET", "/admin/api/users/nobody/sessions"),
        ("POST", "/admin/api/users/nobody/logout"),
        ("DELETE", "/admin/api/sessions/no-such-session"),
        ("GET", "/admin/api/users/%25/sessions"),
    ):
        reply = requests.request(method, live_idp.url + path, headers=headers, timeout=10)
        assert reply.status_code == 404
        assert reply.json() == {"error": "not_found"}


def test_offline_tokens_survive_sign_out_but_not_a_forced_logout(
    live_idp: LiveIdp, admin_token: str
) -> None:
    signed = sign_in(live_idp, remember=True, scope="openid offline_access")
    assert signed.tokens["scope"] == "openid offline_access"
    page = signed.browser.get("/account")
    signed.browser.post("/signout", {"csrf_token": csrf_token(page.text)})
    refreshed = refresh(live_idp, signed.client, signed.tokens["refresh_token"])
    assert refreshed.status_code == 200
    requests.post(
        f"{live_idp.url}/admin/api/users/{signed.member.id}/logout",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    after = refresh(live_idp, signed.client, refreshed.json()["refresh_token"])
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


def test_offline_access_needs_stay_signed_in(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp, remember=False, scope="openid offline_access")
    assert signed.tokens["scope"] == "openid"


def test_a_client_that_refuses_stay_signed_in_never_gets_offline_access(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(stay_signed_in=False)
    signed = sign_in(live_idp, client=client, remember=True, scope="openid offline_access")
    assert signed.tokens["scope"] == "openid"


def test_a_bank_is_not_served_by_an_old_stay_signed_in_session(live_clock: LiveIdp) -> None:
    live_idp = live_clock
    bank = live_idp.create_client(name="Bank", stay_signed_in=False, first_party=True)
    shop = live_idp.create_client(name="Shop", first_party=True)
    signed = sign_in(live_idp, client=shop, remember=True)
    live_idp.advance(minutes=live_idp.settings.session.idle_minutes + 1)
    pkce = {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}
    # The shop is still served by the long-lived sign-in...
    assert "code" in callback_params(signed.browser.get(authorization_url(live_idp, shop, **pkce)))
    # ...the bank asks again, and with prompt=none says so.
    page = signed.browser.follow(signed.browser.get(authorization_url(live_idp, bank, **pkce)))
    assert 'id="login-form"' in page.text
    none = signed.browser.get(authorization_url(live_idp, bank, prompt="none", **pkce))
    assert callback_params(none)["error"] == "login_required"


# --- a forced logout reaches services whose tokens are long gone ------------------------


def _admin_token_now(live_idp: LiveIdp) -> str:
    """An admin token issued at the server's present time (the clock moves)."""
    admin = live_idp.create_client(
        name="Ops later", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    reply = token_request(live_idp, admin, grant_type="client_credentials", scope="admin")
    token: str = reply.json()["access_token"]
    return token


def _purge(live_idp: LiveIdp) -> None:
    from idp import worker

    with live_idp.services():
        worker.purge_expired()


def _token_rows(live_idp: LiveIdp, sid: str) -> int:
    from sqlalchemy import func, select

    from idp.db import db
    from idp.models import AccessToken, RefreshToken

    with live_idp.services():
        return sum(
            db.session.scalar(select(func.count()).select_from(m).where(m.session_id == sid)) or 0
            for m in (AccessToken, RefreshToken)
        )


def test_a_forced_logout_after_the_access_token_expired_and_was_purged_reaches_the_service(
    live_clock: LiveIdp, receiver: LogoutReceiver
) -> None:
    live_idp = live_clock
    shop = _shop(live_idp, receiver, grant_types=["authorization_code"])  # no refresh token
    signed = sign_in(live_idp, client=shop)
    sid = _claims(signed)["sid"]
    live_idp.advance(minutes=20)  # the session lives on (idle 30 min); the token expired
    _purge(live_idp)
    assert _token_rows(live_idp, sid) == 0

    reply = requests.delete(
        f"{live_idp.url}/admin/api/sessions/{sid}",
        headers={"Authorization": f"Bearer {_admin_token_now(live_idp)}"},
        timeout=10,
    )

    assert reply.json() == {"session_id": sid, "ended": True}
    (claims,) = eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))
    assert claims["aud"] == shop.client.client_id
    assert claims["sub"] == signed.member.id


def test_a_forced_logout_a_month_later_reaches_the_service_whose_refresh_tokens_were_purged(
    live_clock: LiveIdp, receiver: LogoutReceiver
) -> None:
    live_idp = live_clock
    shop = _shop(live_idp, receiver)
    signed = sign_in(live_idp, client=shop, remember=True)
    sid = _claims(signed)["sid"]
    live_idp.advance(days=20)
    assert signed.browser.get("/account").status_code == 200  # back at day 20: it slides
    live_idp.advance(days=11)  # the 30-day refresh token has expired
    _purge(live_idp)
    assert _token_rows(live_idp, sid) == 0
    assert signed.browser.get("/account").status_code == 200  # still signed in

    reply = requests.post(
        f"{live_idp.url}/admin/api/users/{signed.member.id}/logout",
        headers={"Authorization": f"Bearer {_admin_token_now(live_idp)}"},
        timeout=10,
    )

    assert reply.json()["ended"] == [sid]
    assert eventually(lambda: receiver.claims_for(live_idp.url, sid=sid))


# --- offline tokens end with every forced logout ---------------------------------------


def _offline_sign_in(live_idp: LiveIdp) -> SignedIn:
    signed = sign_in(live_idp, remember=True, scope="openid offline_access")
    assert signed.tokens["scope"] == "openid offline_access"
    return signed


def _sign_out(signed: SignedIn) -> None:
    page = signed.browser.get("/account")
    signed.browser.post("/signout", {"csrf_token": csrf_token(page.text)})


def test_offline_tokens_survive_the_persons_own_sign_out(live_idp: LiveIdp) -> None:
    signed = _offline_sign_in(live_idp)
    _sign_out(signed)
    reply = refresh(live_idp, signed.client, signed.tokens["refresh_token"])
    assert reply.status_code == 200


def test_sign_out_other_devices_ends_offline_tokens_of_a_device_signed_out_earlier(
    live_idp: LiveIdp,
) -> None:
    earlier = _offline_sign_in(live_idp)
    _sign_out(earlier)
    here = sign_in(live_idp, member=earlier.member)
    page = here.browser.get("/account/sessions")

    here.browser.post("/account/sessions/revoke-others", {"csrf_token": csrf_token(page.text)})

    reply = refresh(live_idp, earlier.client, earlier.tokens["refresh_token"])
    assert reply.json()["error"] == "invalid_grant"
    assert here.browser.get("/account").status_code == 200


def test_the_admin_ending_a_session_signed_out_earlier_ends_its_offline_tokens(
    live_idp: LiveIdp, admin_token: str
) -> None:
    signed = _offline_sign_in(live_idp)
    _sign_out(signed)

    requests.delete(
        f"{live_idp.url}/admin/api/sessions/{_claims(signed)['sid']}",
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )

    reply = refresh(live_idp, signed.client, signed.tokens["refresh_token"])
    assert reply.json()["error"] == "invalid_grant"


def test_a_bank_cannot_refresh_from_a_stay_signed_in_session_past_the_idle_time(
    live_clock: LiveIdp,
) -> None:
    live_idp = live_clock
    bank = live_idp.create_client(name="Bank", stay_signed_in=False, first_party=True)
    signed = sign_in(live_idp, client=bank, remember=True)
    live_idp.advance(minutes=live_idp.settings.session.idle_minutes + 1)

    reply = refresh(live_idp, bank, signed.tokens["refresh_token"])

    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_grant"
