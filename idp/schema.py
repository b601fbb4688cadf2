"""Creating and upgrading the database schema with Alembic.

``idp init`` calls :func:`upgrade`; it is safe to run again (Alembic
records the revision it reached).  A SQLite file's directory is created
first so that the embedded defaults need nothing prepared.  ``idp serve``,
``idp worker`` and every other command but ``init`` run only on the schema
this version was written for (:func:`check_current`): a deployment that
forgot ``idp init`` would otherwise fail at every statement that names a
new column."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from idp.db import absolute_url, configure_engine
from idp.errors import UsageError

if TYPE_CHECKING:
    from alembic.config import Config

    from idp.config import DatabaseSettings

__all__ = [
    "alembic_config",
    "check_current",
    "current_revision",
    "head_revision",
    "known_revisions",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"

_MIGRATION_FILE = re.compile(r"(\d{4})_\w+\.py")
"""A migration's file name starts with its revision: ``0011_what_it_does.py``."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config

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
    from alembic import command

    engine = create_engine(url, **configure_engine(url))
    try:
        with engine.begin() as connection:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


def current_revision(url: str, *, answer_timeout_seconds: int = 0) -> str | None:
    url = absolute_url(url)
    _prepare_sqlite(url)
    options = configure_engine(url, answer_timeout_seconds=answer_timeout_seconds)
    engine = create_engine(url, **options)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("select version_num from alembic_version")).scalar()
    finally:
        engine.dispose()


@functools.cache
def known_revisions() -> tuple[str, ...]:
    """This version's revisions, oldest first, read from the migrations'
    file names: they form one chain, each revision the next number (a unit
    test holds this against Alembic's own reading).  Checking the schema
    this way imports neither Alembic nor the migrations: ~0.13 s of the
    start of every ``idp`` command, of the server and of the worker."""
    names = (
        m.group(1)
        for f in (MIGRATIONS / "versions").iterdir()
        if (m := _MIGRATION_FILE.fullmatch(f.name))
    )
    return tuple(sorted(names))


def head_revision() -> str:
    """The revision this version's models are written for."""
    return known_revisions()[-1]


def check_current(database: DatabaseSettings) -> None:
    """UsageError unless ``database`` holds this version's schema.

    A schema that is behind (a new version deployed without ``idp init``)
    is refused, naming both revisions.  A revision this version does not
    know is left alone: a newer version migrated it, and going back a
    version after an additive migration is how a bad deploy is undone.
    Its answer is waited for as long as the application's statements are
    (``database.answer_timeout_seconds``)."""
    current = current_revision(database.url, answer_timeout_seconds=database.answer_timeout_seconds)
    if current is None:
        raise UsageError("the database has no schema yet: run 'idp init' first")
    head = head_revision()
    if current != head and current in known_revisions():
        raise UsageError(
            f"the database schema is at revision {current} and this version needs {head}: "
            "run 'idp init' (it migrates)"
        )
