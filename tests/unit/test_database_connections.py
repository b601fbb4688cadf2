"""Pooled PostgreSQL connections: checked only after sitting idle, and a dead
one is replaced before a request sees it (the server restarted, a firewall
dropped the socket).  Prepared reads (``idp.prepared.read_one``): the same rows as
Core's, on connections kept for them (so many at most, the rest handed back
as they were taken, all closed with their engine), and a read whose
connection died tried again on a fresh one.  Prepared writes and
reads in the request's transaction (``idp.prepared.write``,
``idp.prepared.read_in_transaction``): committed and rolled back with the rest,
errors as Core raises them, SQLite's writers still queued."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from idp import accounts, bearer_tokens, clock, members, prepared, rotation, tokens
from idp import db as database
from idp.answer_deadline import AnswerTimeout, DeadlineConnection
from idp.db import db
from idp.models import AccessToken, User
from idp.prepared import read_in_transaction, read_one, write
from tests.support.harness import Backend, app_for, make_settings


def test_an_idle_connection_that_died_is_replaced_unseen(
    app: Flask, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.kind != "postgresql":
        pytest.skip("SQLite has no server to lose a connection to")
    with app.app_context():
        before = db.session.execute(text("select pg_backend_pid()")).scalar_one()
        db.session.remove()  # back to the pool, idle
        killer = create_engine(str(db.engine.url))
        with killer.connect() as connection:
            connection.execute(text("select pg_terminate_backend(:pid)"), {"pid": before})
        killer.dispose()
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)

        after = db.session.execute(text("select pg_backend_pid()")).scalar_one()

    assert after != before


def test_a_prepared_read_returns_the_row_core_returns(app: Flask) -> None:
    with app.app_context():
        member = accounts.create(
            username="prepared",
            email="prepared@example.com",
            password="a long and unusual passphrase",
            birthdate=dt.date(1990, 4, 1),
            gender="female",
        )
        core = db.session.execute(members._MEMBER, {"user_id": member.id}).one()
        db.session.rollback()

        prepared = read_one(members._MEMBER, {"user_id": member.id})

    assert prepared is not None
    assert tuple(prepared) == tuple(core)
    assert prepared._fields == tuple(core._fields)
    assert prepared.birthdate == dt.date(1990, 4, 1)
    assert prepared.created_at.tzinfo is not None
    assert prepared.email_verified is False


def test_a_prepared_read_of_nothing_is_none(app: Flask) -> None:
    with app.app_context():
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "no such token"}) is None


def _count_checkouts(engine: Any) -> list[int]:
    taken: list[int] = []
    event.listen(engine.pool, "checkout", lambda *_: taken.append(1))
    return taken


def test_reads_reuse_a_kept_connection_whatever_the_thread(app: Flask) -> None:
    with app.app_context():
        taken = _count_checkouts(db.engine)
        for _ in range(5):
            read_one(members._MEMBER, {"user_id": "nobody"})
        other: list[Any] = []
        thread = threading.Thread(
            target=lambda: other.append(_read_in_app(app, bearer_tokens._ACCESS_TOKEN_ROW, "x"))
        )
        thread.start()
        thread.join()

    assert len(taken) == 1
    assert other == [None]


def _read_in_app(app: Flask, statement: Any, jti: str) -> Any:
    with app.app_context():
        return read_one(statement, {"jti": jti})


def test_only_so_many_connections_are_kept_and_the_rest_go_back_out_of_autocommit(
    app: Flask,
) -> None:
    """Reads at once past the limit take a connection from the pool and
    hand it back as the ORM expects it: out of autocommit on PostgreSQL."""
    handed_back: list[Any] = []

    def note(dbapi_connection: Any, record: Any) -> None:
        handed_back.append(getattr(dbapi_connection, "autocommit", False))

    limit = prepared.KEPT_READ_CONNECTIONS
    with app.app_context():
        engine = db.engine
        before = engine.pool.checkedout()  # type: ignore[attr-defined]
        event.listen(engine.pool, "checkin", note)
        kept = prepared._KeptReadConnections.of(engine)
        at_once = [kept.take(engine) for _ in range(limit + 4)]  # as many reads in flight
        for connection in at_once:
            kept.give_back(connection)
        still_out = engine.pool.checkedout() - before  # type: ignore[attr-defined]
        event.remove(engine.pool, "checkin", note)

        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "x"}) is None

    assert still_out == limit
    assert handed_back == [False] * 4


def test_disposing_of_the_engine_closes_the_kept_connections(app: Flask) -> None:
    """Nothing stays open behind a pool that was disposed of (pytest fails
    a test whose connection is garbage-collected open), and reads go on."""
    with app.app_context():
        read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "x"})
        kept = prepared._KeptReadConnections.of(db.engine)
        (connection,) = kept.idle
        db.engine.dispose()

        assert connection.dbapi_connection is None  # closed
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "x"}) is None
        assert db.engine.pool.checkedout() == 1  # type: ignore[attr-defined]


def test_a_read_whose_connection_died_is_tried_again_on_a_fresh_one(
    app: Flask, backend: Backend
) -> None:
    """The database restarted, or a firewall dropped the idle socket: the
    read succeeds all the same."""
    if backend.kind != "postgresql":
        pytest.skip("SQLite has no server to lose a connection to")
    backend_pid = select(func.pg_backend_pid().label("pid"))
    with app.app_context():
        first = read_one(backend_pid, {})
        assert first is not None
        killer = create_engine(str(db.engine.url))
        with killer.connect() as connection:
            connection.execute(
                text(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            )
        killer.dispose()

        after = read_one(backend_pid, {})

    assert after is not None
    assert after.pid != first.pid


def test_statements_run_on_one_cursor_per_connection(app: Flask) -> None:
    """A psycopg cursor per statement cost ~20 µs of a 45 µs key look-up:
    the kept connection's reads, and a transaction's prepared statements,
    each reuse the cursor of their connection."""
    with app.app_context():
        read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "x"})
        (kept,) = prepared._KeptReadConnections.of(db.engine).idle
        first = kept.info[prepared._CURSOR]
        read_one(members._MEMBER, {"user_id": "nobody"})

        write(tokens._INSERT_ACCESS_TOKEN, _access_token("one cursor"))
        in_transaction = db.session.connection().connection.info[prepared._CURSOR]
        assert read_in_transaction(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "one cursor"})
        db.session.commit()

        assert kept.info[prepared._CURSOR] is first
        assert db.session.connection().connection.info[prepared._CURSOR] is in_transaction
        db.session.rollback()


def test_a_kept_cursor_holds_no_read_snapshot_on_sqlite(app: Flask, backend: Backend) -> None:
    """A SQLite statement left unfinished holds its snapshot, and no
    checkpoint gets past it (the write-ahead log grows): a found row, read
    either way, leaves nothing open behind it."""
    if backend.kind != "sqlite":
        pytest.skip("a PostgreSQL cursor holds its whole result, and no snapshot")
    with app.app_context():
        write(tokens._INSERT_ACCESS_TOKEN, _access_token("found"))
        db.session.commit()
        assert read_in_transaction(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "found"})
        db.session.commit()
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "found"})
        write(tokens._INSERT_ACCESS_TOKEN, _access_token("after"))
        db.session.commit()

        path = db.engine.url.database
        other = sqlite3.connect(str(path))
        try:
            busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            other.close()

    assert busy == 0


def test_a_read_that_fails_otherwise_is_not_tried_again(app: Flask) -> None:
    broken = select(func.no_such_function().label("x"))
    with app.app_context():
        taken = _count_checkouts(db.engine)
        with pytest.raises(DBAPIError):
            read_one(broken, {})
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "x"}) is None

    assert len(taken) == 2  # the failed read's connection was not used again


def _access_token(jti: str) -> dict[str, Any]:
    now = clock.now()
    return {
        "jti": jti,
        "client_id": "client",
        "user_id": None,
        "session_id": None,
        "family_id": None,
        "scope": "openid",
        "issued_at": now,
        "expires_at": now + dt.timedelta(minutes=5),
        "revoked_at": None,
    }


def test_a_prepared_write_commits_and_rolls_back_with_the_transaction(app: Flask) -> None:
    with app.app_context():
        assert write(tokens._INSERT_ACCESS_TOKEN, _access_token("rolled-back")) == 1
        seen = read_in_transaction(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "rolled-back"})
        db.session.rollback()
        assert write(tokens._INSERT_ACCESS_TOKEN, _access_token("committed")) == 1
        db.session.commit()

        assert seen is not None
        assert seen.scope == "openid"
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "rolled-back"}) is None
        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "committed"}) is not None


def test_a_prepared_update_counts_the_rows_it_matched(app: Flask) -> None:
    spend = rotation._SPEND_REFRESH_TOKEN
    with app.app_context():
        now = clock.now()
        assert write(spend, {"token_id": 12345, "now": now, "spent_now": now}) == 0
        db.session.rollback()


def test_a_read_in_the_transaction_sees_what_the_orm_holds(app: Flask) -> None:
    with app.app_context():
        db.session.add(AccessToken(**_access_token("pending")))  # not flushed yet

        row = read_in_transaction(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "pending"})
        db.session.rollback()

    assert row is not None


def test_a_prepared_write_fails_as_core_would_and_the_session_goes_on(app: Flask) -> None:
    with app.app_context():
        write(tokens._INSERT_ACCESS_TOKEN, _access_token("twice"))
        with pytest.raises(IntegrityError):
            write(tokens._INSERT_ACCESS_TOKEN, _access_token("twice"))
        db.session.rollback()
        write(tokens._INSERT_ACCESS_TOKEN, _access_token("twice"))
        db.session.commit()

        assert read_one(bearer_tokens._ACCESS_TOKEN_ROW, {"jti": "twice"}) is not None


def test_a_statement_that_needs_a_python_default_is_refused(app: Flask) -> None:
    """``users.name`` has a default Core would fill in; a prepared write does not guess."""
    with app.app_context(), pytest.raises(TypeError, match="every value"):
        write(insert(User.__table__), {"id": "u", "username": "u", "email": "u@example.com"})


def test_prepared_writes_of_many_threads_all_land(app: Flask) -> None:
    """On SQLite every writer queues for the one write lock and releases it
    at commit; none waits forever, none is lost."""
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with app.app_context():
                for i in range(10):
                    write(tokens._INSERT_ACCESS_TOKEN, _access_token(f"thread-{n}-{i}"))
                    db.session.commit()
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert not database._SQLITE_WRITER.locked()
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(AccessToken).where(AccessToken.jti.like("thread-%"))
        )
    assert count == 40


def test_what_says_the_database_did_not_answer() -> None:
    """Answered 503 (``idp.errors.UnavailableError``); a wrong statement stays a fault."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import OperationalError, ProgrammingError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    refused = psycopg.OperationalError("connection failed: Connection refused")
    answered_503 = [
        refused,  # as the pool hands on a failed connect
        OperationalError("SELECT 1", {}, refused),
        OperationalError("UPDATE t", {}, sqlite3.OperationalError("database is locked")),
        PoolTimeoutError("QueuePool limit of size 10 overflow 20 reached"),
    ]
    faults = [
        OperationalError("SELECT x", {}, sqlite3.OperationalError("no such column: x")),
        ProgrammingError("SELECT", {}, psycopg.errors.UndefinedTable("no users")),
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        ValueError("not a database error"),
    ]

    assert [database.unavailable(e) for e in answered_503] == [True] * 4
    assert [database.unavailable(e) for e in faults] == [False] * 4


