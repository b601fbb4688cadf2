"""An OpenID Connect provider for a family of web services sharing one account.

``create_app`` builds the application (the composition root is
``idp.app``); production serves it with ``granian --interface wsgi
--factory idp:create_app`` (or ``gunicorn 'idp:create_app()'``), configured
by ``IDP_CONFIG``.  This package itself imports nothing more, so that
``idp --help``, a bad argument or a bad configuration file is answered
without loading every service first (a second of the command's start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from idp.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the application; without ``settings`` they are loaded from
    ``IDP_CONFIG`` and ``IDP_*`` variables (the production entry point)."""
    from idp import app

    return app.create_app(settings)
