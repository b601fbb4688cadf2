"""Discovery and the JWKS, answered before Flask: the same bytes and headers,
cached with an ETag, and every other method left to Flask."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.headers import DOCUMENT_HEADERS

PATHS = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
]


@pytest.mark.parametrize("path", PATHS)
def test_a_document_carries_its_cache_headers_and_every_security_header(
    app: Flask, path: str
) -> None:
    reply = app.test_client().get(path)

    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Cache-Control"].startswith("public, max-age=")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["ETag"].startswith('"')
    for name, value in DOCUMENT_HEADERS:
        assert reply.headers[name] == value
    assert reply.get_json()


@pytest.mark.parametrize("path", PATHS)
def test_a_conditional_request_with_the_etag_gets_304_and_no_body(app: Flask, path: str) -> None:
    http = app.test_client()
    etag = http.get(path).headers["ETag"]

    for given in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        reply = http.get(path, headers={"If-None-Match": given})
        assert reply.status_code == 304
        assert reply.data == b""
        assert reply.headers["ETag"] == etag
    assert http.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_head_gets_the_headers_without_the_body(app: Flask) -> None:
    reply = app.test_client().head("/jwks.json")

    assert reply.status_code == 200
    assert reply.data == b""
    assert int(reply.headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", PATHS)
def test_another_method_is_flask_s_405_with_allow(app: Flask, path: str) -> None:
    reply = app.test_client().post(path)

    assert reply.status_code == 405
    assert "GET" in reply.headers["Allow"]
    assert reply.get_json()["error"] == "invalid_request"
