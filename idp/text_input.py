"""No NUL character, and no text that is not Unicode, gets into the provider
from a request.

PostgreSQL cannot hold one in a text value: the driver refuses a parameter
that contains it, so a ``client_id``, a user name or a nonce with ``%00`` in
it would end as a 500 there, while SQLite would store it.  No parameter of
the protocol, no form field and no identifier in a path has a use for one
(RFC 6749 Appendix A limits every parameter to visible characters), so a
request carrying one is refused first, the same way on either database: a
400 (``invalid_request`` at the JSON endpoints, a readable page elsewhere).

Checked: the query, the form, the path's parameters, cookies, the Basic
credentials and a JSON body (a ``\\u0000`` escape included).  The express
lane (``idp.protocol.express``) hands a request with a NUL on to Flask,
which refuses it here.

A JSON body can also carry half of a UTF-16 surrogate pair (``"\\ud800"``
alone), which Python decodes into a string that neither database driver
can encode: a passkey named so ended as a 500 on both.  Werkzeug decodes
the query, form and path with replacement characters, so only JSON needs
that check; its strings are walked once, after the body is parsed (the
views read the same parsed body)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from flask import Flask, request
from werkzeug.exceptions import BadRequest

__all__ = ["has_nul", "install"]

NUL = "\x00"

_MESSAGE = (
    "The request contains a NUL character or half of a surrogate pair, which no parameter may hold."
)


def has_nul(values: Iterable[str | None]) -> bool:
    """Whether any of ``values`` contains a NUL."""
    return any(value is not None and NUL in value for value in values)


def install(app: Flask) -> None:
    """Refuse, before any view or other hook reads it, a request with a NUL
    (or, in a JSON string, half of a surrogate pair)."""

    @app.before_request
    def _refuse_bad_text() -> None:
        if _request_has_bad_text():
            raise BadRequest(_MESSAGE)


def _request_has_bad_text() -> bool:
    query = request.query_string
    if b"%00" in query or b"\x00" in query or NUL in request.path:
        return True
    if has_nul(_flattened(request.cookies.items(multi=True))):
        return True
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        # RFC 6749 §2.3.1: each half is form-encoded; ``%00`` is a NUL once decoded.
        halves = (basic.username or "", basic.password or "")
        if has_nul(halves) or has_nul(unquote(half) for half in halves):
            return True
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return has_nul(_flattened(request.form.items(multi=True)))
    if request.is_json:
        return _json_has_bad_text(request.get_json(silent=True))
    return False


def _json_has_bad_text(document: Any) -> bool:
    """Whether a string anywhere in ``document`` (keys too) holds a NUL or
    cannot be encoded as UTF-8 (a lone surrogate)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if NUL in value or not _encodable(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _flattened(pairs: Iterable[tuple[str, str]]) -> Iterable[str]:
    for key, value in pairs:
        yield key
        yield value
