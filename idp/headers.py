"""Security headers on every response (CONTRACT "Pages, security headers").

A strict Content-Security-Policy with no inline script, framing denied twice
(CSP ``frame-ancestors`` and ``X-Frame-Options`` for old browsers),
``nosniff``, and no caching of any page that shows personal data or a form."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.wrappers import Response

__all__ = ["install"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self' {form_targets}; frame-ancestors 'none'; "
    "base-uri 'none'"
)

_NO_STORE_PREFIXES = (
    "/login",
    "/consent",
    "/account",
    "/logout",
    "/qr",
    "/authorize",
    "/admin",
    "/register",
    "/recover",
)
_NO_REFERRER_PREFIXES = (
    "/qr/",
    "/login/qr",
    # Single-use tokens in the path: never sent to another site.
    "/register/verify/",
    "/recover/password/",
    "/account/email/verify/",
)


def install(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        h = response.headers
        # form-action must allow the redirect after a form POST to a client's
        # registered URI (Chromium applies form-action to redirects).
        h.setdefault("Content-Security-Policy", CSP.format(form_targets="https: http:"))
        h["X-Frame-Options"] = "DENY"
        h["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith(_NO_REFERRER_PREFIXES):
            h["Referrer-Policy"] = "no-referrer"  # the QR token must not leak
        h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if request.path.startswith(_NO_STORE_PREFIXES) and "Cache-Control" not in h:
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        return response
