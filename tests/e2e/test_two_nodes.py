"""Two nodes behind one load balancer: one PostgreSQL, one Redis, shared keys.

A person signs in on node A; an admin's forced logout on node B ends it on A
at once; a token issued by A is introspected (and revoked) through B;
failed passwords count across both; a key rotated through the shared key
directory is published by both; and with a worker on each node, a logout is
delivered once.  The state lives in the database and Redis, never in a
node, so this is what scaling out rests on."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.flows import (
    WRONG_PASSWORD,
    introspect,
    password_attempt,
    sign_in,
    token_request,
)
from tests.support.harness import (
    IDP,
    Backend,
    Browser,
    LiveIdp,
    eventually,
    start_live_idp,
    start_second_node,
)
from tests.support.receiver import LogoutReceiver

PASSWORD = "correct horse 1"
WRONG = WRONG_PASSWORD


@pytest.fixture(scope="module")
def nodes(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveIdp, LiveIdp]]:
    if backend.kind != "postgresql":
        pytest.skip("nodes share PostgreSQL and Redis; SQLite is one machine's database")
    root: Path = tmp_path_factory.mktemp("two-nodes")
    with (
        start_live_idp(
            root,
            backend,
            name="two_nodes",
            extra_config="[risk]\nlock_after_failures = 4\n",
        ) as a,
        start_second_node(a) as b,
    ):
        yield a, b


def _on(node: LiveIdp, browser: Browser) -> Browser:
    """The same browser (its cookies), talking to another node."""
    moved = Browser(node.url)
    moved.http = browser.http
    return moved


def _admin_token(node: LiveIdp) -> str:
    admin = node.create_client(
        name="Ops", redirect_uris=[], grant_types=["client_credentials"], admin=True
    )
    reply = token_request(node, admin, grant_type="client_credentials", scope="admin")
    token: str = reply.json()["access_token"]
    return token


def test_an_admin_on_node_b_ends_a_sign_in_made_on_node_a_at_once(
    nodes: tuple[LiveIdp, LiveIdp],
) -> None:
    a, b = nodes
    member = a.create_user()
    browser = Browser(a.url)
    browser.sign_in(browser.get("/login"), member.username, PASSWORD)
    assert browser.get("/account").status_code == 200
    assert _on(b, browser).get("/account").status_code == 200  # one sign-in, any node

    reply = requests.post(
        f"{b.url}/admin/api/users/{member.id}/logout",
        headers={"Authorization": f"Bearer {_admin_token(b)}"},
        timeout=10,
    )

    assert reply.status_code == 200, reply.text
    assert browser.get("/account").status_code == 303  # node A knows at once


def test_a_token_issued_by_node_a_is_introspected_and_revoked_through_node_b(
    nodes: tuple[LiveIdp, LiveIdp],
) -> None:
    a, b = nodes
    shop = a.create_client()
    signed = sign_in(a, client=shop)
    access = signed.tokens["access_token"]

    assert introspect(b, shop, access)["active"] is True
    revoked = requests.post(
        b.url + "/revoke",
        data={"token": access},
        auth=(shop.client.client_id, shop.client_secret),
        timeout=10,
    )
    assert revoked.status_code == 200
    assert introspect(a, shop, access)["active"] is False


def test_failed_passwords_count_across_both_nodes(nodes: tuple[LiveIdp, LiveIdp]) -> None:
    a, b = nodes
    member = a.create_user()
    for node in (a, b, a, b):  # four failures, two on each node: the lock of this provider
        assert password_attempt(node, member.username, "wrong password") == WRONG

    assert password_attempt(a, member.username, PASSWORD) == WRONG
    assert password_attempt(b, member.username, PASSWORD) == WRONG


def _kids(node: LiveIdp) -> set[str]:
    keys = requests.get(node.url + "/jwks.json", timeout=10).json()["keys"]
    return {k["kid"] for k in keys}


def test_a_key_rotated_through_the_shared_directory_is_published_by_both(
    nodes: tuple[LiveIdp, LiveIdp],
) -> None:
    a, b = nodes
    before = _kids(a)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    done = subprocess.run(
        [IDP, "--config", str(a.config_path), "keys", "rotate", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    new_kid = json.loads(done.stdout)["kid"]

    assert new_kid not in before
    assert eventually(lambda: new_kid in _kids(a) and new_kid in _kids(b))
    assert before <= _kids(b)  # the old key stays published while its tokens live
    token = _admin_token(b)  # signed by node B, now with the new key
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == new_kid


def test_with_a_worker_on_each_node_a_logout_is_delivered_once(
    nodes: tuple[LiveIdp, LiveIdp],
) -> None:
    a, b = nodes
    receiver = LogoutReceiver().up()
    try:
        shop = a.create_client(backchannel_logout_uri=receiver.uri)
        signed = sign_in(a, client=shop)
        claims: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(signed.tokens["id_token"].split(".")[1] + "==")
        )

        reply = requests.delete(
            f"{b.url}/admin/api/sessions/{claims['sid']}",
            headers={"Authorization": f"Bearer {_admin_token(b)}"},
            timeout=10,
        )

        assert reply.status_code == 200, reply.text
        assert eventually(lambda: receiver.claims_for(a.settings.server.issuer, sid=claims["sid"]))
        assert eventually(lambda: all(delivered for _, delivered, _ in a.outbox(claims["sid"])))
        assert len(receiver.claims_for(a.settings.server.issuer, sid=claims["sid"])) == 1
    finally:
        receiver.down()
