"""CONTRACT "Robustness": bad HTTP gets a 4xx (or a closed connection), never a 5xx."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.harness import LiveIdp


def _raw(idp: LiveIdp, data: bytes) -> bytes:
    """Send raw bytes; the status line, or b"" if the server closed the connection."""
    port = urlsplit(idp.url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            return sock.recv(64).split(b"\r\n", 1)[0]
        except (BrokenPipeError, ConnectionResetError):
            return b""


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            {b"HTTP/1.1 414 URI Too Long"},
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 300_000 + b"\r\n\r\n",
            {b"HTTP/1.1 431 Request Header Fields Too Large", b""},
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: a\r\n" % i for i in range(2000))
            + b"\r\n",
            {b"HTTP/1.1 431 Request Header Fields Too Large"},
        ),
        (b"\x00\x01garbage\r\n\r\n", {b"HTTP/1.1 400 Bad Request", b""}),
        (
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            {b"HTTP/1.1 400 Bad Request"},
        ),
        (
            b"POST /token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 10000000\r\n\r\n" + b"a" * 1000,
            {b"HTTP/1.1 413 Payload Too Large"},
        ),
    ],
    ids=["long-request-line", "huge-header", "many-headers", "garbage", "bad-length", "huge-body"],
)
def test_broken_http_gets_a_4xx_or_a_closed_connection(
    live_idp: LiveIdp, request_bytes: bytes, expected: set[bytes]
) -> None:
    assert _raw(live_idp, request_bytes) in expected
    assert requests.get(live_idp.url + "/jwks.json", timeout=5).status_code == 200


def _answer(sock: socket.socket) -> tuple[bytes, dict[bytes, bytes]]:
    """Read one whole answer (with a Content-Length) from ``sock``: its status
    line and headers (names in lower case)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", {}
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}
    while len(body) < int(headers.get(b"content-length", b"0")):
        body += sock.recv(65536)
    return status, headers


@pytest.mark.parametrize("path", ["/no-such-page", "/login", "/token", "/account/profile"])
def test_a_body_the_provider_did_not_read_does_not_cost_the_connection(
    live_idp: LiveIdp, path: str
) -> None:
    """A client's next request on a kept-alive connection is answered, though
    the last one's body (within the cap) was refused unread: HTTP libraries
    send it there, and most do not retry a POST that found the connection
    dead."""
    port = urlsplit(live_idp.url).port
    body = b"a" * 60_000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        refused, headers = _answer(sock)
        sock.sendall(b"GET /jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
        following, _ = _answer(sock)

    assert refused.split(b" ")[1] in {b"400", b"404", b"405", b"415"}, refused
    assert headers.get(b"connection") != b"close"
    assert following == b"HTTP/1.1 200 OK"


def test_a_body_over_the_cap_is_refused_with_connection_close(live_idp: LiveIdp) -> None:
    """The body is not read; the answer says the connection ends (RFC 9112
    §9.6), so the client does not send its next request on a dead one."""
    port = urlsplit(live_idp.url).port
    body = b"a" * 70_000
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        status, headers = _answer(sock)

    assert status == b"HTTP/1.1 413 Payload Too Large"
    assert headers[b"connection"] == b"close"


def _chunked(size: int) -> bytes:
    """``size`` bytes in the chunked transfer coding, 4,000 to a chunk."""
    chunks = [b"a" * min(4000, size - start) for start in range(0, size, 4000)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize(("size", "kept"), [(50_000, True), (100_000, False)])
def test_a_chunked_body_refused_unread_is_read_within_the_cap(
    live_idp: LiveIdp, size: int, kept: bool
) -> None:
    """Without a declared length, the body is read up to the cap: within it
    the connection is kept, past it the answer says ``Connection: close``."""
    port = urlsplit(live_idp.url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /no-such-page HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(size)
        )
        refused, headers = _answer(sock)
        if kept:
            sock.sendall(b"GET /jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
            following, _ = _answer(sock)

    assert refused == b"HTTP/1.1 404 Not Found"
    assert (headers.get(b"connection") != b"close") is kept
    if kept:
        assert following == b"HTTP/1.1 200 OK"


def test_urls_come_from_the_issuer_never_from_host_headers(live_idp: LiveIdp) -> None:
    reply = requests.get(
        live_idp.url + "/.well-known/openid-configuration",
        headers={
            "Host": "evil.example",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Forwarded": "host=evil.example;proto=https",
        },
        timeout=5,
    )
    meta = reply.json()
    assert meta["issuer"] == live_idp.url
    assert all(
        v.startswith(live_idp.url)
        for k, v in meta.items()
        if k.endswith("_endpoint") or k == "jwks_uri"
    )
    redirect = requests.get(
        live_idp.url + "/account",
        headers={"Host": "evil.example"},
        allow_redirects=False,
        timeout=5,
    )
    assert redirect.headers["Location"].startswith(live_idp.url + "/login")


def test_discovery_says_request_objects_are_not_supported(live_idp: LiveIdp) -> None:
    meta = requests.get(live_idp.url + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["request_parameter_supported"] is False
    assert meta["request_uri_parameter_supported"] is False
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True
    same = requests.get(live_idp.url + "/.well-known/oauth-authorization-server", timeout=5).json()
    assert same == meta


def test_an_unknown_path_is_a_readable_404_page(live_idp: LiveIdp) -> None:
    reply = requests.get(live_idp.url + "/nothing-here", timeout=5)
    assert reply.status_code == 404
    assert 'role="alert"' in reply.text


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/admin/api/users/%2F..%2F/logout", "POST"), ("/admin/api/sessions/%2F%2Fx", "DELETE")],
)
def test_a_doubled_slash_at_a_route_of_another_method_is_a_405_never_a_500(
    live_idp: LiveIdp, path: str, allowed: str
) -> None:
    """The error's renderer asks which route the path names with a method it
    takes; for a doubled slash werkzeug answers that with a redirect to the
    merged path, which the renderer did not expect: a 500 with no body."""
    reply = requests.get(live_idp.url + path, timeout=5)

    assert reply.status_code == 405
    assert reply.json()["error"] == "invalid_request"
    assert allowed in reply.headers["Allow"]


def test_an_unknown_path_under_the_admin_api_is_a_json_404(live_idp: LiveIdp) -> None:
    reply = requests.get(live_idp.url + "/admin/api/nothing-here", timeout=5)

    assert reply.status_code == 404
    assert reply.json()["error"] == "not_found"


def test_idle_keep_alive_connections_do_not_starve_other_clients(live_idp: LiveIdp) -> None:
    """Browsers keep connections open between requests; a few hundred of them,
    idle, must not stop the server from answering anyone else."""
    port = urlsplit(live_idp.url).port
    idle = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            idle.append(sock)
            sock.sendall(b"GET /jwks.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")  # answered; kept alive, silent

        reply = requests.get(live_idp.url + "/login", timeout=10)

        assert reply.status_code == 200
    finally:
        for sock in idle:
            sock.close()
