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

import collections
import contextlib
import contextvars
import datetime as dt
import functools
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn, ParamSpec, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Insert, MetaData, Row, Select, Text, TypeDecorator, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, registry
from sqlalchemy.pool import Pool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "AnyRow",
    "Base",
    "JsonList",
    "UtcDateTime",
    "absolute_url",
    "configure_engine",
    "db",
    "json_object",
    "new_identifier",
    "new_secret",
    "read_in_transaction",
    "read_one",
    "refuse",
    "rowcount",
    "secret_hash",
    "service",
    "write",
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


def configure_engine(url: str) -> dict[str, Any]:
    """Engine options per backend.

    SQLite (the laptop default) waits for a lock instead of failing at once
    and runs in WAL mode so that readers do not block the writer.  A
    PostgreSQL connection is checked before use only when it sat idle a
    while (:func:`_ping_if_idle`), not on every checkout as ``pool_pre_ping``
    would: that round trip cost a third of the throughput of introspection
    and UserInfo (``make bench``)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_size": 10, "max_overflow": 20}


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


def _is_sqlite(dbapi_connection: Any) -> bool:
    return type(dbapi_connection).__module__.startswith("sqlite3")


@event.listens_for(Engine, "before_cursor_execute")
def _queue_for_the_write(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    info = conn.connection.info
    if (
        info.get("writing")
        or not statement.lstrip()[:7].lower().startswith(_WRITES)
        or not _is_sqlite(conn.connection.dbapi_connection)
    ):
        return
    _SQLITE_WRITER.acquire()
    info["writing"] = True


def _done_writing(info: dict[str, Any]) -> None:
    if info.pop("writing", False):
        _SQLITE_WRITER.release()


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(conn: Any) -> None:
    _done_writing(conn.connection.info)


@event.listens_for(Pool, "reset")
def _connection_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
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


class _Prepared:
    """A statement compiled once for one dialect, with the converters of its
    parameters and columns: what Core does on every execution, done once.

    Every value must be given: a column default computed in Python would
    need Core's execution context, so such a statement is refused here."""

    __slots__ = ("binds", "positional", "processors", "row", "sql", "writes")

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: tuple[str, ...] | None
    ) -> None:
        if isinstance(statement, Insert):
            # Nothing reads back a generated key: no RETURNING clause to send and parse.
            statement = statement.inline()
        compiled: Any = statement.compile(
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise TypeError("a prepared statement must be given every value")
        self.sql = compiled.string
        self.writes = not isinstance(statement, Select)
        self.positional = compiled.positional
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        self.binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names or ()
        ]
        columns = statement.selected_columns if isinstance(statement, Select) else ()
        self.processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.row: Any = collections.namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]

    def parameters(self, params: dict[str, Any]) -> Any:
        values = [
            (name, params[name] if process is None else process(params[name]))
            for name, process in self.binds
        ]
        return tuple(v for _, v in values) if self.positional else dict(values)

    def make_row(self, raw: Any) -> Any:
        pairs = zip(self.processors, raw, strict=True)
        return self.row(*(v if process is None else process(v) for process, v in pairs))


_PREPARED: dict[tuple[ClauseElement, type[Dialect], tuple[str, ...] | None], _Prepared] = {}


def _prepared(
    statement: ClauseElement, dialect: Dialect, column_keys: tuple[str, ...] | None = None
) -> _Prepared:
    key = (statement, type(dialect), column_keys)
    prepared = _PREPARED.get(key)
    if prepared is None:
        prepared = _PREPARED[key] = _Prepared(statement, dialect, column_keys)
    return prepared


KEPT_READ_CONNECTIONS = 8
"""Connections a process keeps checked out for :func:`read_one`: as many as
a worker's request threads read at once (more than 8 threads add nothing,
``docs/production.md``), leaving most of the pool (15 on SQLite, 30 on
PostgreSQL) to the requests' transactions.  Past it a read takes one from
the pool and hands it back."""


