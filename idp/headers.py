"""Security headers on every response (CONTRACT "Pages, security headers").

A strict Content-Security-Policy with no inline script, framing denied twice
(CSP ``frame-ancestors`` and ``X-Frame-Options`` for old browsers),
``nosniff``, and no caching of any page that shows personal data or a form."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.wrappers import Response

__all__ = ["DOCUMENT_HEADERS", "install"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self' {form_targets}; frame-ancestors 'none'; "
    "base-uri 'none'"
)
# form-action must allow the redirect after a form POST to a client's
# registered URI (Chromium applies form-action to redirects).
_CSP_HEADER = ("Content-Security-Policy", CSP.format(form_targets="https: http:"))
_ALWAYS = (("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"))
_REFERRER = ("Referrer-Policy", "strict-origin-when-cross-origin")

DOCUMENT_HEADERS = (_CSP_HEADER, *_ALWAYS, _REFERRER)
"""The security headers of a response that no view has touched (the
published documents, answered before Flask, carry exactly these)."""

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
        # Every response pays for this hook: one pass over the few headers a
        # view set, then one extend (Headers.set would scan per header).
        h = response.headers
        path = request.path
        present = {name.lower() for name, _ in h.items()}
        added: list[tuple[str, str]] = list(_ALWAYS)
        if "content-security-policy" not in present:
            added.append(_CSP_HEADER)
        if path.startswith(_NO_REFERRER_PREFIXES):
            h.pop("Referrer-Policy", None)
            added.append(("Referrer-Policy", "no-referrer"))  # the QR token must not leak
        elif "referrer-policy" not in present:
            added.append(_REFERRER)
        if path.startswith(_NO_STORE_PREFIXES) and "cache-control" not in present:
            added += [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
        h.extend(added)
        return response
