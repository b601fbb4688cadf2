"""Login and audit events: what happened to an account, when, from where.

Every security-relevant change writes one row in the caller's transaction, so
the record and the change commit or roll back together."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from idp import clock
from idp.db import db
from idp.models import AuditEvent

__all__ = [
    "Event",
    "forget_user",
    "list_for_user",
    "record",
    "record_many",
]


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


def forget_user(user_id: str) -> None:
    """Delete a cancelled member's sign-in events and history (joins the
    caller's transaction): the membership help page promises it."""
    db.session.execute(delete(AuditEvent).where(AuditEvent.user_id == user_id))