def read_one(statement: Select[*tuple[Any, ...]], params: dict[str, Any]) -> AnyRow | None:
    """One row, read outside the request's transaction: for the look-ups of
    the hottest read-only paths (an access token at introspection and
    UserInfo, the member at UserInfo).  Never for a row this request may
    have written.

    ``statement`` is a module-level select: it is compiled once per dialect
    and then run on the driver's own cursor, in autocommit (one round trip,
    no transaction to begin or roll back), on a connection kept for such
    reads (:class:`_KeptReadConnections`).  Core's execution pipeline and an
    isolation-level switch per call cost some 190 µs on SQLite where the
    query itself takes 8; taking the connection from the pool for each read
    and handing it back cost a fifth of introspection's throughput on
    PostgreSQL (``make bench``).  The row reads by attribute name, like
    Core's, with the same types.  A connection found dead (the database
    restarted) is closed and the read tried once more on another."""
    engine = db.engine
    prepared = _prepared(statement, engine.dialect)
    parameters = prepared.parameters(params)
    dbapi_error = engine.dialect.loaded_dbapi.Error
    kept = _KeptReadConnections.of(engine)
    tries = 2
    while True:
        connection = kept.take(engine)
        try:
            cursor = connection.cursor()
            cursor.execute(prepared.sql, parameters)
            raw = cursor.fetchone()
            cursor.close()
        except dbapi_error as e:
            tries -= 1
            lost = engine.dialect.is_disconnect(e, connection.dbapi_connection, None)
            kept.discard(connection, e)
            if not (lost and tries):
                raise DBAPIError.instance(prepared.sql, parameters, e, dbapi_error) from e
        except BaseException as e:
            kept.discard(connection, e)
            raise
        else:
            kept.give_back(connection)
            return None if raw is None else prepared.make_row(raw)


class _KeptReadConnections:
    """Pooled connections an engine's :func:`read_one` keeps checked out, in
    autocommit on PostgreSQL (SQLite's driver begins nothing for a SELECT),
    shared by the process's threads: the last one given back is the next
    one taken (a ``deque``, no lock on that path).

    At most :data:`KEPT_READ_CONNECTIONS` are kept; they count against the
    pool like any other.  Disposing of the engine closes them.  Nothing is
    tied to a thread: threads come and go (granian ends idle ones)."""

    _of_engine: ClassVar[dict[Engine, _KeptReadConnections]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, engine: Engine) -> None:
        self.pool = engine.pool
        self.autocommit = engine.dialect.name == "postgresql"
        self.idle: collections.deque[Any] = collections.deque()
        self.kept: set[int] = set()
        self.lock = threading.Lock()
        self.closed = False

    @classmethod
    def of(cls, engine: Engine) -> _KeptReadConnections:
        kept = cls._of_engine.get(engine)
        if kept is None or kept.pool is not engine.pool:
            with cls._registry_lock:
                kept = cls._of_engine.get(engine)
                if kept is None or kept.pool is not engine.pool:
                    if kept is not None:
                        kept.close()
                    kept = cls._of_engine[engine] = cls(engine)
        return kept

    def take(self, engine: Engine) -> Any:
        with contextlib.suppress(IndexError):
            return self.idle.pop()
        connection = engine.raw_connection()
        try:
            if self.autocommit:
                connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        except BaseException as e:
            connection.invalidate(e)
            connection.close()
            raise
        with self.lock:
            if not self.closed and len(self.kept) < KEPT_READ_CONNECTIONS:
                self.kept.add(id(connection))
        return connection

    def give_back(self, connection: Any) -> None:
        if self.closed:  # its pool was disposed of, and would keep it open
            self.discard(connection, None)
        elif id(connection) in self.kept:
            self.idle.append(connection)
        else:
            self._hand_back(connection)

    def discard(self, connection: Any, error: BaseException | None) -> None:
        """Closed for good: whatever went wrong, it is not used again."""
        with self.lock:
            self.kept.discard(id(connection))
        connection.invalidate(error)
        connection.close()

    def close(self) -> None:
        """Close the kept connections (their pool is being disposed of);
        those in use are handed back when their read ends."""
        with self.lock:
            self.closed = True
            idle, self.idle = list(self.idle), collections.deque()
            self.kept.clear()
        for connection in idle:
            connection.invalidate()
            connection.close()

    def _hand_back(self, connection: Any) -> None:
        """Back to the pool, out of autocommit: the ORM's next transaction
        on it must be a transaction."""
        with self.lock:
            self.kept.discard(id(connection))
        try:
            if self.autocommit:
                connection.dbapi_connection.autocommit = False
        except Exception as e:  # a dead connection: the pool opens a fresh one
            connection.invalidate(e)
        connection.close()

    @classmethod
    def forget_after_fork(cls) -> None:
        """In a forked child the parent's connections are not ours to use or close."""
        cls._of_engine = {}
        cls._registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_KeptReadConnections.forget_after_fork)


