"""Creating and upgrading the database schema with Alembic.

``idp init`` calls :func:`upgrade`; it is safe to run again (Alembic
records the revision it reached).  A SQLite file's directory is created
first so that the embedded defaults need nothing prepared."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from idp.db import absolute_url, configure_engine

__all__ = ["alembic_config", "current_revision", "upgrade"]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _prepare_sqlite(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str) -> None:
    """Bring the schema to the newest revision (creating it if empty)."""
    url = absolute_url(url)
    _prepare_sqlite(url)
    engine = create_engine(url, **configure_engine(url))
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    url = absolute_url(url)
    _prepare_sqlite(url)
    engine = create_engine(url, **configure_engine(url))
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            from sqlalchemy import text

            return connection.execute(text("select version_num from alembic_version")).scalar()
    finally:
        engine.dispose()
