"""``/account``: the signed-in person's own pages."""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, settings, signed_in


def require_signed_in() -> Response | None:
    """A redirect to sign in (and back here afterwards) when signed out."""
    if signed_in() is None:
        return redirect(
            settings().url("/login?next=" + quote(request.full_path.rstrip("?"), safe="/")), 303
        )
    return None


@bp.get("/account")
def account_home() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    return page("account.html")


@bp.get("/")
def home() -> Response:
    return redirect(settings().url("/account" if signed_in() else "/login"), 303)
