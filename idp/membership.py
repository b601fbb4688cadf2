"""Cancelling a membership: everything of the person goes, in one transaction.

The membership help page promises that cancelling deletes the account and
what hangs on it.  So: every session ends (relying services get their
back-channel logout) and every token is revoked; relying services with an
events URI are told the account is purged (RISC ``account-purged``); the
goodbye mail goes to the address; then the account, its passkeys, one-time
codes, consents, sessions, devices, sign-in events and history are deleted.
What stays is a tombstone -- the ``sub`` and a hash of the user ID, so that
neither is ever given to another person -- and the messages already queued
(which must still reach the services and the person)."""

from __future__ import annotations

import datetime as dt

from idp import (
    accounts,
    clock,
    codes,
    events,
    forced_logout,
    interactions,
    mail,
    members,
    qr,
    sessions,
    tokens,
)
from idp import security_events as set_events
from idp.db import service
from idp.errors import NotAllowedError
from idp.members import Member

__all__ = ["RECENT_SIGN_IN", "cancel", "delete"]

RECENT_SIGN_IN = dt.timedelta(minutes=5)
"""A person cancels only within this long of signing in (a stolen session alone cannot)."""


@service
def cancel(user_id: str, *, session_id: str) -> Member:
    """The person cancels from their own signed-in session, which must be
    fresh (a sign-in of the last five minutes).  Raises NotAllowedError."""
    session = sessions.get(session_id)
    if session.user_id != user_id or not session.is_live(clock.now()):
        raise NotAllowedError("Sign in again to cancel your membership.")
    if clock.now() - session.auth_time > RECENT_SIGN_IN:
        raise NotAllowedError("For your security, sign in again before cancelling.")
    member, _ = _end(members.get(user_id), actor=f"user:{user_id}")
    return member


@service
def delete(ref: str) -> tuple[Member, int]:
    """The operator's cancellation (``idp users delete``): the same effects.
    Returns the member and how many sessions ended.  Raises NotFoundError."""
    return _end(accounts.find(ref), actor="admin:cli")


def _end(member: Member, *, actor: str) -> tuple[Member, int]:
    report = forced_logout.force_logout(
        user_id=member.id, reason=forced_logout.LogoutReason.ACCOUNT_CANCELLED, actor=actor
    )
    set_events.queue(user_id=member.id, event=set_events.SecurityEvent.ACCOUNT_PURGED)
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="membership_cancelled",
        context={"name": member.name or member.username},
    )
    for forget in (
        tokens.forget_user,
        codes.forget_user,
        interactions.forget_user,
        qr.forget_user,
        events.forget_user,
    ):
        forget(member.id)
    return accounts.remove(member.id, actor=actor), len(report.session_ids)
