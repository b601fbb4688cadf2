"""UserInfo, introspection, machine tokens and refreshes, answered before
Flask when all is in order.

A relying service calls these on most of its own requests: UserInfo with
the access token it holds, introspection of the token a caller showed it, a
``client_credentials`` token for calling another service, a refresh when
its access token runs out.  The work is small once the signature check of a
token is remembered (``idp.keys``) and the look-up is one prepared
statement (``idp.prepared.read_one``; for UserInfo the token and its member
together); a machine token is one signature and no write.  Flask's request
context, routing, hooks and response object, and Authlib's grant objects,
then cost as much as the work: about 250 µs a request on the bench machine,
600 µs a refresh (``make bench``).

So this WSGI layer, behind the published documents and in front of Flask,
answers the plain, successful case only:

* ``GET /userinfo`` with no query and no body, ``Authorization: Bearer``, a
  token that verifies, carries ``openid`` and names a member who exists and
  is not disabled;
* ``POST /introspect`` with HTTP Basic credentials of a confidential client
  that check out, and a form of ``token`` (and ``token_type_hint``), each
  once;
* ``POST /token`` with such credentials, ``grant_type=client_credentials``
  and a ``scope`` the client may have (``grants.machine_scope``), or
  ``grant_type=refresh_token`` with a refresh token of that client (and a
  ``scope`` within the token's), rotated by the same service as in Flask.

Everything else -- a refusal to render with its ``WWW-Authenticate``, a
client authenticated in the body, a repeated parameter, a NUL character
(``idp.text_input``), an unexpected failure -- goes on to Flask untouched
(the body read here is handed on), which answers it as any request.  The
lane refuses nothing itself, so the two cannot disagree on what is refused;
it answers with the headers Flask would (``idp.headers``, ``Cache-Control:
no-store``) and is counted in the same metrics.  One refusal leaves a trace
before Flask sees it: a reused refresh token, whose punishment
(:func:`idp.rotation.rotate`, committed by ``db.refuse``) is done once;
Flask then finds the token revoked and answers ``invalid_grant``, as it
would have."""

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

from idp import accounts, bearer_tokens, clients, introspection, members, metrics, rotation, tokens
from idp.clients import RelyingParty
from idp.errors import InvalidTokenError
from idp.headers import DOCUMENT_HEADERS
from idp.protocol.grants import machine_scope
from idp.text_input import has_nul

__all__ = ["ExpressLane", "userinfo_answer"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_FORM_BYTES = 16 * 1024
"""A longer form goes to Flask, which has its own limits."""

_HEADERS = [("Cache-Control", "no-store"), *DOCUMENT_HEADERS]
_TOKEN_HEADERS = [*_HEADERS, ("Pragma", "no-cache")]


def userinfo_answer(
    access: bearer_tokens.AccessClaims, member: members.Member | None
) -> dict[str, Any]:
    """The UserInfo claims an access token grants about the member it names;
    InvalidTokenError when it names none, or one who is gone or disabled."""
    if access.user_id is None:
        raise InvalidTokenError("The access token does not name a person.")
    if member is None or member.id != access.user_id:
        raise InvalidTokenError("The account no longer exists.")
    if member.disabled:
        raise InvalidTokenError("The account is disabled.")
    return accounts.userinfo_claims(member, access.scopes)


def _userinfo(environ: dict[str, Any], form: None) -> dict[str, Any] | None:
    if environ.get("QUERY_STRING") or environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
        return None
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    access, member = bearer_tokens.verify_access_token_with_member(token)
    if "openid" not in access.scopes:
        return None
    return userinfo_answer(access, member)


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
    credentials = unquote(client_id), unquote(secret)
    if not colon or has_nul(credentials):
        return None
    return credentials


def _authenticated_client(environ: dict[str, Any]) -> RelyingParty | None:
    """A confidential client whose HTTP Basic credentials check out."""
    credentials = _basic_credentials(environ)
    if credentials is None:
        return None
    client = clients.lookup(credentials[0])
    if client is None or client.is_public or not clients.check_secret(client, credentials[1]):
        return None
    return client


def _introspection(environ: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any] | None:
    if form is None or not form.get("token"):
        return None
    client = _authenticated_client(environ)
    if client is None:
        return None
    return introspection.introspect(form["token"], client)


def _machine_token(environ: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any] | None:
    if form is None or form.get("grant_type") != "client_credentials":
        return None
    client = _authenticated_client(environ)
    if client is None or not client.allows_grant("client_credentials"):
        return None
    scope = machine_scope(client, form.get("scope"))
    if scope is None:
        return None
    return tokens.issue_for_client(client, scope).to_json()


def _refresh(environ: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any] | None:
    if form is None or form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
        return None
    client = _authenticated_client(environ)
    if client is None or not client.allows_grant("refresh_token"):
        return None
    grant = rotation.find(form["refresh_token"], client.client_id)
    if grant is None:
        return None
    scope = form.get("scope") or None
    if scope is not None and not set(scope.split()) <= set(grant.scope.split()):
        return None  # Flask answers invalid_scope
    return rotation.rotate(grant, client=client, confidential=True, scope=scope).to_json()


_TOKEN_GRANTS = {"client_credentials": _machine_token, "refresh_token": _refresh}


def _token(environ: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any] | None:
    answer = _TOKEN_GRANTS.get(form.get("grant_type", "") if form else "")
    return None if answer is None else answer(environ, form)


def _read_form(environ: dict[str, Any], fields: frozenset[str]) -> dict[str, str] | None:
    """The form if it is plain -- urlencoded, of ``fields`` only, each once
    -- else None; the body read is put back for Flask either way."""
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
    if len(form) != len(pairs) or not form.keys() <= fields or has_nul(form.values()):
        return None
    return form


class _Route:
    __slots__ = ("answer", "fields", "headers")

    def __init__(
        self,
        answer: Callable[[dict[str, Any], Any], dict[str, Any] | None],
        *,
        fields: frozenset[str] = frozenset(),
        headers: list[tuple[str, str]] = _HEADERS,
    ) -> None:
        self.answer = answer
        self.fields = fields
        self.headers = headers


_ROUTES = {
    ("GET", "/userinfo"): _Route(_userinfo),
    ("POST", "/introspect"): _Route(_introspection, fields=frozenset({"token", "token_type_hint"})),
    ("POST", "/token"): _Route(
        _token,
        fields=frozenset({"grant_type", "scope", "refresh_token"}),
        headers=_TOKEN_HEADERS,
    ),
}


class ExpressLane:
    """WSGI middleware answering the plain cases of UserInfo, introspection
    and the ``client_credentials`` and ``refresh_token`` grants; everything
    else goes to ``app``."""

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
        form = None
        if method == "POST":
            form = _read_form(environ, route.fields)
            if form is None:  # a code exchange, a client in the body...: Flask's
                return self.app(environ, start_response)
        with self.flask_app.app_context():
            try:
                answer = route.answer(environ, form)
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
                *route.headers,
            ],
        )
        metrics.observe_before_flask(path, method, 200, time.perf_counter() - started)
        return [body]
