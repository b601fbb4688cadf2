"""The provider's two cookies and their attributes (CONTRACT "Cookies").

``idp_session`` (``__Host-idp_session`` on https) carries the sign-in
session's random value; ``idp_device`` the device identifier.  Both are
``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and ``Secure`` on https.  A
"Stay signed in" session gets a persistent cookie; otherwise the cookie
dies with the browser (the server also ends it when idle).

A stay-signed-in cookie slides with its session: every response to a request
that used it carries it again with the server's new expiry, so a person who
comes back daily stays signed in until ``session.remember_max_days``."""

from __future__ import annotations

from flask import Flask, Request, g
from werkzeug.wrappers import Response

from idp import clock, devices, sessions
from idp.config import Settings
from idp.sessions import SessionInfo

__all__ = [
    "clear_session",
    "csrf_cookie_name",
    "current_session",
    "device_id",
    "ensure_device",
    "held_session",
    "install",
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


def csrf_cookie_name(settings: Settings) -> str:
    """The CSRF token's signed cookie: ``__Host-`` on https, so that no
    sibling host can plant one (it then must be Secure, Path=/, no Domain)."""
    return "__Host-idp_csrf" if settings.issuer_is_https else "idp_csrf"


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


def current_session(request: Request, settings: Settings) -> SessionInfo | None:
    """The live session behind this request's cookie, resolved once per
    request; a use of it slides its expiry (at most once a minute)."""
    if "idp_session_info" in g:
        cached: SessionInfo | None = g.idp_session_info
        return cached
    value = session_value(request, settings)
    info = sessions.resolve(value)
    if info is not None and info.touch_due(clock.now()):
        info = sessions.touch(info.id, settings.session)
    g.idp_session_info = info
    if info is not None and info.remember and value:
        g.idp_session_slide = (value, info)
    return info


def held_session(request: Request, settings: Settings) -> SessionInfo | None:
    """The session behind this request's cookie if the risk rules hold it
    for an extra check: only the step-up page asks."""
    return sessions.resolve(session_value(request, settings), held=True)


def install(app: Flask, settings: Settings) -> None:
    """Re-send a stay-signed-in cookie with its slid expiry."""
    name = session_cookie_name(settings)

    @app.after_request
    def _slide(response: Response) -> Response:
        slide = g.pop("idp_session_slide", None)
        if slide is None:
            return response
        if any(c.startswith(name + "=") for c in response.headers.getlist("Set-Cookie")):
            return response  # signed in or out by this very request
        value, info = slide
        seconds = int((info.expires_at - clock.now()).total_seconds())
        if seconds > 0:
            response.set_cookie(
                name,
                value,
                max_age=seconds,
                path="/",
                secure=settings.issuer_is_https,
                httponly=True,
                samesite="Lax",
            )
        return response
