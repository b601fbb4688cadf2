"""``/health/ready`` keeps a node whose database is behind its version out
of rotation: a release started with ``granian ... idp:create_app`` before
``idp init`` migrated (``idp serve`` refuses to start; granian does not)."""

from __future__ import annotations

from alembic import command
from flask import Flask
from sqlalchemy import create_engine

from idp import runtime, schema
from idp.db import absolute_url, configure_engine


def _migrate(url: str, revision: str, *, down: bool) -> None:
    engine = create_engine(url, **configure_engine(url))
    try:
        with engine.begin() as connection:
            cfg = schema.alembic_config(url)
            cfg.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(cfg, revision)
    finally:
        engine.dispose()


def test_a_schema_behind_this_version_is_not_ready_until_migrated(app: Flask) -> None:
    url = absolute_url(runtime.current().settings.database.url)
    previous = schema.head_revision()
    _migrate(url, "-1", down=True)
    client = app.test_client()

    behind = client.get("/health/ready")

    assert behind.status_code == 503
    assert behind.headers["Retry-After"] == "5"
    assert behind.get_json()["schema"] == "behind"
    assert behind.get_json()["database"] == "ok"

    _migrate(url, previous, down=False)
    ready = client.get("/health/ready")

    assert ready.status_code == 200
    assert ready.get_json()["schema"] == "ok"
