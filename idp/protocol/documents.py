"""The published documents -- discovery and the JWKS -- served before Flask.

Every relying service fetches them, often on every start and whenever a
``kid`` is new, and they are the same bytes for everyone: serialised once
(the JWKS again only when a key is rotated), each with a strong ``ETag``
(a conditional request gets 304 and no body) and ``Cache-Control``.
Answering them in a WSGI layer in front of Flask, from a ready list of
headers, costs a few microseconds where the framework's request context,
routing and hooks cost a hundred; on one core that is the difference
between about 4,000 and 30,000 answers a second (``make bench``).

Only GET and HEAD of the exact paths are answered here; anything else
(another method, a trailing slash) goes on to Flask, which renders it as
every other request.  The headers are the security headers every response
of the provider carries (``idp.headers``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from idp import metrics
from idp.headers import DOCUMENT_HEADERS

__all__ = ["PublishedDocuments"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Document:
    """Bytes, their ETag and the headers of a 200 and of a 304."""

    __slots__ = ("body", "etag", "not_modified", "ok")

    def __init__(self, body: bytes, *, max_age: int) -> None:
        self.body = body
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        common = [
            ("Cache-Control", f"public, max-age={max_age}"),
            ("ETag", self.etag),
            ("Access-Control-Allow-Origin", "*"),
            *DOCUMENT_HEADERS,
        ]
        self.ok = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *common,
        ]
        self.not_modified = common

    def matches(self, if_none_match: str) -> bool:
        """RFC 9110 §13.1.2: a weak comparison of any listed tag, or ``*``."""
        for tag in if_none_match.split(","):
            tag = tag.strip()
            if tag == "*" or tag.removeprefix("W/") == self.etag:
                return True
        return False


class PublishedDocuments:
    """WSGI middleware answering GET and HEAD of the discovery documents and
    the JWKS; everything else goes to ``app``."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        discovery: bytes,
        discovery_paths: tuple[str, ...],
        jwks: Callable[[], bytes],
        jwks_path: str,
    ) -> None:
        self.app = app
        self._discovery = _Document(discovery, max_age=3600)
        self._discovery_paths = frozenset(discovery_paths)
        self._jwks_source = jwks
        self._jwks_path = jwks_path
        self._jwks: _Document | None = None  # read at the first request: keys may come later

    def _jwks_document(self) -> _Document:
        body = self._jwks_source()  # the key ring re-reads a rotation within a second
        document = self._jwks
        if document is None or body is not document.body:
            document = self._jwks = _Document(body, max_age=300)
        return document

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        if path in self._discovery_paths:
            document = self._discovery
        elif path == self._jwks_path:
            document = self._jwks_document()
        else:
            return self.app(environ, start_response)
        started = time.perf_counter()
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match and document.matches(if_none_match):
            start_response("304 Not Modified", document.not_modified)
            metrics.observe_before_flask(path, method, 304, time.perf_counter() - started)
            return []
        start_response("200 OK", document.ok)
        metrics.observe_before_flask(path, method, 200, time.perf_counter() - started)
        return [] if method == "HEAD" else [document.body]
