"""Statements compiled once and run on the driver's own cursor: the reads
and writes of the hottest paths (a token's introspection and UserInfo, a
refresh, a code exchange).

Core's execution pipeline costs some 190 µs per statement on SQLite where
the statement itself takes 8 (``make bench``).  A module-level statement is
compiled here once per dialect, with the converters of its parameters and
columns, and run on the driver's cursor: :func:`read_one` outside the
request's transaction, on connections kept checked out for it;
:func:`write` and :func:`read_in_transaction` on the session's own
connection, so they commit and roll back with everything else.  Rows read
by attribute name, like Core's, with the same types; driver errors come out
as SQLAlchemy's."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from typing import Any, ClassVar

from sqlalchemy import Insert, Select, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ClauseElement

from idp.db import AnyRow, db, queue_for_the_write

__all__ = ["KEPT_READ_CONNECTIONS", "read_in_transaction", "read_one", "write"]


class _Prepared:
    """A statement compiled once for one dialect, with the converters of its
    parameters and columns: what Core does on every execution, done once.

    Every value must be given: a column default computed in Python would
    need Core's execution context, so such a statement is refused here."""

    __slots__ = ("binds", "converted", "positional", "row", "sql", "writes")

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
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        # Only the columns whose type converts the driver's value (a UTC
        # timestamp, say): most arrive as they are to be read.
        self.converted = [(i, p) for i, p in enumerate(processors) if p is not None]
        self.row: Any = collections.namedtuple("Row", [c.key for c in columns])  # type: ignore[misc]

    def parameters(self, params: dict[str, Any]) -> Any:
        values = [
            (name, params[name] if process is None else process(params[name]))
            for name, process in self.binds
        ]
        return tuple(v for _, v in values) if self.positional else dict(values)

    def make_row(self, raw: Any) -> Any:
        if not self.converted:
            return self.row._make(raw)
        values = list(raw)
        for index, process in self.converted:
            values[index] = process(values[index])
        return self.row._make(values)


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
    restarted) is closed and the read tried once more on another; not one
    whose answer did not come in time (``idp.answer_deadline``)."""
    engine = db.engine
    prepared = _prepared(statement, engine.dialect)
    parameters = prepared.parameters(params)
    dbapi_error = engine.dialect.loaded_dbapi.Error
    kept = _KeptReadConnections.of(engine)
    tries = 2
    while True:
        connection = kept.take(engine)
        try:
            cursor = _cursor_of(connection, engine.dialect)
            cursor.execute(prepared.sql, parameters)
            raw = cursor.fetchone()
        except dbapi_error as e:
            tries -= 1
            lost = engine.dialect.is_disconnect(e, connection.dbapi_connection, None)
            if lost and engine.dialect.name == "postgresql":
                from idp.answer_deadline import AnswerTimeout

                lost = not isinstance(e, AnswerTimeout)  # silent, not dead: no second wait
            kept.discard(connection, e)
            if not (lost and tries):
                raise DBAPIError.instance(prepared.sql, parameters, e, dbapi_error) from e
        except BaseException as e:
            kept.discard(connection, e)
            raise
        else:
            kept.give_back(connection)
            return None if raw is None else prepared.make_row(raw)


_CURSOR = "idp.prepared.cursor"


def _cursor_of(pooled: Any, dialect: Dialect) -> Any:
    """The one cursor this module runs statements on, per driver connection.

    Making a psycopg cursor for each statement cost some 20 µs of the 45 a
    key look-up took on the client's side (bench machine).  It lives in the
    pooled connection's ``info``, which goes with the driver's connection
    and is cleared when that is replaced.  On PostgreSQL it asks for results
    in the binary format, which psycopg loads to the same Python values with
    less parsing.

    A cursor left on a SELECT that has more rows keeps its statement open,
    and on SQLite that holds a read snapshot (no checkpoint gets past it):
    so every select here matches one row at most -- a key's -- and one
    :meth:`fetchone` steps it to its end."""
    cursor = pooled.info.get(_CURSOR)
    if cursor is None:
        options = {"binary": True} if dialect.name == "postgresql" else {}
        cursor = pooled.info[_CURSOR] = pooled.cursor(**options)
    return cursor


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
        those in use are closed when their read ends (:meth:`give_back`)."""
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
    return int(cursor.rowcount)


def read_in_transaction(statement: ClauseElement, params: dict[str, Any]) -> AnyRow | None:
    """One row of a module-level select, in the request's transaction (its
    locks, what it wrote): :func:`write`'s counterpart for reads.  The
    session is flushed first, as an ORM query would autoflush."""
    db.session.flush()
    prepared, cursor = _in_transaction(statement, params, None)
    raw = cursor.fetchone()
    return None if raw is None else prepared.make_row(raw)


def _in_transaction(
    statement: ClauseElement, params: dict[str, Any], column_keys: tuple[str, ...] | None
) -> tuple[_Prepared, Any]:
    connection = db.session.connection()  # begins the session's transaction if need be
    dialect = connection.dialect
    prepared = _prepared(statement, dialect, column_keys)
    parameters = prepared.parameters(params)
    pooled = connection.connection
    if prepared.writes:
        queue_for_the_write(pooled)
    cursor = _cursor_of(pooled, dialect)
    try:
        cursor.execute(prepared.sql, parameters)
    except dialect.loaded_dbapi.Error as e:
        if dialect.is_disconnect(e, pooled.dbapi_connection, cursor):
            connection.invalidate(e)
        raise DBAPIError.instance(prepared.sql, parameters, e, dialect.loaded_dbapi.Error) from e
    return prepared, cursor
