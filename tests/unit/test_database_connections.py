"""Pooled PostgreSQL connections: checked only after sitting idle, and a dead
one is replaced before a request sees it (the server restarted, a firewall
dropped the socket).  Prepared reads (``idp.db.read_one``): the same rows as
Core's, and connections handed back as they were taken."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.exc import DBAPIError

from idp import accounts, tokens
from idp import db as database
from idp.db import db, read_one
from tests.support.harness import Backend


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
        core = db.session.execute(accounts._MEMBER, {"user_id": member.id}).one()
        db.session.rollback()

        prepared = read_one(accounts._MEMBER, {"user_id": member.id})

    assert prepared is not None
    assert tuple(prepared) == tuple(core)
    assert prepared._fields == tuple(core._fields)
    assert prepared.birthdate == dt.date(1990, 4, 1)
    assert prepared.created_at.tzinfo is not None
    assert prepared.email_verified is False


def test_a_prepared_read_of_nothing_is_none(app: Flask) -> None:
    with app.app_context():
        assert read_one(tokens._ACCESS_TOKEN_ROW, {"jti": "no such token"}) is None


def test_a_prepared_read_hands_its_connection_back_out_of_autocommit(
    app: Flask, backend: Backend
) -> None:
    """On PostgreSQL the read runs in autocommit; the ORM's next transaction
    on that connection must be a transaction again."""
    if backend.kind != "postgresql":
        pytest.skip("SQLite's driver begins nothing for a SELECT")
    handed_back: list[Any] = []

    def note(dbapi_connection: Any, record: Any) -> None:
        handed_back.append(dbapi_connection.autocommit)

    with app.app_context():
        event.listen(db.engine.pool, "checkin", note)
        try:
            read_one(accounts._MEMBER, {"user_id": "nobody"})
        finally:
            event.remove(db.engine.pool, "checkin", note)

    assert handed_back == [False]


def test_a_prepared_read_on_a_dead_connection_fails_once_and_the_next_one_works(
    app: Flask, backend: Backend
) -> None:
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

        with pytest.raises(DBAPIError):  # the one pooled connection, not idle: no ping
            read_one(backend_pid, {})
        after = read_one(backend_pid, {})

    assert after is not None
    assert after.pid != first.pid
