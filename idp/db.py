"""The typed declarative base, the Flask-SQLAlchemy handle, column types and
the transaction boundary of a service.

``UtcDateTime`` exists because SQLite drops time zones: every datetime read
back is aware UTC on every backend, so comparisons with ``clock.now()`` never
mix naive and aware values (warehouse's ``TZDateTime`` does the same).

Transactions belong to services, not to the functions they call: a public
service is decorated with :func:`service`, which commits once when the
outermost service returns and rolls back when it raises; a service called by
another joins the caller's transaction.  Helpers and look-ups never commit.
A refusal that must leave a trace (a replayed code revokes what it issued; a
wrong password is counted) calls :func:`refuse`, which drops the request's
work, writes the trace in a transaction of its own and raises.

Row locks: where two transactions must not interleave (a token issued while
its session is forced out), the code takes ``FOR SHARE`` / ``FOR UPDATE``
locks on PostgreSQL, always sessions before tokens so that they cannot
deadlock.  SQLite has one writer at a time: a transaction's first write
takes the database lock, so the same code does its first write before it
reads what must not change underneath it."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Executable, MetaData, Row, Text, TypeDecorator, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, registry

__all__ = [
    "Base",
    "JsonList",
    "UtcDateTime",
    "absolute_url",
    "configure_engine",
    "db",
    "new_identifier",
    "new_secret",
    "read_one",
    "refuse",
    "rowcount",
    "secret_hash",
    "service",
]

P = ParamSpec("P")
R = TypeVar("R")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class JsonList(TypeDecorator[list[str]]):
    """A short list of strings (redirect URIs, amr) stored as JSON text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> Any:
        return None if value is None else json.dumps(list(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else list(json.loads(value))


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={dt.datetime: UtcDateTime()},
    )


db = SQLAlchemy(model_class=Base)


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret for codes, tokens and cookie values."""
    return secrets.token_urlsafe(nbytes)


def new_identifier(nbytes: int = 24) -> str:
    """A random public identifier (a ``sid``) that an operator can type on a
    command line: URL-safe, never starting with ``-`` (an option to argparse)."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def secret_hash(value: str) -> bytes:
    """SHA-256 of a high-entropy secret: what the database stores.

    Lookups go by this digest (an indexed equality), so the secret itself is
    never compared byte by byte against attacker input."""
    return hashlib.sha256(value.encode()).digest()


def configure_engine(url: str) -> dict[str, Any]:
    """Engine options per backend.

    SQLite (the laptop default) waits for a lock instead of failing at once
    and runs in WAL mode so that readers do not block the writer."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def absolute_url(url: str) -> str:
    """A SQLite URL with a relative path made absolute against the working
    directory (Flask-SQLAlchemy would otherwise put it in the instance
    folder, and Alembic would not)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        path, _, query = url[len(prefix) :].partition("?")
        absolute = str(Path(path).resolve())
        return prefix + absolute + (f"?{query}" if query else "")
    return url


_depth: contextvars.ContextVar[int] = contextvars.ContextVar("idp_service_depth", default=0)


def service(fn: Callable[P, R]) -> Callable[P, R]:
    """Make ``fn`` a transaction boundary: all written, or nothing.

    The outermost service call commits when it returns and rolls back when
    it raises; a service called from inside another joins its transaction,
    so that composing services never commits half of the work."""

    @functools.wraps(fn)
    def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
        depth = _depth.get()
        token = _depth.set(depth + 1)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            if depth == 0:
                db.session.rollback()
            raise
        finally:
            _depth.reset(token)
        if depth == 0:
            db.session.commit()
        return result

    return boundary


def refuse(error: Exception, *, record: Callable[[], None]) -> NoReturn:
    """Refuse a request and keep a trace of it.

    Whatever the request wrote so far is rolled back -- also by the services
    that called this one: the refusal ends the request, and no caller may
    catch ``error`` and carry on.  ``record`` then writes (the revocation of
    a replayed code's tokens, a failed sign-in) in a transaction of its own,
    committed before ``error`` is raised, so that the failure of the request
    cannot undo its consequences."""
    db.session.rollback()
    record()
    db.session.commit()
    raise error


def read_one(statement: Executable, params: dict[str, Any]) -> Row[Any] | None:
    """One row, read on a connection of its own, outside the request's
    transaction: for the look-ups of the hottest read-only paths (an access
    token at introspection and UserInfo), where the ORM session's set-up
    and tear-down cost more than the query.  Never for a row this request
    may have written."""
    with db.engine.connect() as connection:
        return connection.execute(statement, params).one_or_none()


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE: who won a conditional update."""
    return int(result.rowcount)
