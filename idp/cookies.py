"""The provider's two cookies and their attributes (CONTRACT "Cookies").

``idp_session`` (``__Host-idp_session`` on https) carries the sign-in
session's random value; ``idp_device`` the device identifier.  Both are
``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and ``Secure`` on https.  A
"Stay signed in" session gets a persistent cookie; otherwise the cookie
dies with the browser (the server also ends it when idle)."""

from __future__ import annotations

from flask import Request
from werkzeug.wrappers import Response

from idp import devices
from idp.config import Settings

__all__ = [
    "clear_session",
    "device_id",
    "ensure_device",
    "session_cookie_name",
    "session_value",
    "set_session",
]


def session_cookie_name(settings: Settings) -> str:
    return "__Host-idp_session" if settings.issuer_is_https else "idp_session"


def session_value(request: Request, settings: Settings) -> str | None:
    return request.cookies.get(session_cookie_name(settings))


def set_session(response: Response, settings: Settings, value: str, *, remember: bool) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        value,
        max_age=settings.session.remember_days * 86400 if remember else None,
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )


def clear_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )


def device_id(request: Request) -> str | None:
    value = request.cookies.get("idp_device")
    return value if devices.is_valid(value) else None


def ensure_device(request: Request, response: Response, settings: Settings) -> str:
    """The browser's device id, set (or renewed for 400 days) on the response."""
    value = device_id(request) or devices.new_device_id()
    response.set_cookie(
        "idp_device",
        value,
        max_age=devices.COOKIE_MAX_AGE_SECONDS,
        path="/",
        secure=settings.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )
    return value
