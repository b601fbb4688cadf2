"""The composition root: ``create_app`` is the only code that imports both
the protocol core (``idp``) and the pages (``consent_ui``), wiring the parts
together; each part's module says what it owns.  It also decides, per
blueprint, how errors are rendered: JSON for the protocol and admin
endpoints, pages for everything a person sees.  Production serves it with
``granian --interface wsgi --factory idp:create_app`` (or
``gunicorn 'idp:create_app()'``), configured by ``IDP_CONFIG``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from flask import Flask, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from idp import clock, config, cookies, geo, headers, health, metrics, ratelimit, text_input
from idp.config import Settings
from idp.csrf import protection as csrf
from idp.db import absolute_url, configure_engine, unavailable
from idp.db import db as database  # not `db`: that would shadow the idp.db module
from idp.errors import IdpError, UnavailableError
from idp.keys import keyring_for
from idp.request_bodies import DrainedBodies
from idp.runtime import EXTENSION, Runtime
from idp.sealing import Sealer, load_data_key

__all__ = ["create_app"]

MAX_BODY_BYTES = 64 * 1024
"""Request bodies are capped; nothing the provider accepts is larger."""

JSON_BLUEPRINTS = frozenset({"protocol", "admin_api"})
"""Blueprints whose callers are programs: their errors are JSON."""


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


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application; without ``settings`` they are loaded from
    ``IDP_CONFIG`` and ``IDP_*`` variables (the production entry point)."""
    if settings is None:
        settings = config.load(None, os.environ)
    if settings.test_clock_file:
        clock.follow_file(settings.test_clock_file)
    geo.check(settings.geoip.database)
    app = Flask("idp", static_folder=None)
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SQLALCHEMY_DATABASE_URI=absolute_url(settings.database.url),
        SQLALCHEMY_ENGINE_OPTIONS=configure_engine(
            settings.database.url,
            answer_timeout_seconds=settings.database.answer_timeout_seconds,
        ),
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        SESSION_COOKIE_NAME=cookies.csrf_cookie_name(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.issuer_is_https,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        JSON_SORT_KEYS=False,
    )
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        keys=keyring_for(settings),
        sealer=Sealer(load_data_key(settings.keys.dir)),
    )
    database.init_app(app)
    text_input.install(app)  # first: no other hook reads a NUL
    csrf.init_app(app)
    ratelimit.init_app(app, settings)
    headers.install(app)
    cookies.install(app, settings)
    metrics.install(app)
    health.install(app)

    from idp import admin_api
    from idp.protocol import endpoints

    endpoints.install(app, settings.server.issuer)
    csrf.exempt(endpoints.bp)
    app.wsgi_app = DrainedBodies(  # type: ignore[method-assign]
        endpoints.answered_before_flask(app), limit=MAX_BODY_BYTES
    )
    admin_api.install(app)
    csrf.exempt(admin_api.bp)

    import consent_ui

    consent_ui.register(app, demo=settings.embedded_defaults)
    _install_error_rendering(
        app, json_render=endpoints.render_error, page_render=consent_ui.render_error
    )
    return app


def _blueprint_of_request(app: Flask) -> str | None:
    """The blueprint that serves this request's path -- also when routing
    failed because of the method (a 405 belongs to the endpoint it names),
    and for a path no route takes under the admin API's prefix (a program
    asked: it gets JSON)."""
    if request.blueprint is not None:
        return request.blueprint
    failure = request.routing_exception
    if isinstance(failure, MethodNotAllowed) and failure.valid_methods:
        adapter = app.url_map.bind_to_environ(request.environ)
        try:
            endpoint, _ = adapter.match(method=next(iter(failure.valid_methods)))
        except HTTPException:  # also the redirect that merges doubled slashes
            endpoint = None
        if endpoint is not None:
            return str(endpoint).rpartition(".")[0] or None
    from idp.admin_api import PREFIX

    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        return "admin_api"
    return None


def _install_error_rendering(
    app: Flask,
    *,
    json_render: Callable[[Exception], Response],
    page_render: Callable[[Exception], Response],
) -> None:
    """Every error, rendered by the surface of the blueprint it happened in."""

    @app.errorhandler(Exception)
    def _render(e: Exception) -> Response:
        if not isinstance(e, (HTTPException, IdpError)):
            with contextlib.suppress(SQLAlchemyError):  # the connection may be gone
                database.session.rollback()
        if unavailable(e):
            # One line, not a traceback per request for as long as it lasts.
            why = str(e).splitlines()[0]
            app.logger.error("database unavailable: %s", why)
            e = UnavailableError(detail=why)
        if _blueprint_of_request(app) in JSON_BLUEPRINTS:
            return json_render(e)
        return page_render(e)
