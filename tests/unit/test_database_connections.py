"""Pooled PostgreSQL connections: checked only after sitting idle, and a dead
one is replaced before a request sees it (the server restarted, a firewall
dropped the socket)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from idp import db as database
from idp.db import db
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
