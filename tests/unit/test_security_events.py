"""Security Event Tokens reach the services that know the person, once each.

Real loopback receivers play the relying services; the worker delivers
from the outbox as it does in production."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import accounts, clients, clock, consents, events, runtime, sessions, worker
from idp.db import db
from idp.models import Consent, OutboxMessage, SessionClient, User
from idp.security_events import KIND, SecurityEvent, queue
from tests.support.set_receiver import SetReceiver

ISSUER = "http://localhost:5999"  # the in-process app's issuer (tests/conftest.py)
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
QUEUED_AT = dt.datetime(2031, 5, 17, 9, 30, tzinfo=dt.UTC)
QUEUED_TS = int(QUEUED_AT.timestamp())


@pytest.fixture
def frozen_clock() -> Iterator[int]:
    clock.freeze(QUEUED_AT)
    yield QUEUED_TS
    clock.unfreeze()


@pytest.fixture
def receiver() -> Iterator[SetReceiver]:
    r = SetReceiver().up()
    yield r
    r.down()


@pytest.fixture
def other_receiver() -> Iterator[SetReceiver]:
    r = SetReceiver().up()
    yield r
    r.down()


def _person(username: str) -> str:
    return accounts.create(
        username=username, email=f"{username}@example.com", password="a long passphrase"
    ).id


def _client(name: str, events_uri: str | None = None) -> str:
    return clients.create(
        name=name,
        redirect_uris=[f"https://{name.lower()}.example/cb"],
        events_uri=events_uri,
        allow_private_uris=True,
    ).client.client_id


def _signed_in_at(user_id: str, *client_ids: str) -> None:
    sid = sessions.start(
        user_id=user_id,
        policy=runtime.current().settings.session,
        remember=False,
        amr=["pwd"],
        ip="192.0.2.1",
        user_agent="test",
    ).session.id
    for client_id in client_ids:
        sessions.record_client(sid, client_id)
    db.session.commit()


def _consented_to(user_id: str, client_id: str) -> None:
    consents.grant(user_id, client_id, frozenset({"openid", "profile"}))
    db.session.commit()


@dataclass(frozen=True)
class Shop:
    user_id: str
    client_id: str


@pytest.fixture
def shop(app: Flask, frozen_clock: int, receiver: SetReceiver) -> Shop:
    """A person signed in at one service that registered an events URI."""
    user_id = _person("hanako")
    client_id = _client("Shop", receiver.uri)
    _signed_in_at(user_id, client_id)
    return Shop(user_id=user_id, client_id=client_id)


def _queue(user_id: str, event: SecurityEvent, reason: str | None = None) -> list[str]:
    queued = queue(user_id=user_id, event=event, reason=reason)
    db.session.commit()
    return queued


def _verified(app: Flask, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, checked against the published JWKS."""
    jwks = KeySet.import_key_set(app.test_client().get("/jwks.json").get_json())
    decoded = jwt.decode(token, jwks, algorithms=["RS256", "ES256"])
    return dict(decoded.header), dict(decoded.claims)


def _rows() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def _kinds(user_id: str) -> list[tuple[str, str | None]]:
    return [(e.kind, e.client_id) for e in events.list_for_user(user_id)]


# --- who is told --------------------------------------------------------------


def test_exactly_the_clients_that_know_the_person_and_listen_are_queued(
    app: Flask, frozen_clock: int
) -> None:
    # Arrange: a session reached Shop (listens) and Blog (does not);
    # the person consented to News (listens); Bank (listens) knows only someone else
    user_id = _person("hanako")
    shop = _client("Shop", "http://127.0.0.1:9/events")
    blog = _client("Blog")
    news = _client("News", "http://127.0.0.1:9/news-events")
    bank = _client("Bank", "http://127.0.0.1:9/bank-events")
    _signed_in_at(user_id, shop, blog)
    _consented_to(user_id, news)
    _signed_in_at(_person("taro"), bank)
    # Act
    queued = _queue(user_id, SecurityEvent.ACCOUNT_DISABLED)
    # Assert
    assert queued == sorted([shop, news])
    payloads = [json.loads(row.payload) for row in _rows()]
    assert [row.kind for row in _rows()] == [KIND, KIND]
    assert sorted((p["client_id"], p["uri"]) for p in payloads) == sorted(
        [(shop, "http://127.0.0.1:9/events"), (news, "http://127.0.0.1:9/news-events")]
    )
    for p in payloads:
        assert p["sub"] == user_id
        assert p["event"] == RISC + "account-disabled"
        assert p["iat"] == frozen_clock
    assert len({p["jti"] for p in payloads}) == 2


