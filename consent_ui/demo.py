"""``/demo/callback``: where the demo client of ``make run`` lands.

It only shows what a relying service would receive, and the command that
exchanges the code, so a first-time user can follow the whole flow."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, settings


@bp.get("/demo/callback")
def demo_callback() -> Response:
    return page(
        "demo_callback.html",
        code=request.args.get("code", ""),
        error=request.args.get("error", ""),
        state=request.args.get("state", ""),
        token_endpoint=settings().url("/token"),
    )