def test_a_postgresql_connection_gives_up_on_a_silent_server_unless_the_url_says() -> None:
    """libpq would wait as long as the kernel (minutes, for a host that does
    not answer or a path that died): a request gets its 503 after this."""
    url = "postgresql+psycopg://idp@db.example/idp"
    plain = database.configure_engine(url)
    chosen = database.configure_engine(url + "?connect_timeout=3&tcp_user_timeout=2000")

    assert plain["connect_args"] == {
        "connect_timeout": 10,
        "tcp_user_timeout": 15000,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    assert "connect_timeout" not in chosen["connect_args"]
    assert "tcp_user_timeout" not in chosen["connect_args"]
    engine = create_engine(url + "?connect_timeout=3&tcp_user_timeout=2000", **chosen)
    _, params = engine.dialect.create_connect_args(engine.url)
    assert params["connect_timeout"] == "3"
    assert params["tcp_user_timeout"] == "2000"


def test_a_statement_whose_answer_does_not_come_in_time_fails_and_its_connection_goes(
    backend: Backend,
) -> None:
    """``database.answer_timeout_seconds``: past it the statement fails as
    "unavailable" (a 503) and the connection, in an unknown state, is never
    handed out again; a statement answered in time is not affected."""
    if backend.kind != "postgresql":
        pytest.skip("a PostgreSQL server to wait for")
    url = backend.make_url("deadline_" + os.urandom(4).hex())
    engine = create_engine(url, **database.configure_engine(url, answer_timeout_seconds=1))
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert isinstance(driver, DeadlineConnection)
            assert driver.answer_timeout_seconds == 1
            assert connection.execute(text("select pg_sleep(0.2), 1")).one()[1] == 1
            started = time.monotonic()
            with pytest.raises(DBAPIError) as raised:
                connection.execute(text("select pg_sleep(30)"))
            waited = time.monotonic() - started
        assert 1 <= waited < 10
        assert database.unavailable(raised.value)
        assert "the database did not answer within 1 s" in str(raised.value)
        assert driver.closed
        with engine.connect() as connection:
            assert connection.connection.driver_connection is not driver
            assert connection.execute(text("select 2")).scalar_one() == 2
    finally:
        engine.dispose()


def test_the_provider_waits_for_answers_as_configured_and_migrations_always(
    app: Flask, backend: Backend
) -> None:
    if backend.kind != "postgresql":
        pytest.skip("SQLite's waits are for its lock (30 s), not for a server")
    url = str(db.engine.url.render_as_string(hide_password=False))
    with app.app_context(), db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert isinstance(driver, DeadlineConnection)
        assert driver.answer_timeout_seconds == 30  # the default
    assert database.configure_engine(url)["connect_args"].keys() == (
        database.POSTGRESQL_CONNECTION_DEFAULTS.keys()  # idp init's: no deadline
    )


def test_a_read_whose_answer_does_not_come_is_not_tried_again(
    backend: Backend, tmp_path: Path
) -> None:
    """A connection that died is worth one more try; a server that does not
    answer in time would only be waited for twice."""
    if backend.kind != "postgresql":
        pytest.skip("a PostgreSQL server to wait for")
    url = backend.migrated_url("silent_" + os.urandom(4).hex())
    settings = make_settings(
        tmp_path,
        database_url=url,
        issuer="http://localhost:5999",
        database_options="answer_timeout_seconds = 2",
    )
    locker = create_engine(url)
    try:
        with app_for(settings):
            member = accounts.create(
                username="silent",
                email="silent@example.com",
                password="a long and unusual passphrase",
            )
            with locker.begin() as connection:  # a read of users waits for this lock
                connection.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
                started = time.monotonic()
                with pytest.raises(DBAPIError) as raised:
                    members.find_committed(member.id)  # idp.prepared.read_one
                waited = time.monotonic() - started
    finally:
        locker.dispose()

    assert isinstance(raised.value.orig, AnswerTimeout)
    assert 2 <= waited < 4  # one wait of two seconds, not two
