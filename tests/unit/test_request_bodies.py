"""What is left of a request body is read after the answer, within the cap;
beyond it the answer says ``Connection: close`` (``idp.request_bodies``)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from idp.request_bodies import DrainedBodies

LIMIT = 1000


class _Server:
    """What a WSGI server hands over and gets back."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self.status, self.headers = status, headers
        return self.written.append

    def connection(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "connection"), None)


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


def _reads_and_replaces(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """As the express lane does: reads the body, puts a copy back."""
    body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
    environ["wsgi.input"] = io.BytesIO(body)
    start_response("200 OK", [])
    return [body]


def _call(app: Any, environ: dict[str, Any]) -> tuple[_Server, list[bytes]]:
    server = _Server()
    body = list(DrainedBodies(app, limit=LIMIT)(environ, server.start_response))
    return server, body


def _post(body: bytes, **headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(body)}
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(headers)
    return environ


def test_an_unread_body_within_the_cap_is_read_and_the_connection_kept() -> None:
    environ = _post(b"a" * LIMIT)
    stream = environ["wsgi.input"]

    server, body = _call(_not_found, environ)

    assert (server.status, body) == ("404 Not Found", [b"no"])
    assert stream.tell() == LIMIT
    assert server.connection() is None


def test_a_body_the_application_read_is_not_read_again() -> None:
    environ = _post(b"grant_type=x")
    stream = environ["wsgi.input"]

    server, body = _call(_reads_and_replaces, environ)

    assert body == [b"grant_type=x"]
    assert stream.tell() == len(b"grant_type=x")
    assert server.connection() is None


def test_a_body_declared_over_the_cap_is_not_read_and_the_connection_closed() -> None:
    environ = _post(b"a" * (LIMIT + 1))
    stream = environ["wsgi.input"]

    server, _ = _call(_not_found, environ)

    assert stream.tell() == 0
    assert server.connection() == "close"
    assert server.status == "404 Not Found"


def test_a_chunked_body_is_read_up_to_the_cap_and_closed_past_it() -> None:
    within = _post(b"a" * LIMIT, HTTP_TRANSFER_ENCODING="chunked")
    beyond = _post(b"a" * (LIMIT * 3), HTTP_TRANSFER_ENCODING="chunked")
    del within["CONTENT_LENGTH"], beyond["CONTENT_LENGTH"]

    kept, _ = _call(_not_found, within)
    closed, _ = _call(_not_found, beyond)

    assert kept.connection() is None
    assert closed.connection() == "close"
    assert beyond["wsgi.input"].tell() <= LIMIT + 1  # bounded, whatever the client sends


@pytest.mark.parametrize("declared", ["abc", "-5"])
def test_a_length_that_is_not_a_number_of_bytes_is_read_at_most_to_the_cap(
    declared: str,
) -> None:
    environ = _post(b"a" * 10, CONTENT_LENGTH=declared)

    server, _ = _call(_not_found, environ)

    assert environ["wsgi.input"].tell() == 10
    assert server.connection() is None


def test_a_connection_header_of_the_application_is_not_repeated() -> None:
    def closes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("413 Payload Too Large", [("Connection", "close")])
        return [b""]

    server, _ = _call(closes, _post(b"a" * (LIMIT + 1)))

    assert [k for k, _ in server.headers if k.lower() == "connection"] == ["Connection"]


def test_a_request_without_a_body_goes_straight_through() -> None:
    seen: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(start_response)
        start_response("200 OK", [])
        return [b"ok"]

    server = _Server()
    DrainedBodies(app, limit=LIMIT)({"REQUEST_METHOD": "GET"}, server.start_response)

    assert seen == [server.start_response]


def test_an_answer_started_while_its_body_is_read_still_goes_out() -> None:
    def lazy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("X-Lazy", "1")])
        yield b"late"

    server, body = _call(lazy, _post(b"a" * 10))

    assert (server.status, body) == ("200 OK", [b"late"])


def test_the_legacy_write_sends_the_answer_first() -> None:
    def writes(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"early")
        return [b"rest"]

    server, body = _call(writes, _post(b"a" * 10))

    assert server.status == "200 OK"
    assert (server.written, body) == ([b"early"], [b"rest"])
