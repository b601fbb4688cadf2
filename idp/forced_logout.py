"""Forced logout: the one path of every sign-out, whoever asks.

A session ends here whether the person signed out, a relying service asked
(RP-initiated logout), an admin or the risk rules ended it, a refresh token
was replayed, or the password or the account changed.  One transaction, a
fixed number of statements whatever the count: the sessions end, their
tokens are revoked, an audit event is written per session, and a
back-channel logout is queued for every service they reached
(``idp.backchannel``).

The sessions are locked first (``FOR UPDATE``, in ``id`` order); token
issuance holds a shared lock on its session (``idp.sessions.lock``), so a
refresh or code exchange racing a forced logout either finishes before it
(and what it issued is revoked) or finds the session ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from idp import backchannel, clock, events, tokens
from idp.db import db, service
from idp.logout_reasons import MISUSE_REASONS, LogoutReason
from idp.models import SignInSession

__all__ = ["MISUSE_REASONS", "LogoutReason", "LogoutReport", "force_logout"]


"""Forced logouts for suspected misuse: the device is suspect for a while."""


_KEEPS_OFFLINE_TOKENS = frozenset({LogoutReason.SIGNOUT, LogoutReason.RP_LOGOUT})


@dataclass(frozen=True, slots=True)
class LogoutReport:
    session_ids: tuple[str, ...]
    """The sessions this call ended (already ended ones are not repeated)."""
    notified_client_ids: tuple[str, ...]
    """Clients queued a back-channel logout token."""


@service
def force_logout(
    *,
    reason: LogoutReason,
    actor: str,
    session_ids: Sequence[str] = (),
    user_id: str | None = None,
    keep: str | None = None,
    ip: str | None = None,
) -> LogoutReport:
    """End sessions everywhere, now: the one path of every sign-out.

    Ends the sessions named (and, with ``user_id``, every session of that
    person except ``keep``), revokes every refresh and access token issued
    under them, writes an audit event per session ended, and queues a
    back-channel logout token for each client the sessions reached that
    registered a ``backchannel_logout_uri``.  Offline refresh tokens survive
    only the person's own sign-out and RP-initiated logout; every other
    reason revokes them too, also those of sessions that had ended earlier.

    One transaction in a fixed number of statements whatever the count.
    The sessions are locked first (in ``id`` order, so that two forced
    logouts cannot deadlock), which makes a racing token issuance either
    finish before the revocation or find the session ended.  Safe to retry:
    an ended session is not ended (or announced) twice."""
    now = clock.now()
    query = select(SignInSession.id, SignInSession.user_id, SignInSession.ended_at)
    if user_id is not None:
        query = query.where(SignInSession.user_id == user_id)
        if session_ids:
            query = query.where(SignInSession.id.in_(list(session_ids)))
    elif session_ids:
        query = query.where(SignInSession.id.in_(list(session_ids)))
    else:
        return LogoutReport(session_ids=(), notified_client_ids=())
    if keep is not None:
        query = query.where(SignInSession.id != keep)
    locked = db.session.execute(query.order_by(SignInSession.id).with_for_update()).all()
    ended = [(row.id, row.user_id) for row in locked if row.ended_at is None]
    keeps_offline = reason in _KEEPS_OFFLINE_TOKENS
    # An earlier sign-out left offline tokens alive; this reason ends them too.
    revoke_ids = [sid for sid, _ in ended] if keeps_offline else [row.id for row in locked]
    notified: list[str] = []
    if ended:
        ids = [sid for sid, _ in ended]
        db.session.execute(
            update(SignInSession)
            .where(SignInSession.id.in_(ids), SignInSession.ended_at.is_(None))
            .values(ended_at=now, end_reason=str(reason))
        )
        notified = backchannel.queue_logouts(ids)
        events.record_many(
            "session.ended",
            [
                {"user_id": uid, "session_id": sid, "ip": ip, "reason": str(reason), "actor": actor}
                for sid, uid in ended
            ],
        )
    if revoke_ids:
        tokens.revoke("session_id", revoke_ids, now=now, keep_offline=keeps_offline)
    if user_id is not None and keep is None and not keeps_offline:
        # Offline tokens outlive the sign-out of their session, not a forced
        # logout of the whole account.
        tokens.revoke("user_id", [user_id], now=now)
    return LogoutReport(
        session_ids=tuple(sid for sid, _ in ended), notified_client_ids=tuple(notified)
    )
