"""A relying service's back-channel logout endpoint on a loopback port.

It records every ``logout_token`` POSTed to it, after ``delay_seconds`` (a
slow service).  ``down()`` closes the
listening socket (the service is unreachable: connection refused) and
``up()`` opens it again on the same port, so tests can show that delivery
is retried until the service is back."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.harness import eventually
from tests.support.ports import free_port

__all__ = ["LogoutReceiver", "PostReceiver", "eventually"]


class PostReceiver:
    """A loopback endpoint that records each POST's body and answers ``status``
    (after ``delay_seconds``); ``down()`` / ``up()`` close and reopen its port."""

    path = "/"

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.delay_seconds = 0.0
        self._posts: list[tuple[bytes, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def posts(self) -> list[tuple[bytes, str]]:
        """(body, Content-Type) of every POST received, in order."""
        with self._lock:
            return list(self._posts)

    def up(self) -> Self:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay_seconds:
                    time.sleep(receiver.delay_seconds)
                with receiver._lock:
                    receiver._posts.append((body, self.headers.get("Content-Type", "")))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # A short poll: shutdown() waits up to one interval (0.5 s by default),
        # which every test with a receiver paid at its teardown.
        server = self._server
        threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), daemon=True
        ).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class LogoutReceiver(PostReceiver):
    """A back-channel logout endpoint: its ``tokens`` are the logout tokens."""

    path = "/backchannel-logout"

    @property
    def tokens(self) -> list[str]:
        return [
            t for body, _ in self.posts for t in parse_qs(body.decode()).get("logout_token", [])
        ]

    def claims_for(self, issuer: str, **match: str) -> list[dict[str, Any]]:
        """The verified claims of every token received that match ``match``."""
        jwks = KeySet.import_key_set(requests.get(issuer + "/jwks.json", timeout=5).json())
        found = []
        for token in self.tokens:
            decoded = jwt.decode(token, jwks, algorithms=["RS256", "ES256"])
            claims = {**decoded.claims, "_header": decoded.header}
            if all(claims.get(k) == v for k, v in match.items()):
                found.append(claims)
        return found
