"""A forced logout is a fixed number of statements, however much it ends."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event, func, insert, literal, select

from idp import accounts, backchannel, clients, clock, forced_logout
from idp.db import db, json_object, new_secret, secret_hash
from idp.models import AccessToken, OutboxMessage, RefreshToken, SessionClient, SignInSession


@contextmanager
def _count_statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(args[2])

    engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def _person_with(n_sessions: int, client_ids: list[str]) -> str:
    member = accounts.create(
        username=f"person{n_sessions}",
        email=f"person{n_sessions}@example.com",
        password="a long passphrase",
    )
    now = clock.now()
    session_rows, refresh_rows, access_rows, reached = [], [], [], []
    for i in range(n_sessions):
        sid = new_secret(24)
        session_rows.append(
            {
                "id": sid,
                "cookie_hash": secret_hash(new_secret()),
                "user_id": member.id,
                "ip": "192.0.2.1",
                "user_agent": "",
                "remember": bool(i % 2),
                "auth_time": now,
                "amr": ["pwd"],
                "acr": "",
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + dt.timedelta(days=1),
            }
        )
        for client_id in client_ids:
            reached.append({"session_id": sid, "client_id": client_id, "first_at": now})
            family = new_secret(24)
            refresh_rows.append(
                {
                    "token_hash": secret_hash(new_secret()),
                    "family_id": family,
                    "client_id": client_id,
                    "user_id": member.id,
                    "session_id": sid,
                    "scope": "openid",
                    "offline": False,
                    "auth_time": now,
                    "amr": ["pwd"],
                    "acr": "",
                    "created_at": now,
                    "expires_at": now + dt.timedelta(days=1),
                }
            )
            access_rows.append(
                {
                    "jti": new_secret(24),
                    "client_id": client_id,
                    "user_id": member.id,
                    "session_id": sid,
                    "family_id": family,
                    "scope": "openid",
                    "issued_at": now,
                    "expires_at": now + dt.timedelta(hours=1),
                }
            )
    db.session.execute(insert(SignInSession), session_rows)
    db.session.execute(insert(RefreshToken), refresh_rows)
    db.session.execute(insert(AccessToken), access_rows)
    db.session.execute(insert(SessionClient), reached)
    db.session.commit()
    return member.id


def test_ending_hundreds_of_sessions_takes_as_many_statements_as_ending_one(app: Flask) -> None:
    client_ids = [
        clients.create(
            name=f"Service {i}",
            redirect_uris=[f"https://s{i}.example/cb"],
            backchannel_logout_uri=f"https://s{i}.example/logout",
        ).client.client_id
        for i in range(8)
    ]
    one = _person_with(1, client_ids[:1])
    many = _person_with(300, client_ids)

    with _count_statements() as small:
        forced_logout.force_logout(
            user_id=one, reason=forced_logout.LogoutReason.ADMIN, actor="test"
        )
    with _count_statements() as large:
        report = forced_logout.force_logout(
            user_id=many, reason=forced_logout.LogoutReason.ADMIN, actor="test"
        )

    assert len(large) == len(small)
    assert len(report.session_ids) == 300
    assert sorted(report.notified_client_ids) == sorted(client_ids)
    live = db.session.scalar(
        select(func.count())
        .select_from(RefreshToken)
        .where(RefreshToken.user_id == many, RefreshToken.revoked_at.is_(None))
    )
    assert live == 0
    queued = db.session.scalar(select(func.count()).select_from(OutboxMessage))
    assert queued == 1 + 300 * 8


def test_every_queued_logout_names_its_service_session_and_person(app: Flask) -> None:
    """The messages are written by the database from a select: each
    (service, session) pair once, with the person and the service's URI,
    due now and kept for ``logout.retry_hours``."""
    quoted = clients.create(
        name="Quoted",
        redirect_uris=["https://q.example/cb"],
        backchannel_logout_uri="https://q.example/logout?next=%22x%22&lang=ja",
    ).client
    silent = clients.create(name="No back channel", redirect_uris=["https://n.example/cb"]).client
    person = _person_with(3, [quoted.client_id, silent.client_id])
    sids = set(db.session.scalars(select(SignInSession.id).where(SignInSession.user_id == person)))
    clock.freeze()
    try:
        report = forced_logout.force_logout(
            user_id=person, reason=forced_logout.LogoutReason.ADMIN, actor="test"
        )
        now = clock.now()
    finally:
        clock.unfreeze()

    messages = (
        db.session.execute(select(OutboxMessage).where(OutboxMessage.kind == backchannel.KIND))
        .scalars()
        .all()
    )
    assert report.notified_client_ids == (quoted.client_id,)
    assert sorted(json.loads(m.payload)["sid"] for m in messages) == sorted(sids)
    for message in messages:
        assert json.loads(message.payload) == {
            "client_id": quoted.client_id,
            "sid": json.loads(message.payload)["sid"],
            "sub": person,
            "uri": "https://q.example/logout?next=%22x%22&lang=ja",
        }
        assert message.created_at == message.next_attempt_at == now
        assert message.expires_at == now + dt.timedelta(hours=24)
        assert message.attempts == 0


def test_the_payload_the_database_builds_is_json_whatever_it_holds(app: Flask) -> None:
    odd = 'a "quoted" back\\slash, a tab\there, 日本語 and an emoji 🎌'
    built = db.session.scalar(select(json_object("text", literal(odd), "n", literal(7))))
    db.session.rollback()

    assert built is not None
    assert json.loads(built) == {"text": odd, "n": 7}
