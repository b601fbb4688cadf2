"""A relying service's Security Event Token endpoint (RFC 8935) on a loopback port.

Like :class:`tests.support.receiver.LogoutReceiver`, but it records each
POST as it came (raw body and ``Content-Type``) and answers ``status``
(202 Accepted unless a test chooses otherwise).  ``down()`` closes the
listening socket and ``up()`` opens it again on the same port."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.services import free_port

__all__ = ["Received", "SetReceiver"]


@dataclass(frozen=True)
class Received:
    body: bytes
    content_type: str


class SetReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.status = 202
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def tokens(self) -> list[str]:
        return [r.body.decode() for r in self.received]

    def up(self) -> SetReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver._received.append(
                        Received(body=body, content_type=self.headers.get("Content-Type", ""))
                    )
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
