"""The authorization code flow end to end, driven by Authlib's OAuth client."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.clients import MAX_URI_LENGTH
from tests.support.flows import sign_in
from tests.support.harness import Browser, LiveIdp


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _discover(idp: LiveIdp) -> dict:
    return requests.get(idp.url + "/.well-known/openid-configuration", timeout=5).json()


def test_authlib_client_completes_the_code_flow_and_validates_the_id_token(
    live_idp: LiveIdp,
) -> None:
    # Arrange: a member and a confidential client, discovered not hard-coded
    member = live_idp.create_user(name="Hanako Yamada", gender="female")
    client = live_idp.create_client()
    meta = _discover(live_idp)
    oauth = OAuth2Session(
        client.client.client_id,
        client.client_secret,
        scope="openid profile email",
        redirect_uri=client.client.redirect_uris[0],
        code_challenge_method="S256",
    )
    verifier = "v" * 64
    url, _state = oauth.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
    )
    # Act: the person signs in and consents in a browser
    browser = Browser(live_idp.url)
    leaving = browser.authorize(url, username=member.username)
    callback = leaving.headers["Location"]
    token = oauth.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    # Assert: the ID token verifies against the published keys and says who
    jwks = requests.get(meta["jwks_uri"], timeout=5).json()
    decoded = jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        now=int(time.time()),
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": client.client.client_id},
        nonce={"essential": True, "value": "n-0S6_WzA2Mj"},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(decoded.claims)
    claims = decoded.claims
    assert decoded.header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert claims["at_hash"] == _at_hash(token["access_token"])
    assert claims["sub"] == member.id
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "urn:idp:acr:1"
    assert isinstance(claims["auth_time"], int)
    assert isinstance(claims["sid"], str)
    assert claims["name"] == "Hanako Yamada"
    userinfo = oauth.get(meta["userinfo_endpoint"]).json()
    assert userinfo == {
        "sub": member.id,
        "preferred_username": member.username,
        "name": "Hanako Yamada",
        "gender": "female",
        "email": member.email,
        "email_verified": True,
    }


def test_access_token_is_an_rfc9068_jwt(live_idp: LiveIdp) -> None:
    client = live_idp.create_client(
        grant_types=["client_credentials"], redirect_uris=[], admin=True
    )
    reply = requests.post(
        live_idp.url + "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(client.client.client_id, client.client_secret),
        timeout=5,
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    header_b64, claims_b64, _ = body["access_token"].split(".")
    header, claims = _b64json(header_b64), _b64json(claims_b64)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert claims["client_id"] == client.client.client_id
    assert claims["sub"] == client.client.client_id
    assert claims["iss"] == live_idp.url
    assert claims["scope"] == "admin"
    assert {"exp", "iat", "jti", "aud"} <= claims.keys()
    assert reply.headers["Cache-Control"] == "no-store"


def test_a_redirect_uri_as_long_as_a_client_may_register_completes_the_flow(
    live_idp: LiveIdp,
) -> None:
    """The code keeps the redirect URI it was issued for: the longest one
    registration takes must fit it, on both databases."""
    path = "/cb/" + "a" * (MAX_URI_LENGTH - len("http://shop.localhost/cb/"))
    client = live_idp.create_client(redirect_uris=["http://shop.localhost" + path])
    assert len(client.client.redirect_uris[0]) == MAX_URI_LENGTH

    signed_in = sign_in(live_idp, client=client)

    assert signed_in.tokens["token_type"] == "Bearer"