@event.listens_for(Engine, "engine_disposed")
def _close_kept_read_connections(engine: Engine) -> None:
    with _KeptReadConnections._registry_lock:
        kept = _KeptReadConnections._of_engine.pop(engine, None)
    if kept is not None:
        kept.close()


def write(statement: ClauseElement, params: dict[str, Any]) -> int:
    """Run a module-level INSERT, UPDATE or DELETE in the request's
    transaction and return the rows it matched (who won a conditional
    update).

    What :func:`read_one` does for the hottest reads, for the writes of the
    hottest issuance paths (a refresh, a code exchange): compiled once per
    dialect and the keys given, then run on the driver's cursor of the
    session's own connection, so it commits or rolls back with everything
    else.  A refresh's five statements cost ~0.5-1 ms less this way than
    through Core (in-process, SQLite; ``make bench``).  The session is
    flushed first, so rows the ORM holds are written before, in the order
    the code asked."""
    db.session.flush()
    # An INSERT compiles to the columns it is given; other statements name their own.
    keys = tuple(params) if isinstance(statement, Insert) else None
    _, cursor = _in_transaction(statement, params, keys)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


def read_in_transaction(statement: ClauseElement, params: dict[str, Any]) -> AnyRow | None:
    """One row of a module-level select, in the request's transaction (its
    locks, what it wrote): :func:`write`'s counterpart for reads.  The
    session is flushed first, as an ORM query would autoflush."""
    db.session.flush()
    prepared, cursor = _in_transaction(statement, params, None)
    try:
        raw = cursor.fetchone()
    finally:
        cursor.close()
    return None if raw is None else prepared.make_row(raw)


def _in_transaction(
    statement: ClauseElement, params: dict[str, Any], column_keys: tuple[str, ...] | None
) -> tuple[_Prepared, Any]:
    connection = db.session.connection()  # begins the session's transaction if need be
    dialect = connection.dialect
    prepared = _prepared(statement, dialect, column_keys)
    parameters = prepared.parameters(params)
    pooled = connection.connection
    if prepared.writes and _is_sqlite(pooled.dbapi_connection) and not pooled.info.get("writing"):
        # What _queue_for_the_write does for a statement Core runs.
        _SQLITE_WRITER.acquire()
        pooled.info["writing"] = True
    cursor = pooled.cursor()
    try:
        cursor.execute(prepared.sql, parameters)
    except dialect.loaded_dbapi.Error as e:
        cursor.close()
        if dialect.is_disconnect(e, pooled.dbapi_connection, cursor):
            connection.invalidate(e)
        raise DBAPIError.instance(prepared.sql, parameters, e, dialect.loaded_dbapi.Error) from e
    return prepared, cursor


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE: who won a conditional update."""
    return int(result.rowcount)
