"""Every page a person sees: sign-in, consent, account, sign-out.

Views call ``idp``'s services and never the database or Authlib (an
import-linter contract in pyproject.toml enforces it).  Failures a person
sees are text inside ``role="alert"``."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template, request
from werkzeug.wrappers import Response

from consent_ui.context import settings
from idp import cookies
from idp.errors import AuthorizationPageError, InteractionError

__all__ = ["error_page", "register"]

bp = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@bp.after_request
def _device_cookie(response: Response) -> Response:
    """The device identifier is set at the first visit of any page (so that
    the first sign-in on this browser already records it) and renewed for
    400 days on every visit after."""
    already = any(c.startswith("idp_device=") for c in response.headers.getlist("Set-Cookie"))
    if not already:
        cookies.ensure_device(request, response, settings())
    return response


def error_page(status: int, message: str, *, title: str = "Something went wrong") -> Response:
    body = render_template("error.html", title=title, message=message)
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    from consent_ui import (  # noqa: F401 - routes
        account,
        consent,
        demo,
        logout,
        passkeys,
        qr,
        signin,
    )
    from idp import csrf

    app.register_blueprint(bp)
    # /logout checks CSRF itself on its confirmation POST only: a relying
    # party's own POST cannot carry our token and is handled like its GET.
    csrf.exempt(logout.end_session)

    @app.errorhandler(AuthorizationPageError)
    def _authorization_error(e: AuthorizationPageError) -> Response:
        return error_page(
            400,
            f"The service sent an invalid sign-in request ({e.error.error}): "
            f"{e.error.description or e.error.error}",
            title="This sign-in request cannot be used",
        )

    @app.errorhandler(InteractionError)
    def _interaction_error(e: InteractionError) -> Response:
        return error_page(400, str(e), title="This sign-in request cannot be used")