def test_a_client_reached_in_a_session_and_by_consent_is_queued_once(
    app: Flask, frozen_clock: int
) -> None:
    user_id = _person("hanako")
    shop = _client("Shop", "http://127.0.0.1:9/events")
    _signed_in_at(user_id, shop)
    _signed_in_at(user_id, shop)
    _consented_to(user_id, shop)

    assert _queue(user_id, SecurityEvent.CREDENTIAL_CHANGE) == [shop]
    assert len(_rows()) == 1


def test_nothing_is_queued_for_a_person_no_listening_client_knows(
    app: Flask, frozen_clock: int
) -> None:
    user_id = _person("hanako")
    _signed_in_at(user_id, _client("Blog"))
    _signed_in_at(_person("taro"), _client("Bank", "http://127.0.0.1:9/events"))

    assert _queue(user_id, SecurityEvent.ACCOUNT_PURGED) == []
    assert _rows() == []


def test_a_reason_is_refused_for_an_event_that_carries_none(app: Flask, shop: Shop) -> None:
    with pytest.raises(ValueError, match="account-disabled"):
        queue(user_id=shop.user_id, event=SecurityEvent.ACCOUNT_ENABLED, reason="hijacking")


# --- what is sent -------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason", "uri", "payload"),
    [
        (
            SecurityEvent.ACCOUNT_DISABLED,
            "hijacking",
            RISC + "account-disabled",
            {"reason": "hijacking"},
        ),
        (SecurityEvent.ACCOUNT_DISABLED, None, RISC + "account-disabled", {}),
        (SecurityEvent.ACCOUNT_ENABLED, None, RISC + "account-enabled", {}),
        (SecurityEvent.ACCOUNT_PURGED, None, RISC + "account-purged", {}),
        (
            SecurityEvent.CREDENTIAL_CHANGE,
            None,
            CAEP + "credential-change",
            {"credential_type": "password", "change_type": "update", "event_timestamp": QUEUED_TS},
        ),
    ],
    ids=["disabled-with-reason", "disabled", "enabled", "purged", "credential-change"],
)
def test_the_set_is_pushed_signed_with_the_subject_and_one_event(
    app: Flask,
    frozen_clock: int,
    receiver: SetReceiver,
    shop: Shop,
    event: SecurityEvent,
    reason: str | None,
    uri: str,
    payload: dict[str, Any],
) -> None:
    _queue(shop.user_id, event, reason)
    clock.advance(seconds=30)  # delivered later than queued: iat is when it happened

    assert worker.run_once() == 1

    (received,) = receiver.received
    assert received.content_type == "application/secevent+jwt"
    header, claims = _verified(app, received.body.decode())
    assert header["typ"] == "secevent+jwt"
    assert header["kid"]
    assert claims == {
        "iss": ISSUER,
        "aud": shop.client_id,
        "iat": frozen_clock,
        "jti": json.loads(_rows()[0].payload)["jti"],
        "sub_id": {"format": "iss_sub", "iss": ISSUER, "sub": shop.user_id},
        "events": {uri: payload},
    }


# --- how it is delivered ------------------------------------------------------


