"""Sign-in attempts and audit events: what happened to an account, when, from where.

Every security-relevant change writes one audit row in the caller's
transaction, so the record and the change commit or roll back together;
audit rows are kept as long as the account.  Every sign-in attempt --
password, passkey, QR, the extra check; success, failure, held, refused --
writes one :class:`Attempt` with its device, address, country and the risk
rules' reason.  Attempts are the account's "recent activity" and the
operator's ``idp events list``; they are kept ``events.signin_retention_days``
and then deleted by the worker in batches, so that a purge never holds a
long lock on a busy table."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from idp import clock, metrics
from idp.db import db, delete_batch
from idp.models import AuditEvent, SignInAttempt

__all__ = [
    "Attempt",
    "Event",
    "attempts_for_user",
    "forget_user",
    "list_for_user",
    "purge_attempts",
    "record",
    "record_attempt",
    "record_many",
]

PURGE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class Event:
    at: dt.datetime
    kind: str
    user_id: str | None
    client_id: str | None
    session_id: str | None
    ip: str | None
    detail: dict[str, Any]


def record(
    kind: str,
    *,
    user_id: str | None = None,
    client_id: str | None = None,
    session_id: str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Add an audit row to the caller's transaction."""
    db.session.add(
        AuditEvent(
            at=clock.now(),
            kind=kind,
            user_id=user_id,
            client_id=client_id,
            session_id=session_id,
            ip=ip,
            detail=json.dumps(detail, default=str, sort_keys=True),
        )
    )


def record_many(kind: str, rows: list[dict[str, Any]]) -> None:
    """One audit row per item, in one statement (joins the caller's transaction).

    Each item has ``user_id``, ``client_id``, ``session_id``, ``ip`` (any may
    be missing) and whatever else goes into the detail."""
    if not rows:
        return
    at = clock.now()
    columns = ("user_id", "client_id", "session_id", "ip")
    db.session.execute(
        insert(AuditEvent),
        [
            {
                "at": at,
                "kind": kind,
                **{c: row.get(c) for c in columns},
                "detail": json.dumps(
                    {k: v for k, v in row.items() if k not in columns}, default=str, sort_keys=True
                ),
            }
            for row in rows
        ],
    )


def list_for_user(user_id: str, *, limit: int = 200) -> list[Event]:
    rows = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.user_id == user_id)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return [
        Event(
            at=r.at,
            kind=r.kind,
            user_id=r.user_id,
            client_id=r.client_id,
            session_id=r.session_id,
            ip=r.ip,
            detail=json.loads(r.detail),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Attempt:
    at: dt.datetime
    user_id: str | None
    method: str
    result: str
    reason: str | None
    device_id: str | None
    user_agent: str
    ip: str
    country: str | None


def record_attempt(
    *,
    user_id: str | None,
    method: str,
    result: str,
    reason: str | None,
    device_id: str | None,
    user_agent: str,
    ip: str,
    country: str | None,
) -> None:
    """Add a sign-in attempt to the caller's transaction (and count it)."""
    metrics.signin(method, result)
    db.session.add(
        SignInAttempt(
            at=clock.now(),
            user_id=user_id,
            method=method,
            result=result,
            reason=(reason or None) and reason[:64],
            device_id=device_id,
            user_agent=user_agent[:400],
            ip=ip,
            country=country,
        )
    )


def attempts_for_user(user_id: str, *, limit: int = 50) -> list[Attempt]:
    """The account's latest sign-in attempts, newest first."""
    rows = db.session.execute(
        select(
            SignInAttempt.at,
            SignInAttempt.user_id,
            SignInAttempt.method,
            SignInAttempt.result,
            SignInAttempt.reason,
            SignInAttempt.device_id,
            SignInAttempt.user_agent,
            SignInAttempt.ip,
            SignInAttempt.country,
        )
        .where(SignInAttempt.user_id == user_id)
        .order_by(SignInAttempt.at.desc(), SignInAttempt.id.desc())
        .limit(limit)
    )
    return [Attempt(*row) for row in rows]


def purge_attempts(before: dt.datetime, *, batch: int = PURGE_BATCH) -> int:
    """Delete one batch of attempts older than ``before`` (joins the caller's
    transaction); returns how many went.  The worker calls it until fewer
    than ``batch`` go, one transaction each."""
    return delete_batch(SignInAttempt, SignInAttempt.at < before, batch=batch)


def forget_user(user_id: str) -> None:
    """Delete a cancelled member's sign-in attempts and history (joins the
    caller's transaction): the membership help page promises it."""
    db.session.execute(delete(AuditEvent).where(AuditEvent.user_id == user_id))
    db.session.execute(delete(SignInAttempt).where(SignInAttempt.user_id == user_id))
