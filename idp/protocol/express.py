"""UserInfo and introspection, answered before Flask when all is in order.

A relying service calls these two on most of its own requests: UserInfo
with the access token it holds, introspection of the token a caller showed
it.  The work is small once the signature check of a token is remembered
(``idp.keys``) and the look-ups are one prepared statement each
(``idp.db.read_one``); Flask's request context, routing, hooks and response
object then cost more than the work, about 250 µs a request on the bench
machine (``make bench``).

So this WSGI layer, behind the published documents and in front of Flask,
answers the plain, successful case only:

* ``GET /userinfo`` with no query and no body, ``Authorization: Bearer``, a
  token that verifies, carries ``openid`` and names a member who exists and
  is not disabled;
* ``POST /introspect`` with HTTP Basic credentials of a confidential client
  that check out, and a form of ``token`` (and ``token_type_hint``), each
  once.

Everything else -- a refusal to render with its ``WWW-Authenticate``, a
client authenticated in the body, a repeated parameter, an unexpected
failure -- goes on to Flask untouched (the body read here is handed on),
which answers it as any request.  The lane refuses nothing itself, so the
two cannot disagree on what is refused; it answers with the headers Flask
would (``idp.headers``, ``Cache-Control: no-store``) and is counted in the
same metrics."""

from __future__ import annotations

import base64
import binascii
import io
import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote

from flask import Flask

from idp import accounts, clients, metrics, tokens
from idp.errors import InvalidTokenError, NotFoundError
from idp.headers import DOCUMENT_HEADERS

__all__ = ["ExpressLane", "userinfo_answer"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_FORM_BYTES = 16 * 1024
"""A longer introspection request goes to Flask, which has its own limits."""

_INTROSPECTION_FIELDS = frozenset({"token", "token_type_hint"})
_HEADERS = [("Cache-Control", "no-store"), *DOCUMENT_HEADERS]


def userinfo_answer(access: tokens.AccessClaims) -> dict[str, Any]:
    """The UserInfo claims an access token grants; InvalidTokenError when
    it names no member, or one who is gone or disabled."""
    if access.user_id is None:
        raise InvalidTokenError("The access token does not name a person.")
    try:
        member = accounts.get_committed(access.user_id)
    except NotFoundError:
        raise InvalidTokenError("The account no longer exists.") from None
    if member.disabled:
        raise InvalidTokenError("The account is disabled.")
    return accounts.userinfo_claims(member, access.scopes)


def _userinfo(environ: dict[str, Any], form: None) -> dict[str, Any] | None:
    if environ.get("QUERY_STRING") or environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
        return None
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    access = tokens.verify_access_token(token)
    if "openid" not in access.scopes:
        return None
    return userinfo_answer(access)


def _basic_credentials(environ: dict[str, Any]) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: ``client_id:client_secret``, each form-encoded."""
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return None
    return unquote(client_id), unquote(secret)


def _introspection(environ: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any] | None:
    credentials = _basic_credentials(environ)
    if credentials is None or form is None or not form.get("token"):
        return None
    client = clients.lookup(credentials[0])
    if client is None or client.is_public or not clients.check_secret(client, credentials[1]):
        return None
    return tokens.introspect(form["token"], client)


def _read_form(environ: dict[str, Any]) -> dict[str, str] | None:
    """The introspection form if it is plain, else None; the body read is
    put back for Flask either way."""
    content_type = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return None
    if content_type != "application/x-www-form-urlencoded" or not 0 < length <= MAX_FORM_BYTES:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    form = dict(pairs)
    if len(form) != len(pairs) or not form.keys() <= _INTROSPECTION_FIELDS:
        return None
    return form


_ROUTES: dict[tuple[str, str], Callable[[dict[str, Any], Any], dict[str, Any] | None]] = {
    ("GET", "/userinfo"): _userinfo,
    ("POST", "/introspect"): _introspection,
}


class ExpressLane:
    """WSGI middleware answering the plain cases of UserInfo and
    introspection; everything else goes to ``app``."""

    def __init__(self, app: WsgiApp, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        route = _ROUTES.get((method, path))
        if route is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        form = _read_form(environ) if method == "POST" else None
        with self.flask_app.app_context():
            try:
                answer = route(environ, form)
            except Exception:  # Flask meets it again, and renders it
                answer = None
        if answer is None:
            return self.app(environ, start_response)
        body = json.dumps(answer, separators=(",", ":")).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *_HEADERS,
            ],
        )
        metrics.observe_before_flask(path, method, 200, time.perf_counter() - started)
        return [body]
