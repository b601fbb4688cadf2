"""A PostgreSQL connection that stops waiting for an answer.

``tcp_user_timeout`` and keepalives (``idp.db.POSTGRESQL_CONNECTION_DEFAULTS``)
end a wait on a network path that died.  They cannot end one on a server
that is there but does not answer: a stopped or paused machine or VM whose
kernel still acknowledges, storage that hangs under the database, a process
frozen by a debugger.  libpq then waits as long as it takes -- without end
-- and so does the request thread, until every thread of the node is
waiting and it stops answering anything, its health checks included.

psycopg consumes each operation (a statement, a commit) in one ``wait``
call, which takes a deadline; :class:`DeadlineConnection` gives every such
wait one.  When it passes, the connection is closed -- what it was in the
middle of is unknown, so it must never be used again -- and the statement
fails with :class:`AnswerTimeout`, a psycopg ``OperationalError``: the
database is unavailable, a 503 with ``Retry-After`` (``idp.db.unavailable``).

Engines ask for it through their ``connect_args`` (``CONNECT_ARG``), which
:func:`connect` takes out before psycopg sees them: ``idp.db`` wires it as
SQLAlchemy's ``do_connect`` hook."""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.pq import TransactionStatus

__all__ = ["CONNECT_ARG", "AnswerTimeout", "DeadlineConnection", "connect"]

RV = TypeVar("RV")

CONNECT_ARG = "idp_answer_timeout_seconds"
"""The ``connect_args`` key that asks for a deadline, in seconds."""


class AnswerTimeout(psycopg.OperationalError):
    """The server's answer did not come in time; the connection is closed.

    Not a connection that died: trying again on another only waits again."""


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server ends by a deadline."""

    answer_timeout_seconds: float | None = None
    """Seconds one operation may wait for the server; None: without end."""

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        if timeout is None:
            timeout = self.answer_timeout_seconds
        try:
            return super().wait(gen, interval, timeout)
        except psycopg.errors.OperationalError as e:
            if timeout is None or self.pgconn.transaction_status != TransactionStatus.ACTIVE:
                raise
            # Still waiting for an answer: the deadline passed.  Whatever the
            # server does with the statement, this connection is done.
            self.close()
            raise AnswerTimeout(
                f"the database did not answer within {timeout:g} s; connection closed"
            ) from e


def connect(cargs: list[Any], cparams: dict[str, Any]) -> DeadlineConnection | None:
    """The connection to make (SQLAlchemy's ``do_connect``), or None for the
    driver's own when no deadline is asked for."""
    seconds = cparams.pop(CONNECT_ARG, None)
    if seconds is None:
        return None
    connection = DeadlineConnection.connect(*cargs, **cparams)
    connection.answer_timeout_seconds = float(seconds) or None
    return connection
