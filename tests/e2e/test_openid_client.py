"""Interop: panva's openid-client (Node) validates the provider strictly.

openid-client is a certified relying party: it checks discovery, ``iss`` in
the authorization response (RFC 9207), state, PKCE, the ID token's
signature against the JWKS, ``iss``/``aud``/``exp``/``nonce``/``auth_time``
and ``at_hash`` (the wrapper in tests/interop/node/rp.mjs adds the last),
and that UserInfo's ``sub`` matches."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Browser, LiveIdp

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"


def _rp(command: str, payload: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        pytest.fail("node and tests/interop/node/node_modules are required: run `make test`")
    done = subprocess.run(
        [node, "rp.mjs", command],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=60,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout or "{}")
    assert done.returncode == 0, (result, done.stderr[-2000:])
    return result


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
def test_openid_client_completes_the_code_flow_and_refresh(live_idp: LiveIdp, public: bool) -> None:
    member = live_idp.create_user(name="Taro Suzuki", birthdate=dt.date(1990, 4, 1))
    client = live_idp.create_client(public=public)
    common = {
        "issuer": live_idp.url,
        "client_id": client.client.client_id,
        "client_secret": client.client_secret,
    }
    started = _rp(
        "start",
        {**common, "redirect_uri": client.client.redirect_uris[0], "scope": "openid profile email"},
    )
    leaving = Browser(live_idp.url).authorize(
        started["authorization_url"], username=member.username
    )
    finished = _rp(
        "finish",
        {
            **common,
            "callback_url": leaving.headers["Location"],
            "code_verifier": started["code_verifier"],
            "state": started["state"],
            "nonce": started["nonce"],
            "max_age": 300,
        },
    )
    claims = finished["claims"]
    assert claims["sub"] == member.id
    assert claims["iss"] == live_idp.url
    assert claims["aud"] == client.client.client_id
    assert claims["nonce"] == started["nonce"]
    assert claims["amr"] == ["pwd"]
    assert finished["userinfo"]["birthdate"] == "1990-04-01"
    refreshed = _rp("refresh", {**common, "refresh_token": finished["refresh_token"]})
    assert refreshed["claims"]["sub"] == member.id
    assert refreshed["refresh_token"] != finished["refresh_token"]
