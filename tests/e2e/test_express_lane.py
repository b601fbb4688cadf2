"""UserInfo, introspection and machine tokens answered before Flask
(``idp.protocol.express``):
the same answer, headers and counts as Flask's, and everything the lane
does not answer still answered by Flask, as before."""

from __future__ import annotations

import base64
from typing import Any

import requests

from idp import accounts
from tests.support.flows import introspect, sign_in
from tests.support.harness import LiveIdp

_PER_CONNECTION = {"date", "server", "connection", "keep-alive"}


def _headers(reply: requests.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in reply.headers.items() if k.lower() not in _PER_CONNECTION}


def _count(idp: LiveIdp, endpoint: str, method: str) -> float:
    text = requests.get(idp.url + "/metrics", timeout=10).text
    prefix = f'idp_http_requests_total{{endpoint="{endpoint}",method="{method}",status="200"}}'
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_userinfo_by_get_answers_as_flask_does_by_post(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    bearer = {"Authorization": f"Bearer {signed.tokens['access_token']}"}
    counted = _count(live_idp, "/userinfo", "GET")

    express = requests.get(live_idp.url + "/userinfo", headers=bearer, timeout=10)
    flask = requests.post(live_idp.url + "/userinfo", headers=bearer, timeout=10)

    assert express.status_code == flask.status_code == 200
    assert express.json() == flask.json()
    assert _headers(express) == _headers(flask)
    assert _count(live_idp, "/userinfo", "GET") == counted + 1


def test_introspection_with_basic_answers_as_flask_does_with_the_secret_in_the_form(
    live_idp: LiveIdp,
) -> None:
    signed = sign_in(live_idp)
    client_id, secret = signed.auth
    token = signed.tokens["access_token"]
    counted = _count(live_idp, "/introspect", "POST")

    express = requests.post(
        live_idp.url + "/introspect", data={"token": token}, auth=signed.auth, timeout=10
    )
    flask = requests.post(
        live_idp.url + "/introspect",
        data={"token": token, "client_id": client_id, "client_secret": secret},
        timeout=10,
    )

    assert express.status_code == flask.status_code == 200
    assert express.json() == flask.json()
    assert express.json()["active"] is True
    assert _headers(express) == _headers(flask)
    assert _count(live_idp, "/introspect", "POST") == counted + 2  # both answers


def test_a_refresh_token_is_introspected_by_the_lane_too(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    reply = requests.post(
        live_idp.url + "/introspect",
        data={"token": signed.tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=signed.auth,
        timeout=10,
    )

    assert reply.status_code == 200
    assert reply.json()["token_type"] == "refresh_token"


def _introspect(idp: LiveIdp, body: Any, auth: Any = None, **headers: str) -> requests.Response:
    return requests.post(idp.url + "/introspect", data=body, auth=auth, headers=headers, timeout=10)


def test_what_the_lane_passes_on_flask_refuses_as_before(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    client_id, secret = signed.auth
    token = signed.tokens["access_token"]

    wrong_secret = _introspect(live_idp, {"token": token}, auth=(client_id, secret + "x"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert wrong_secret.headers["WWW-Authenticate"].startswith("Basic")

    repeated = _introspect(live_idp, [("token", token), ("token", token)], auth=signed.auth)
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"

    missing = _introspect(live_idp, {"token_type_hint": "access_token"}, auth=signed.auth)
    assert missing.status_code == 400

    mangled = _introspect(
        live_idp,
        {"token": token},
        Authorization="Basic " + base64.b64encode(b"no colon here").decode(),
    )
    assert mangled.status_code == 401

    with_query = requests.get(
        live_idp.url + "/userinfo?x=1&x=2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert with_query.status_code == 400


def test_a_disabled_members_token_is_refused_with_a_bearer_challenge(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    bearer = {"Authorization": f"Bearer {signed.tokens['access_token']}"}
    assert requests.get(live_idp.url + "/userinfo", headers=bearer, timeout=10).ok
    with live_idp.services():
        accounts.set_disabled(signed.member.id, True)

    reply = requests.get(live_idp.url + "/userinfo", headers=bearer, timeout=10)

    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith('Bearer realm="idp", error="invalid_token"')


def test_a_token_without_openid_gets_insufficient_scope(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp, scope="profile")
    reply = requests.get(
        live_idp.url + "/userinfo",
        headers={"Authorization": f"Bearer {signed.tokens['access_token']}"},
        timeout=10,
    )

    assert reply.status_code == 403
    assert 'error="insufficient_scope"' in reply.headers["WWW-Authenticate"]


def test_a_machine_token_by_basic_answers_as_flask_does_with_the_secret_in_the_form(
    live_idp: LiveIdp,
) -> None:
    machine = live_idp.create_client(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    client_id, secret = machine.client.client_id, machine.client_secret
    counted = _count(live_idp, "/token", "POST")

    express = requests.post(
        live_idp.url + "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(client_id, secret),
        timeout=10,
    )
    flask = requests.post(
        live_idp.url + "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "admin",
            "client_id": client_id,
            "client_secret": secret,
        },
        timeout=10,
    )

    assert express.status_code == flask.status_code == 200
    mine, theirs = express.json(), flask.json()
    assert mine.pop("access_token") != theirs.pop("access_token")
    assert (
        mine
        == theirs
        == {"token_type": "Bearer", "expires_in": mine["expires_in"], "scope": "admin"}
    )
    assert _headers(express).keys() == _headers(flask).keys()
    assert {k: v for k, v in _headers(express).items() if k != "content-length"} == {
        k: v for k, v in _headers(flask).items() if k != "content-length"
    }
    assert introspect(live_idp, machine, express.json()["access_token"])["active"] is True
    assert _count(live_idp, "/token", "POST") == counted + 2


def test_a_machine_token_the_lane_passes_on_is_refused_by_flask(live_idp: LiveIdp) -> None:
    machine = live_idp.create_client(
        name="Batch", redirect_uris=[], grant_types=["client_credentials"]
    )
    auth = (machine.client.client_id, machine.client_secret)
    shop = live_idp.create_client()

    def ask(body: Any, credentials: Any = auth) -> requests.Response:
        return requests.post(live_idp.url + "/token", data=body, auth=credentials, timeout=10)

    person_scope = ask({"grant_type": "client_credentials", "scope": "openid"})
    assert person_scope.status_code == 400
    assert person_scope.json()["error"] == "invalid_scope"
    not_its_grant = ask(
        {"grant_type": "client_credentials"}, (shop.client.client_id, shop.client_secret)
    )
    assert not_its_grant.status_code == 400
    assert not_its_grant.json()["error"] == "unauthorized_client"
    wrong_secret = ask({"grant_type": "client_credentials"}, (auth[0], auth[1] + "x"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    repeated = ask([("grant_type", "client_credentials"), ("scope", ""), ("scope", "")])
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"


def test_a_refresh_by_basic_answers_as_flask_does_with_the_secret_in_the_form(
    live_idp: LiveIdp,
) -> None:
    signed = sign_in(live_idp)
    client_id, secret = signed.auth
    counted = _count(live_idp, "/token", "POST")

    express = requests.post(
        live_idp.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": signed.tokens["refresh_token"]},
        auth=signed.auth,
        timeout=10,
    )
    assert express.status_code == 200
    flask = requests.post(
        live_idp.url + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": express.json()["refresh_token"],
            "client_id": client_id,
            "client_secret": secret,
        },
        timeout=10,
    )

    assert flask.status_code == 200
    assert express.json().keys() == flask.json().keys() >= {"id_token", "refresh_token"}
    assert {k: v for k, v in _headers(express).items() if k != "content-length"} == {
        k: v for k, v in _headers(flask).items() if k != "content-length"
    }
    assert _count(live_idp, "/token", "POST") == counted + 2


def test_a_refresh_the_lane_passes_on_is_refused_by_flask(live_idp: LiveIdp) -> None:
    signed = sign_in(live_idp)
    token = signed.tokens["refresh_token"]

    def ask(body: Any) -> requests.Response:
        return requests.post(live_idp.url + "/token", data=body, auth=signed.auth, timeout=10)

    wider = ask({"grant_type": "refresh_token", "refresh_token": token, "scope": "openid admin"})
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    unknown = ask({"grant_type": "refresh_token", "refresh_token": "no-such-token"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    narrowed = ask({"grant_type": "refresh_token", "refresh_token": token, "scope": "openid"})
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "openid"
    # Within tokens.refresh_reuse_seconds a confidential client's overlap is
    # answered (the lane too); a later reuse is punished (test_tokens.py).
    overlap = ask({"grant_type": "refresh_token", "refresh_token": token})
    assert overlap.status_code == 200
