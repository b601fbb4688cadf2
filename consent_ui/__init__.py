"""Every page a person sees: sign-in, consent, account, sign-out.

Views call ``idp``'s services and never the database or Authlib (an
import-linter contract in pyproject.toml enforces it).  Failures a person
sees are text inside ``role="alert"``: our own fixed sentences, never an
echo of what the request sent.  :func:`render_error` renders every error of
a page-serving blueprint; the composition root calls it."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from consent_ui.context import settings
from consent_ui.i18n import N_
from idp import cookies, runtime
from idp.csrf import CSRFError, protection
from idp.errors import (
    AuthorizationPageError,
    IdpError,
    InteractionError,
    LinkError,
    NotAllowedError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from idp.ratelimit import limit_retry_after

__all__ = ["bp", "error_page", "register", "render_error"]

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


def error_page(status: int, message: str, *, title: str = N_("Something went wrong")) -> Response:
    body = render_template("error.html", title=title, message=message)
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


_AUTHORIZATION_ERRORS = {
    "invalid_client": N_("The service that sent you here is not registered with us."),
    "invalid_request": N_("The service sent an incomplete or malformed sign-in request."),
    "invalid_scope": N_("The service asked for access it may not have."),
    "unauthorized_client": N_("The service may not sign people in this way."),
    "unsupported_response_type": N_("The service asked for a kind of answer we do not give."),
    "request_not_supported": N_("The service sent a kind of request we do not support."),
    "request_uri_not_supported": N_("The service sent a kind of request we do not support."),
}

_HTTP_TEXT = {
    400: N_("The request could not be understood."),
    404: N_("There is no page here."),
    405: N_("This page cannot be used that way."),
    413: N_("The request is too large."),
    429: N_("Too many requests. Wait a minute and try again."),
}


def render_error(e: Exception) -> Response:
    """Any error of a page, as a readable page with the right status."""
    if isinstance(e, AuthorizationPageError):
        message = _AUTHORIZATION_ERRORS.get(
            e.error.error, N_("The service sent a sign-in request we cannot use.")
        )
        return error_page(
            400,
            f"{message} Go back to the service and try again. (error: {e.error.error})",
            title=N_("This sign-in request cannot be used"),
        )
    if isinstance(e, (InteractionError, LinkError)):
        return error_page(400, e.description, title=N_("This sign-in request cannot be used"))
    if isinstance(e, CSRFError):
        return error_page(
            400, N_("The form expired or was not sent by this site. Go back, reload and try again.")
        )
    if isinstance(e, RateLimitedError):
        response = error_page(429, e.description)
        response.headers["Retry-After"] = str(e.retry_after_seconds)
        return response
    if isinstance(e, UnavailableError):
        response = error_page(503, e.description)
        response.headers["Retry-After"] = str(e.retry_after_seconds)
        return response
    if isinstance(e, HTTPException):
        status = e.code or 500
        response = error_page(
            status, _HTTP_TEXT.get(status, N_("The request could not be served."))
        )
        if isinstance(e, MethodNotAllowed):
            response.headers.update((k, v) for k, v in e.get_headers() if k == "Allow")
        if status == 429:
            response.headers["Retry-After"] = str(limit_retry_after(e))
        return response
    if isinstance(e, NotFoundError):
        return error_page(404, N_("There is nothing here."))
    if isinstance(e, NotAllowedError):
        return error_page(403, N_("You may not do this."))
    if isinstance(e, IdpError):
        current_app.logger.warning("unhandled %s: %s", type(e).__name__, e.detail or e)
        return error_page(400, N_("This request cannot be served. Go back and try again."))
    current_app.logger.error("unexpected error", exc_info=e)
    return error_page(500, N_("Something went wrong on our side. Try again later."))


def register(app: Flask, *, demo: bool = False) -> None:
    """Mount the pages; ``demo`` adds the demo client's callback page (only
    on the embedded defaults of ``make run``)."""
    from consent_ui import (  # noqa: F401 - routes
        account,
        admin,
        consent,
        i18n,
        logout,
        passkeys,
        qr,
        registration,
        security,
        signin,
        stepup,
    )

    i18n.install(app, secure=runtime.current_from(app).settings.issuer_is_https)
    app.register_blueprint(bp)
    if demo:
        from consent_ui.demo import demo_bp

        app.register_blueprint(demo_bp)
    # /logout checks CSRF itself on its confirmation POST only: a relying
    # party's own POST cannot carry our token and is handled like its GET.
    protection.exempt(logout.end_session)
