"""A request body the application did not read must not cost the client its
connection.

A relying service's HTTP library keeps connections alive and sends its next
request on the one its last answer came on.  When a view answers without
reading the body (a 404, a 405, a refusal before the form is parsed),
granian cannot tell where the next request starts unless it reads the rest
itself, and past a few kilobytes it does not: it closes the connection after
the answer, without saying so.  The client learns it only when its next
request on that connection fails (``RemoteDisconnected``), and most clients
do not retry a POST.

So, in front of everything else: after the application has answered, the
rest of a body within the provider's cap is read and thrown away, and the
connection stays usable; a body larger than the cap is not read at all, and
the answer (a 413, or whatever the application said) carries
``Connection: close`` (RFC 9112 §9.6), so the client opens a new connection
for its next request instead of failing on a dead one.  A request without a
body (every GET) passes straight through.

A client that declares a body and sends it slowly holds the request thread
while it is read, here as at any view that reads its body; the buffering
proxy in front (``docs/production.md``) is what takes that off the node."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DrainedBodies"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_CHUNK = 16 * 1024


class DrainedBodies:
    """WSGI middleware: reads what ``app`` left of a body of at most
    ``limit`` bytes; marks the answer ``Connection: close`` when the body is
    larger (declared, or found so while reading a body of unknown length)."""

    def __init__(self, app: WsgiApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        declared = environ.get("CONTENT_LENGTH")
        if not declared and "HTTP_TRANSFER_ENCODING" not in environ:
            return self.app(environ, start_response)
        # The application may replace the stream (the express lane puts back
        # what it read): the server's own is the one to drain.
        stream = environ["wsgi.input"]
        length = _declared_length(declared)
        if length is not None:
            if length > self.limit:
                return self.app(environ, _closing(start_response))
            body = self.app(environ, start_response)
            _drain(stream, length)
            return body
        # A body of unknown length: whether it ends within the cap is known
        # only once it is read, so the answer waits for that.
        answer = _HeldAnswer(start_response)
        body = self.app(environ, answer)
        answer.send(close=not _drain(stream, self.limit))
        return body


def _declared_length(value: str | None) -> int | None:
    """The declared length; None when there is none (a chunked body) or it is
    not a number of bytes (then read as a body of unknown length)."""
    try:
        length = int(value) if value else -1
    except ValueError:
        return None
    return length if length >= 0 else None


def _drain(stream: Any, at_most: int) -> bool:
    """Read and drop up to ``at_most`` bytes; True if the body ended within
    them (or the client went away: nothing is left to read either way)."""
    left = at_most
    try:
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                return True
            left -= len(chunk)
        return not stream.read(1)
    except (OSError, ValueError):
        return True


def _closing(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """``start_response`` with ``Connection: close`` added to the headers."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if not any(name.lower() == "connection" for name, _ in headers):
            headers = [*headers, ("Connection", "close")]
        return start_response(status, headers, exc_info)

    return start


class _HeldAnswer:
    """A ``start_response`` that holds the status and headers until the body
    is drained, so that ``Connection: close`` can still be added."""

    __slots__ = ("exc_info", "headers", "held", "start_response", "status", "write")

    def __init__(self, start_response: Callable[..., Any]) -> None:
        self.start_response = start_response
        self.held = True
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.exc_info: Any = None
        self.write: Callable[[bytes], Any] | None = None

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], Any]:
        if not self.held:  # an iterable that starts the answer as it is read
            return self.start_response(status, headers, exc_info)  # type: ignore[no-any-return]
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self._write

    def _write(self, data: bytes) -> Any:
        """PEP 3333's legacy ``write``: whoever uses it sends the answer now."""
        self.send(close=False)
        assert self.write is not None  # noqa: S101 - send() set it: the status was held
        return self.write(data)

    def send(self, *, close: bool) -> None:
        """Start the answer held so far; later calls go straight through."""
        self.held = False
        if self.status is None:
            return
        status, self.status = self.status, None
        start = _closing(self.start_response) if close else self.start_response
        self.write = start(status, self.headers, self.exc_info)
