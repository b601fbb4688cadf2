"""``/demo/callback``: where the demo client of ``make run`` lands.

It only shows what a relying service would receive, and the command that
exchanges the code, so a first-time user can follow the whole flow.  It is
mounted only on the embedded defaults (``make run``), never in a configured
deployment."""

from __future__ import annotations

from flask import Blueprint, request
from werkzeug.wrappers import Response

from consent_ui.context import page, settings

__all__ = ["demo_bp"]

demo_bp = Blueprint("demo", __name__)

_KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "consent_required",
        "interaction_required",
        "invalid_request",
        "invalid_scope",
        "login_required",
        "server_error",
        "unauthorized_client",
        "unsupported_response_type",
    }
)


@demo_bp.get("/demo/callback")
def demo_callback() -> Response:
    error = request.args.get("error", "")
    return page(
        "demo_callback.html",
        code=request.args.get("code", ""),
        # Only a code we know is shown: the query string is anyone's to write.
        error=(error if error in _KNOWN_ERRORS else "unknown") if error else "",
        state=request.args.get("state", ""),
        token_endpoint=settings().url("/token"),
    )
