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
reads what must not change underneath it.

The hottest paths' statements skip Core's execution pipeline:
``idp.prepared`` compiles them once and runs them on the driver's cursor."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    DateTime,
    MetaData,
    Row,
    Text,
    TypeDecorator,
    delete,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.pool import Pool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "AnyRow",
    "Base",
    "JsonList",
    "UtcDateTime",
    "absolute_url",
    "answers",
    "configure_engine",
    "db",
    "delete_batch",
    "json_object",
    "new_identifier",
    "new_secret",
    "queue_for_the_write",
    "refuse",
    "rowcount",
    "secret_hash",
    "service",
    "unavailable",
]

AnyRow = Row[*tuple[Any, ...]]
"""A result row of any columns (read by attribute name)."""

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


class json_object(FunctionElement[str]):  # noqa: N801 -- used like func.*
    """A JSON object built by the database, as text: ``json_object("sid",
    SessionClient.session_id, ...)`` takes key, value pairs.

    For rows written from a select without passing through Python (the
    outbox messages of a forced logout: ten thousand rows for a person with
    a thousand sessions).  SQLite's ``json_object`` and PostgreSQL's
    ``json_build_object`` both escape what they are given."""

    type = Text()
    inherit_cache = True


@compiles(json_object)
def _json_object(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "postgresql")
def _json_build_object(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(json_build_object({compiler.process(element.clauses, **kw)}) AS TEXT)"


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


def configure_engine(url: str, *, answer_timeout_seconds: int = 0) -> dict[str, Any]:
    """Engine options per backend.

    SQLite (the laptop default) waits for a lock instead of failing at once
    and runs in WAL mode so that readers do not block the writer.  A
    PostgreSQL connection is checked before use only when it sat idle a
    while (:func:`_ping_if_idle`), not on every checkout as ``pool_pre_ping``
    would: that round trip cost a third of the throughput of introspection
    and UserInfo (``make bench``).  With ``answer_timeout_seconds`` a
    PostgreSQL statement stops waiting for its answer after that long
    (``idp.answer_deadline``); 0 waits without end."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 20}
    given = make_url(url).query
    connect_args: dict[str, Any] = {
        k: v for k, v in POSTGRESQL_CONNECTION_DEFAULTS.items() if k not in given
    }
    if answer_timeout_seconds:
        from idp.answer_deadline import CONNECT_ARG

        connect_args[CONNECT_ARG] = answer_timeout_seconds
    if connect_args:
        options["connect_args"] = connect_args
    return options


@event.listens_for(Engine, "do_connect")
def _connect_with_a_deadline(
    dialect: Dialect, connection_record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> Any:
    """A PostgreSQL connection of an engine given an answer timeout is a
    ``DeadlineConnection``; None leaves the connection to the driver."""
    if dialect.name != "postgresql":
        return None
    from idp import answer_deadline

    return answer_deadline.connect(cargs, cparams)


CONNECT_TIMEOUT_SECONDS = 10
"""How long a new PostgreSQL connection may take, unless the URL says
(``?connect_timeout=N``)."""

UNACKNOWLEDGED_MILLISECONDS = 15_000
"""How long data sent to PostgreSQL may go unacknowledged before the
connection counts as lost (libpq's ``tcp_user_timeout``)."""

POSTGRESQL_CONNECTION_DEFAULTS: dict[str, int] = {
    # libpq waits as long as the kernel does: about two minutes for a new
    # connection to a host that does not answer, and some fifteen for a
    # statement sent on a path that died (a failover moved the address, a
    # firewall forgot the connection) -- a request thread held as long.
    # With these a request gets its 503 (``unavailable``) in seconds.
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "tcp_user_timeout": UNACKNOWLEDGED_MILLISECONDS,
    # An idle pooled connection on a dead path is found by keepalives
    # (after 30 s idle, three probes 10 s apart), not by the next request.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""libpq parameters of every PostgreSQL connection; one the URL gives
(``?tcp_user_timeout=5000``) is the URL's."""


def unavailable(e: BaseException) -> bool:
    """Whether ``e`` says the database did not answer, rather than that a
    statement was wrong: a connection refused, dropped or timed out, the
    server shutting down or out of resources (psycopg's OperationalError:
    SQLSTATE classes 08, 53, 57...), the pool exhausted, SQLite's lock held
    past its timeout.  Those are answered 503, not 500 (``idp.errors``)."""
    if isinstance(e, PoolTimeoutError):
        return True
    driver_error: BaseException | None = e  # the pool hands a failed connect on unwrapped
    if isinstance(e, DBAPIError):
        if e.connection_invalidated:
            return True
        driver_error = e.orig
    if isinstance(driver_error, sqlite3.OperationalError):
        return "locked" in str(driver_error) or "busy" in str(driver_error)
    import psycopg

    return isinstance(driver_error, psycopg.OperationalError)


def answers() -> bool:
    """Whether the database answers a trivial statement now, on a pooled
    connection (a health check); a wrong statement is not "no answer" and
    raises."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as e:
        if unavailable(e):
            return False
        raise
    return True


IDLE_PING_SECONDS = 5.0
"""A pooled connection unused this long is pinged before it is handed out:
the database may have restarted, or a firewall dropped the idle socket."""


@event.listens_for(Pool, "checkin")
def _note_idle(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """Ping a connection that sat idle; a dead one is replaced (the pool
    retries the checkout on DisconnectionError), so the request never sees it."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        return
    idle_since = connection_record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as e:  # any failure of the ping means: not this connection
        raise DisconnectionError("an idle connection did not answer") from e


# --- SQLite: one writer at a time, queued in the process -----------------------------
#
# SQLite lets one transaction write at a time; a second one is put to sleep
# by its busy handler (1, 2, 5, 10 ... ms) and retries, so under load writers
# sleep through most of the time the lock is free.  Threads of one process
# therefore queue for the write on a lock of their own, taken at a
# transaction's first write and released when it ends, and wake the moment
# it is free.  Other processes (another worker, the CLI) still meet the
# busy handler.

_SQLITE_WRITER = threading.Lock()
_WRITES = ("insert", "update", "delete", "replace")


def queue_for_the_write(pooled: Any) -> None:
    """On SQLite, wait for the process's write lock unless this transaction
    on the pooled connection ``pooled`` holds it already: for the writes
    Core runs (:func:`_queue_for_the_write`) and for those run on the
    driver's cursor (``idp.prepared``)."""
    if _is_sqlite(pooled.dbapi_connection) and not pooled.info.get("writing"):
        _SQLITE_WRITER.acquire()
        pooled.info["writing"] = True


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "before_cursor_execute")
def _queue_for_the_write(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if statement.lstrip()[:7].lower().startswith(_WRITES):
        queue_for_the_write(conn.connection)


def _done_writing(info: dict[str, Any]) -> None:
    if info.pop("writing", False):
        _SQLITE_WRITER.release()


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(conn: Any) -> None:
    if not conn.invalidated:  # a lost connection has no DBAPI connection to ask
        _done_writing(conn.connection.info)


@event.listens_for(Pool, "reset")
def _connection_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    _done_writing(connection_record.info)


@event.listens_for(Pool, "invalidate")
def _connection_lost(dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
    _done_writing(connection_record.info)


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
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
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
        if depth == 0 and db.session.registry.has():
            # No session yet: the service touched no database (a machine
            # token), and opening one only to commit nothing costs ~0.1 ms.
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


def delete_batch(model: Any, *where: Any, batch: int) -> int:
    """Delete at most ``batch`` rows of ``model`` matching ``where`` (joins
    the caller's transaction); returns how many went.

    For the worker's purges, a batch per transaction: ten minutes of expired
    tokens of a busy provider is a long statement, holding its locks and
    its transaction open, and it would have to finish within
    ``database.answer_timeout_seconds`` or be rolled back -- and meet more
    rows the next time."""
    key = inspect(model).primary_key[0]
    chosen = select(key).where(*where).limit(batch).scalar_subquery()
    statement = delete(model).where(key.in_(chosen)).execution_options(synchronize_session=False)
    return rowcount(db.session.execute(statement))


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE: who won a conditional update."""
    return int(result.rowcount)
