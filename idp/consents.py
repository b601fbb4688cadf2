"""Remembered consent: which scopes a member allowed a client.

A member is asked once per client; asking again only when a request wants a
scope not yet allowed (or the client says ``prompt=consent``)."""

from __future__ import annotations

from sqlalchemy import select

from idp import clock, events
from idp.db import db
from idp.models import Consent

__all__ = ["covers", "grant"]


def covers(user_id: str, client_id: str, scopes: frozenset[str]) -> bool:
    """Whether earlier consent includes every scope asked for."""
    granted = db.session.scalar(
        select(Consent.scope).where(Consent.user_id == user_id, Consent.client_id == client_id)
    )
    return granted is not None and scopes <= frozenset(granted.split())


def grant(user_id: str, client_id: str, scopes: frozenset[str]) -> None:
    """Remember consent, widening what was allowed before (joins the caller's transaction)."""
    row = db.session.scalar(
        select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
    )
    now = clock.now()
    if row is None:
        db.session.add(
            Consent(
                user_id=user_id, client_id=client_id, scope=" ".join(sorted(scopes)), granted_at=now
            )
        )
    else:
        row.scope = " ".join(sorted(scopes | frozenset(row.scope.split())))
        row.granted_at = now
    events.record("consent.granted", user_id=user_id, client_id=client_id, scope=sorted(scopes))
