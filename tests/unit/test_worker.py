"""The outbox worker: back-off, give-up, and never twice after a 2xx."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from idp import accounts, backchannel, clients, clock, events, outbox, worker
from idp.db import db
from idp.errors import UsageError
from idp.models import OutboxMessage
from tests.support.receiver import LogoutReceiver


@pytest.fixture
def frozen_clock() -> Iterator[None]:
    clock.freeze()
    yield
    clock.unfreeze()


def test_backoff_doubles_from_one_second_to_at_most_thirty() -> None:
    assert [worker.backoff(n).total_seconds() for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def _queue_logout(uri: str) -> str:
    member = accounts.create(username="hanako", email="h@example.com", password="a long passphrase")
    rp = clients.create(
        name="Shop",
        redirect_uris=["https://shop.example/cb"],
        backchannel_logout_uri=uri,
        allow_private_uris=True,
    )
    outbox.enqueue_many(
        backchannel.KIND,
        [{"client_id": rp.client.client_id, "uri": uri, "sid": "sid-1", "sub": member.id}],
        ttl=dt.timedelta(hours=24),
    )
    db.session.commit()
    return member.id


def test_a_failed_delivery_is_retried_after_the_backoff(app: Flask, frozen_clock: None) -> None:
    down = LogoutReceiver()  # nothing listens on its port
    _queue_logout(down.uri)
    assert worker.run_once() == 1
    assert worker.run_once() == 0  # not due yet
    clock.advance(seconds=1)
    assert worker.run_once() == 1
    clock.advance(seconds=1)
    assert worker.run_once() == 0  # second back-off is 2 s
    row = db.session.scalar(select(OutboxMessage))
    assert row is not None
    assert row.attempts == 2
    assert row.delivered_at is None
    assert "127.0.0.1" in (row.last_error or "")


def test_after_retry_hours_the_logout_is_recorded_as_undelivered(
    app: Flask, frozen_clock: None
) -> None:
    user_id = _queue_logout(LogoutReceiver().uri)
    worker.run_once()
    clock.advance(hours=24, seconds=1)
    worker.run_once()
    row = db.session.scalar(select(OutboxMessage))
    assert row is not None
    assert row.failed_at is not None
    kinds = [e.kind for e in events.list_for_user(user_id)]
    assert "backchannel_logout.undelivered" in kinds


def test_a_2xx_is_never_sent_again(app: Flask, frozen_clock: None) -> None:
    receiver = LogoutReceiver().up()
    try:
        _queue_logout(receiver.uri)
        assert worker.run_once() == 1
        clock.advance(minutes=5)
        assert worker.run_once() == 0
        assert len(receiver.tokens) == 1
    finally:
        receiver.down()


def test_a_non_2xx_answer_is_retried(app: Flask, frozen_clock: None) -> None:
    receiver = LogoutReceiver().up()
    receiver.status = 503
    try:
        _queue_logout(receiver.uri)
        worker.run_once()
        receiver.status = 204
        clock.advance(seconds=1)
        worker.run_once()
        assert len(receiver.tokens) == 2
        row = db.session.scalar(select(OutboxMessage))
        assert row is not None
        assert row.delivered_at is not None
    finally:
        receiver.down()


def test_each_attempt_carries_a_fresh_token(app: Flask, frozen_clock: None) -> None:
    receiver = LogoutReceiver().up()
    receiver.status = 500
    try:
        _queue_logout(receiver.uri)
        worker.run_once()
        clock.advance(seconds=1)
        worker.run_once()
        first, second = receiver.tokens
        assert first != second
    finally:
        receiver.down()


@pytest.mark.parametrize(
    "uri", ["https://10.0.0.1/logout", "https://127.0.0.1/logout", "https://[::1]/logout"]
)
def test_a_private_back_channel_address_is_refused_unless_allowed(app: Flask, uri: str) -> None:
    with pytest.raises(UsageError, match="private address"):
        clients.create(
            name="Evil",
            redirect_uris=["https://evil.example/cb"],
            backchannel_logout_uri=uri,
            allow_private_uris=False,
        )


def test_the_purge_deletes_in_batches_each_committed_and_keeps_what_is_due(
    app: Flask, frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No purge is one long statement: with batches of 3, seven finished
    messages go in three transactions; one still to deliver stays."""
    monkeypatch.setattr(worker, "PURGE_BATCH", 3)
    member = accounts.create(username="hanako", email="h@example.com", password="a long passphrase")
    items = [
        {"uri": "https://shop.example/logout", "sid": f"sid-{n}", "sub": member.id}
        for n in range(8)
    ]
    outbox.enqueue_many(backchannel.KIND, items, ttl=dt.timedelta(hours=24))
    db.session.commit()
    finished = db.session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)).all()[:7]
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(finished)).values(delivered_at=clock.now())
    )
    db.session.commit()
    clock.advance(days=8)
    statements: list[str] = []
    commits: list[bool] = []

    def note_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip())

    def note_commit(conn: Any) -> None:
        commits.append(True)

    event.listen(db.engine, "before_cursor_execute", note_statement)
    event.listen(db.engine, "commit", note_commit)
    try:
        worker.purge_expired()
    finally:
        event.remove(db.engine, "before_cursor_execute", note_statement)
        event.remove(db.engine, "commit", note_commit)

    remaining = db.session.scalars(select(OutboxMessage.id)).all()
    assert len(remaining) == 1
    assert remaining[0] not in finished
    deletes = [s.split()[:3] for s in statements if s.startswith("DELETE")]
    assert deletes.count(["DELETE", "FROM", OutboxMessage.__tablename__]) == 3
    assert len(commits) == len(worker._PURGES) + 2  # one per batch
