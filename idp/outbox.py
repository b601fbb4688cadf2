"""The outbox: work to do after commit, written in the same transaction.

Back-channel logout calls (and, later, mail) are rows here, added by the
service that caused them, so that the event and the promise to announce it
commit or roll back together.  ``idp worker`` (or the thread inside
``idp serve``) claims due rows and delivers them; a failed delivery is
retried with back-off until it succeeds or its time runs out.  A relying
service that is down loses nothing.

Claiming is a conditional update of ``next_attempt_at`` (a lease), so any
number of workers on any number of nodes can drain the same table: each
row is delivered by one of them at a time (PostgreSQL also skips rows
another worker has locked)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from idp import clock
from idp.db import db
from idp.models import OutboxMessage

__all__ = [
    "LEASE",
    "OutboxItem",
    "claim_due",
    "enqueue_many",
    "mark_delivered",
    "mark_failed",
    "purge_finished",
    "retry_later",
]

LEASE = dt.timedelta(seconds=60)
"""How long a claimed row is left to its worker before another may take it."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: dt.datetime
    expires_at: dt.datetime


def enqueue_many(kind: str, payloads: list[dict[str, Any]], *, ttl: dt.timedelta) -> None:
    """Add messages to the caller's transaction, due now (the caller commits)."""
    if not payloads:
        return
    now = clock.now()
    db.session.execute(
        insert(OutboxMessage),
        [
            {
                "kind": kind,
                "payload": json.dumps(p, sort_keys=True),
                "created_at": now,
                "next_attempt_at": now,
                "expires_at": now + ttl,
                "attempts": 0,
            }
            for p in payloads
        ],
    )


def claim_due(limit: int = 50) -> list[OutboxItem]:
    """Lease up to ``limit`` due messages to this worker and commit the lease."""
    now = clock.now()
    candidates = db.session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.payload,
            OutboxMessage.attempts,
            OutboxMessage.created_at,
            OutboxMessage.expires_at,
            OutboxMessage.next_attempt_at,
        )
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed: list[OutboxItem] = []
    for row in candidates:
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id, OutboxMessage.next_attempt_at == row.next_attempt_at)
            .values(next_attempt_at=now + LEASE, attempts=row.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]  # CursorResult
            claimed.append(
                OutboxItem(
                    id=row.id,
                    kind=row.kind,
                    payload=json.loads(row.payload),
                    attempts=row.attempts + 1,
                    created_at=row.created_at,
                    expires_at=row.expires_at,
                )
            )
    db.session.commit()
    return claimed


def mark_delivered(item: OutboxItem) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == item.id)
        .values(delivered_at=clock.now(), last_error=None)
    )
    db.session.commit()


def retry_later(item: OutboxItem, error: str, *, delay: dt.timedelta) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == item.id)
        .values(next_attempt_at=clock.now() + delay, last_error=error[:1000])
    )
    db.session.commit()


def mark_failed(item: OutboxItem, error: str) -> None:
    """Give up on a message (the caller records why in the audit log)."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == item.id)
        .values(failed_at=clock.now(), last_error=error[:1000])
    )


def purge_finished(older_than: dt.timedelta) -> int:
    """Delete delivered or failed messages older than this; commits."""
    cutoff = clock.now() - older_than
    result = db.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.created_at < cutoff,
            (OutboxMessage.delivered_at.is_not(None)) | (OutboxMessage.failed_at.is_not(None)),
        )
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