@pytest.mark.parametrize("status", [200, 202, 204])
def test_any_2xx_is_delivered_and_never_sent_again(
    app: Flask, receiver: SetReceiver, shop: Shop, status: int
) -> None:
    receiver.status = status
    _queue(shop.user_id, SecurityEvent.ACCOUNT_ENABLED)

    assert worker.run_once() == 1
    clock.advance(minutes=5)
    assert worker.run_once() == 0
    clock.advance(hours=25)
    assert worker.run_once() == 0

    assert len(receiver.received) == 1
    (row,) = _rows()
    assert row.delivered_at is not None
    assert ("security_event.delivered", shop.client_id) in _kinds(shop.user_id)


def test_a_retry_after_a_500_resends_the_same_event(
    app: Flask, receiver: SetReceiver, shop: Shop
) -> None:
    receiver.status = 500
    _queue(shop.user_id, SecurityEvent.CREDENTIAL_CHANGE)
    worker.run_once()
    receiver.status = 202
    clock.advance(seconds=1)

    assert worker.run_once() == 1

    first, second = (_verified(app, token)[1] for token in receiver.tokens)
    assert second["jti"] == first["jti"]
    assert second["iat"] == first["iat"]
    (row,) = _rows()
    assert row.delivered_at is not None
    assert row.attempts == 2


@pytest.mark.parametrize("status", [408, 429, 500, 503, 302])
def test_a_busy_or_failing_receiver_is_tried_again(
    app: Flask, receiver: SetReceiver, shop: Shop, status: int
) -> None:
    receiver.status = status
    _queue(shop.user_id, SecurityEvent.ACCOUNT_ENABLED)
    worker.run_once()
    clock.advance(seconds=1)

    assert worker.run_once() == 1

    assert len(receiver.received) == 2
    (row,) = _rows()
    assert row.failed_at is None
    assert row.last_error == f"HTTP {status} from {receiver.uri}"


def test_an_unreachable_receiver_is_tried_again(
    app: Flask, receiver: SetReceiver, shop: Shop
) -> None:
    receiver.down()
    _queue(shop.user_id, SecurityEvent.ACCOUNT_ENABLED)
    worker.run_once()
    receiver.up()
    clock.advance(seconds=1)

    assert worker.run_once() == 1

    assert len(receiver.received) == 1
    (row,) = _rows()
    assert row.delivered_at is not None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_refused_set_is_recorded_undelivered_and_not_retried(
    app: Flask, receiver: SetReceiver, shop: Shop, status: int
) -> None:
    receiver.status = status
    _queue(shop.user_id, SecurityEvent.ACCOUNT_DISABLED, "bulk-account")

    assert worker.run_once() == 1
    clock.advance(hours=1)
    assert worker.run_once() == 0

    assert len(receiver.received) == 1
    (row,) = _rows()
    assert row.failed_at is not None
    assert row.delivered_at is None
    assert ("security_event.undelivered", shop.client_id) in _kinds(shop.user_id)


def test_an_event_queued_just_before_the_account_is_deleted_is_delivered(
    app: Flask, frozen_clock: int, receiver: SetReceiver, other_receiver: SetReceiver
) -> None:
    # Arrange: a session at Shop, consent for News
    user_id = _person("hanako")
    shop = _client("Shop", receiver.uri)
    news = _client("News", other_receiver.uri)
    _signed_in_at(user_id, shop)
    _consented_to(user_id, news)
    # Act: queue, then delete the account, in one transaction
    queued = queue(user_id=user_id, event=SecurityEvent.ACCOUNT_PURGED)
    db.session.delete(db.session.get_one(User, user_id))
    db.session.commit()
    # Assert: what queue() read went with the account; the events did not
    assert db.session.scalars(select(SessionClient)).all() == []
    assert db.session.scalars(select(Consent)).all() == []
    assert queued == sorted([shop, news])
    assert worker.run_once() == 2
    for client_id, r in ((shop, receiver), (news, other_receiver)):
        (token,) = r.tokens
        claims = _verified(app, token)[1]
        assert claims["aud"] == client_id
        assert claims["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": user_id}
        assert claims["events"] == {RISC + "account-purged": {}}
