"""The worker: drains the outbox and purges what expired.

``idp worker`` runs :func:`run_forever`; ``idp serve`` starts one beside
itself unless ``--no-worker``.  Any number may run against one database:
each message is leased to one worker at a time and only the lease holder
records its outcome (see ``idp.outbox``).

Back-off between attempts doubles from 1 s to at most 30 s; a message whose
time (``logout.retry_hours``, ``mail.retry_hours``) runs out, or that can
never be delivered (a refused address), is given up and recorded in the
audit log as undelivered.  A finished mail keeps only its ids: its body may
hold a single-use link (see ``outbox.forget_payload``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from idp import (
    backchannel,
    clock,
    codes,
    events,
    interactions,
    links,
    mail,
    outbox,
    qr,
    recovery,
    runtime,
    security_events,
    sessions,
    tokens,
    webauthn_challenges,
)
from idp.db import db, service, unavailable
from idp.errors import DeliveryFailedError
from idp.outbox import OutboxItem

__all__ = ["backoff", "purge_expired", "purge_old_attempts", "run_forever", "run_once"]

log = logging.getLogger("idp.worker")

HANDLERS: dict[str, Callable[[OutboxItem], None]] = {
    backchannel.KIND: backchannel.deliver,
    mail.KIND: mail.deliver,
    recovery.KIND: recovery.deliver,
    security_events.KIND: security_events.deliver,
}
FORGET_WHEN_FINISHED: dict[str, tuple[str, ...]] = {
    mail.KIND: mail.KEPT_WHEN_FINISHED,
    recovery.KIND: (),  # what someone typed, once acted on
}
"""Kinds whose payload is dropped, but these keys, once delivered or given up."""
PURGE_EVERY = dt.timedelta(minutes=10)
KEEP_FINISHED = dt.timedelta(days=7)
KEEP_ENDED_SESSIONS = dt.timedelta(days=30)


def backoff(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8, 16, then 30 seconds between attempts."""
    return dt.timedelta(seconds=min(30, 2 ** max(0, attempts - 1)))


def run_once(limit: int = 50) -> int:
    """Deliver up to ``limit`` messages that are due; returns how many were attempted."""
    attempted = 0
    while attempted < limit:
        item = outbox.claim_next()
        if item is None:
            break
        attempted += 1
        _deliver(item)
    return attempted


def _deliver(item: OutboxItem) -> None:
    handler = HANDLERS.get(item.kind)
    try:
        if handler is None:
            raise DeliveryFailedError(f"no handler for {item.kind}", permanent=True)
        handler(item)
    except DeliveryFailedError as e:
        _failed(item, str(e), permanent=e.permanent)
    except Exception as e:  # a bug in a handler must not stop the worker
        log.exception("delivering outbox message %s", item.id)
        db.session.rollback()
        _failed(item, f"unexpected error: {e}", permanent=False)
    else:
        _delivered(item)


@service
def _delivered(item: OutboxItem) -> None:
    if not outbox.mark_delivered(item):
        log.warning("outbox message %s: lease lost before its delivery was recorded", item.id)
        return
    if item.kind in FORGET_WHEN_FINISHED:
        outbox.forget_payload(item, keep=FORGET_WHEN_FINISHED[item.kind])
    events.record(
        f"{item.kind}.delivered",
        user_id=item.payload.get("sub"),
        client_id=item.payload.get("client_id"),
        session_id=item.payload.get("sid"),
        attempts=item.attempts,
    )


@service
def _failed(item: OutboxItem, error: str, *, permanent: bool) -> None:
    delay = backoff(item.attempts)
    if not permanent and clock.now() + delay <= item.expires_at:
        outbox.retry_later(item, error, delay=delay)
        return
    if not outbox.mark_failed(item, error):
        return
    if item.kind in FORGET_WHEN_FINISHED:
        outbox.forget_payload(item, keep=FORGET_WHEN_FINISHED[item.kind])
    events.record(
        f"{item.kind}.undelivered",
        user_id=item.payload.get("sub") or item.payload.get("user_id"),
        client_id=item.payload.get("client_id"),
        session_id=item.payload.get("sid"),
        attempts=item.attempts,
        error=error,
    )
    log.warning("gave up on outbox message %s after %s attempts: %s", item.id, item.attempts, error)


PURGE_BATCH = events.PURGE_BATCH
"""Rows one purge deletes per transaction (``idp.db.delete_batch``), as
many as of the sign-in attempts."""

_PURGES: tuple[Callable[[dt.datetime, int], int], ...] = (
    lambda now, batch: codes.purge_expired(now, batch=batch),
    lambda now, batch: interactions.purge_expired(now, batch=batch),
    lambda now, batch: tokens.purge_expired(now, batch=batch),
    lambda now, batch: webauthn_challenges.purge_expired(now, batch=batch),
    lambda now, batch: qr.purge_expired(now, batch=batch),
    lambda now, batch: links.purge_expired(now, batch=batch),
    lambda now, batch: sessions.purge_ended(now - KEEP_ENDED_SESSIONS, batch=batch),
    lambda now, batch: outbox.purge_finished(KEEP_FINISHED, batch=batch),
)
"""What expires, each deleting one batch: ``(now, batch) -> rows deleted``."""


@service
def _purge_batch(purge: Callable[[dt.datetime, int], int], now: dt.datetime) -> int:
    return purge(now, PURGE_BATCH)


def purge_expired() -> None:
    """Delete expired codes, interactions, tokens and long-ended sessions,
    a batch per transaction, so that no purge holds a long lock or runs
    past ``database.answer_timeout_seconds``."""
    now = clock.now()
    for purge in _PURGES:
        while _purge_batch(purge, now) >= PURGE_BATCH:
            pass


@service
def _purge_attempt_batch(before: dt.datetime) -> int:
    return events.purge_attempts(before)


def purge_old_attempts() -> None:
    """Delete sign-in attempts older than ``events.signin_retention_days``,
    a batch per transaction, so that no purge holds a long lock."""
    days = runtime.current().settings.events.signin_retention_days
    before = clock.now() - dt.timedelta(days=days)
    while _purge_attempt_batch(before) >= events.PURGE_BATCH:
        pass


def run_forever(stop: threading.Event, *, poll_seconds: float = 0.5) -> None:
    """Deliver and purge until ``stop`` is set (needs an app context)."""
    last_purge: dt.datetime | None = None
    database_away = False
    while not stop.is_set():
        try:
            busy = run_once()
            now = clock.now()
            if last_purge is None or not last_purge <= now < last_purge + PURGE_EVERY:
                purge_expired()
                purge_old_attempts()
                last_purge = now
        except Exception as e:  # the database may be away for a moment: keep going
            if not unavailable(e):
                log.exception("worker pass failed")
            else:
                if not database_away:  # one line per outage, not a traceback per pass
                    log.error("database unavailable: %s", str(e).splitlines()[0])
                database_away = True
            busy = 0
        else:
            if database_away:
                log.warning("database answers again")
                database_away = False
        finally:
            with contextlib.suppress(SQLAlchemyError):  # its connection may be gone
                db.session.remove()  # rolls back what a failed pass left
        if not busy:
            stop.wait(poll_seconds)
