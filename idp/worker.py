"""The worker: drains the outbox and purges what expired.

``idp worker`` runs :func:`run_forever`; ``idp serve`` starts one beside
itself unless ``--no-worker``.  Any number may run
against one database (claims are leases, see ``idp.outbox``).

Back-off between attempts doubles from 1 s to at most 30 s; a message whose
time (``logout.retry_hours``) runs out is given up and recorded in the
audit log as undelivered."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from idp import (
    backchannel,
    clock,
    codes,
    events,
    interactions,
    outbox,
    passkeys,
    qr,
    sessions,
    tokens,
)
from idp.db import db
from idp.outbox import OutboxItem

__all__ = ["backoff", "purge_expired", "run_forever", "run_once"]

log = logging.getLogger("idp.worker")

HANDLERS: dict[str, Callable[[OutboxItem], None]] = {backchannel.KIND: backchannel.deliver}
PURGE_EVERY = dt.timedelta(minutes=10)
KEEP_FINISHED = dt.timedelta(days=7)


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8, 16, then 30 seconds between attempts."""
    return dt.timedelta(seconds=min(30, 2 ** max(0, attempts - 1)))


def run_once(limit: int = 50) -> int:
    """Deliver what is due now; returns how many messages were attempted."""
    items = outbox.claim_due(limit)
    for item in items:
        handler = HANDLERS.get(item.kind)
        try:
            if handler is None:
                raise backchannel.DeliveryFailedError(f"no handler for {item.kind}", permanent=True)
            handler(item)
        except backchannel.DeliveryFailedError as e:
            _failed(item, str(e), permanent=e.permanent)
        except Exception as e:  # a bug in a handler must not stop the worker
            log.exception("delivering outbox message %s", item.id)
            db.session.rollback()
            _failed(item, f"unexpected error: {e}", permanent=False)
        else:
            outbox.mark_delivered(item)
            events.record(
                f"{item.kind}.delivered",
                client_id=item.payload.get("client_id"),
                session_id=item.payload.get("sid"),
                attempts=item.attempts,
            )
            db.session.commit()
    return len(items)


def _failed(item: OutboxItem, error: str, *, permanent: bool) -> None:
    delay = backoff(item.attempts)
    if permanent or clock.now() + delay > item.expires_at:
        outbox.mark_failed(item, error)
        events.record(
            f"{item.kind}.undelivered",
            user_id=item.payload.get("sub"),
            client_id=item.payload.get("client_id"),
            session_id=item.payload.get("sid"),
            attempts=item.attempts,
            error=error,
        )
        db.session.commit()
        log.warning(
            "gave up on outbox message %s after %s attempts: %s", item.id, item.attempts, error
        )
    else:
        outbox.retry_later(item, error, delay=delay)


def purge_expired() -> None:
    """Delete expired codes, interactions, tokens and long-ended sessions."""
    now = clock.now()
    codes.purge_expired(now)
    interactions.purge_expired(now)
    tokens.purge_expired(now)
    passkeys.purge_expired(now)
    qr.purge_expired(now)
    sessions.purge_ended(now - dt.timedelta(days=30))
    outbox.purge_finished(KEEP_FINISHED)
    db.session.commit()


def run_forever(stop: threading.Event, *, poll_seconds: float = 0.5) -> None:
    """Deliver and purge until ``stop`` is set (needs an app context)."""
    next_purge = clock.now()
    while not stop.is_set():
        try:
            busy = run_once()
            if clock.now() >= next_purge:
                purge_expired()
                next_purge = clock.now() + PURGE_EVERY
        except Exception:  # the database may be away for a moment: keep going
            log.exception("worker pass failed")
            db.session.rollback()
            busy = 0
        finally:
            db.session.remove()
        if not busy:
            stop.wait(poll_seconds)
