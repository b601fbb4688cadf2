"""An OpenID Connect provider for a family of web services sharing one account.

``create_app`` only wires the parts together; each part's module says what
it owns.  Production serves it with
``granian --interface wsgi --factory idp:create_app`` (or
``gunicorn 'idp:create_app()'``), configured by ``IDP_CONFIG``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from idp import clock, config, cookies, headers, ratelimit
from idp.config import Settings
from idp.db import absolute_url, configure_engine
from idp.db import db as database  # not `db`: that would shadow the idp.db module
from idp.errors import IdpError, OAuthError
from idp.keys import KeyRing
from idp.runtime import EXTENSION, Runtime

__all__ = ["create_app", "csrf"]

csrf = CSRFProtect()

MAX_BODY_BYTES = 64 * 1024
"""Request bodies are capped; nothing the provider accepts is larger."""

JSON_PREFIXES = (
    "/token",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/admin/api",
    "/jwks.json",
    "/.well-known",
)


def _secret_key(settings: Settings) -> str:
    if settings.server.secret_key:
        return settings.server.secret_key
    path = Path(settings.keys.dir) / "flask-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value


def keyring_for(settings: Settings) -> KeyRing:
    ttl = max(settings.tokens.access_token_ttl_seconds, settings.tokens.id_token_ttl_seconds)
    return KeyRing(settings.keys.dir, algorithm=settings.keys.algorithm, max_token_ttl_seconds=ttl)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application; without ``settings`` they are loaded from
    ``IDP_CONFIG`` and ``IDP_*`` variables (the production entry point)."""
    if settings is None:
        settings = config.load(None, os.environ)
    if settings.test_clock_file:
        clock.follow_file(settings.test_clock_file)
    app = Flask("idp", static_folder=None)
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SQLALCHEMY_DATABASE_URI=absolute_url(settings.database.url),
        SQLALCHEMY_ENGINE_OPTIONS=configure_engine(settings.database.url),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        SESSION_COOKIE_NAME="idp_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer_is_https,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION] = Runtime(settings=settings, keys=keyring_for(settings))
    database.init_app(app)
    csrf.init_app(app)
    ratelimit.init_app(app, settings)
    headers.install(app)
    cookies.install(app, settings)

    from idp.protocol import endpoints

    endpoints.install(app, settings.server.issuer)
    csrf.exempt(endpoints.bp)
    from idp import admin_api

    admin_api.install(app)
    csrf.exempt(admin_api.bp)

    import consent_ui

    consent_ui.register(app)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: Flask) -> None:
    from idp.protocol.endpoints import json_error

    @app.errorhandler(OAuthError)
    def _oauth_error(e: OAuthError) -> Any:
        from flask import g

        if e.status_code >= 500:
            app.logger.error("server error: %s", e.detail)
        return json_error(e, scheme=g.get("auth_scheme", "Basic"))

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Any:
        if isinstance(e, CSRFError):
            return _page_or_json(
                400,
                "bad_request",
                "The form expired or was not sent by this site. Go back, reload and try again.",
            )
        code = e.code or 500
        if code == 429:
            retry = _retry_after(e)
            response = _page_or_json(
                429, "rate_limited", "Too many requests. Wait a minute and try again."
            )
            response.headers["Retry-After"] = str(retry)
            return response
        error = {
            400: "invalid_request",
            401: "invalid_token",
            404: "not_found",
            405: "invalid_request",
            413: "invalid_request",
        }.get(code, "invalid_request" if code < 500 else "server_error")
        return _page_or_json(code, error, e.description or e.name)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Any:
        if isinstance(e, IdpError):
            app.logger.warning("unhandled %s: %s", type(e).__name__, e)
        else:
            app.logger.exception("unexpected error")
        database.session.rollback()
        return _page_or_json(
            500, "server_error", "Something went wrong on our side. Try again later."
        )


def _retry_after(e: HTTPException) -> int:
    limit = getattr(e, "limit", None)
    try:
        return max(1, int(limit.limit.get_expiry()))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return 60


def _page_or_json(status: int, error: str, description: str) -> Response:
    if wants_json():
        from idp.protocol.endpoints import json_response

        body = {"error": error, "error_description": description}
        response = json_response(body, status)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="idp"'
        return response
    import consent_ui

    return consent_ui.error_page(status, description)
