"""What every page needs: settings, the signed-in person, safe return paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import g, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.wrappers import Response

from idp import cookies, members, remote, runtime
from idp.config import Settings
from idp.errors import NotFoundError
from idp.members import Member
from idp.sessions import SessionInfo

__all__ = [
    "SignedIn",
    "client_ip",
    "json_object",
    "page",
    "refusal",
    "safe_next",
    "settings",
    "signed_in",
]


@dataclass(frozen=True, slots=True)
class SignedIn:
    session: SessionInfo
    member: Member


def settings() -> Settings:
    return runtime.current().settings


def client_ip() -> str:
    return remote.client_ip(request, settings().server.trusted_proxies)


def signed_in() -> SignedIn | None:
    """The person signed in on this browser, once per request."""
    if "signed_in" in g:
        cached: SignedIn | None = g.signed_in
        return cached
    s = settings()
    session = cookies.current_session(request, s)
    result = None
    if session is not None:
        try:
            member = members.get(session.user_id)
        except NotFoundError:
            member = None
        if member is not None and not member.disabled:
            result = SignedIn(session=session, member=member)
    g.signed_in = result
    return result


def safe_next(value: str | None, default: str = "/account") -> str:
    """A return path on this provider only: no scheme, host, or ``//``."""
    if (
        not value
        or len(value) > 512
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return default
    try:
        parts = urlsplit(value)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return value


def json_object() -> dict[str, Any]:
    """The JSON object the pages' scripts send; anything else (no body, a
    list, a number, bytes that are no JSON) reads as an empty object, so a
    view sees its fields missing and refuses, never an AttributeError."""
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def refusal(message: str, status: int = 400, **extra: Any) -> Response:
    """What the pages' scripts get when a ceremony is refused: JSON whose
    ``message`` (translated here) they show in a ``role="alert"`` element."""
    response: Response = jsonify({"error": "refused", "message": gettext(message), **extra})
    response.status_code = status
    return response


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A page; ``me`` is the signed-in person unless the view says otherwise
    (a page after the person's session ended in this very request)."""
    context.setdefault("me", signed_in())
    body = render_template(template, **context)
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response
