"""Sign-in sessions: stay signed in, idle timeout, and forced logout.

The browser holds only a random ``idp_session`` value; the server stores its
SHA-256 and every rule about the session, so ending a session on one node
ends it everywhere at once.

* "Stay signed in" checked: the session slides ``session.remember_days``
  with use but never outlives ``session.remember_max_days`` from sign-in.
* Unchecked: it ends after ``session.idle_minutes`` without use (and the
  cookie dies with the browser).

Both ends are enforced here, whatever the cookie says.  ``last_seen_at`` is
written at most once a minute per session so that page loads stay cheap;
the idle timeout is therefore precise to a minute.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from idp import clock, events
from idp.config import SessionSettings
from idp.db import db, new_secret, secret_hash
from idp.errors import NotFoundError
from idp.models import AccessToken, RefreshToken, SignInSession

__all__ = [
    "ACR_VALUES",
    "SessionInfo",
    "StartedSession",
    "acr_for",
    "end",
    "end_all_for_user",
    "end_for_reuse",
    "get",
    "list_for_user",
    "resolve",
    "start",
]

_TOUCH_EVERY = dt.timedelta(seconds=60)

ACR_SINGLE_FACTOR = "urn:idp:acr:1"
"""One factor: a password."""
ACR_STRONG = "urn:idp:acr:2"
"""Phishing-resistant or multi-factor: a passkey, or a password plus a one-time code."""
ACR_VALUES = (ACR_SINGLE_FACTOR, ACR_STRONG)


def acr_for(amr: list[str]) -> str:
    """The assurance level a set of authentication methods reaches."""
    return ACR_STRONG if {"hwk", "mfa"} & set(amr) else ACR_SINGLE_FACTOR


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str
    device_id: str | None
    ip: str
    country: str | None
    user_agent: str
    remember: bool
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class StartedSession:
    session: SessionInfo
    cookie_value: str
    """Goes to the browser once; the server keeps only its digest."""


def _info(row: SignInSession) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        device_id=row.device_id,
        ip=row.ip,
        country=row.country,
        user_agent=row.user_agent,
        remember=row.remember,
        auth_time=row.auth_time,
        amr=tuple(row.amr),
        acr=row.acr,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


def _expiry(row: SignInSession, now: dt.datetime, policy: SessionSettings) -> dt.datetime:
    if row.remember:
        cap = row.created_at + dt.timedelta(days=policy.remember_max_days)
        return min(now + dt.timedelta(days=policy.remember_days), cap)
    return now + dt.timedelta(minutes=policy.idle_minutes)


def start(
    *,
    user_id: str,
    policy: SessionSettings,
    remember: bool,
    amr: list[str],
    ip: str,
    user_agent: str,
    device_id: str | None = None,
    country: str | None = None,
    replaces: str | None = None,
) -> StartedSession:
    """Open a session for a person who just proved who they are, and commit.

    ``replaces`` names the browser's previous session (signing in again on
    the same browser): it ends, so a browser holds one session at a time
    and a stolen old cookie is worth nothing."""
    now = clock.now()
    cookie_value = new_secret()
    row = SignInSession(
        id=new_secret(24),
        cookie_hash=secret_hash(cookie_value),
        user_id=user_id,
        device_id=device_id,
        ip=ip,
        country=country,
        user_agent=user_agent[:400],
        remember=remember,
        auth_time=now,
        amr=list(amr),
        acr=acr_for(amr),
        created_at=now,
        last_seen_at=now,
        expires_at=now,
    )
    row.expires_at = _expiry(row, now, policy)
    db.session.add(row)
    if replaces:
        _end_rows([replaces], reason="replaced", now=now)
    events.record(
        "session.started",
        user_id=user_id,
        session_id=row.id,
        ip=ip,
        amr=list(amr),
        remember=remember,
    )
    db.session.commit()
    return StartedSession(session=_info(row), cookie_value=cookie_value)


def resolve(cookie_value: str | None, policy: SessionSettings) -> SessionInfo | None:
    """The live session behind a cookie value, sliding its expiry; else None."""
    if not cookie_value or len(cookie_value) > 100:
        return None
    row = db.session.scalar(
        select(SignInSession).where(SignInSession.cookie_hash == secret_hash(cookie_value))
    )
    now = clock.now()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
        row.expires_at = _expiry(row, now, policy)
        db.session.commit()
    return _info(row)


def get(session_id: str) -> SessionInfo:
    row = db.session.get(SignInSession, session_id)
    if row is None:
        raise NotFoundError("no such session")
    return _info(row)


def list_for_user(user_id: str, *, live_only: bool = True) -> list[SessionInfo]:
    query = select(SignInSession).where(SignInSession.user_id == user_id)
    if live_only:
        query = query.where(
            SignInSession.ended_at.is_(None), SignInSession.expires_at > clock.now()
        )
    rows = db.session.scalars(query.order_by(SignInSession.last_seen_at.desc()))
    return [_info(r) for r in rows]


def _end_rows(session_ids: list[str], *, reason: str, now: dt.datetime) -> None:
    """End sessions and revoke their tokens in a fixed number of statements.

    Offline refresh tokens (``offline_access``) survive a plain sign-out but
    not a forced logout: the caller passes ``reason`` and this revokes them
    for every reason except ``signout``."""
    db.session.execute(
        update(SignInSession)
        .where(SignInSession.id.in_(session_ids), SignInSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    refresh = update(RefreshToken).where(
        RefreshToken.session_id.in_(session_ids), RefreshToken.revoked_at.is_(None)
    )
    if reason == "signout":
        refresh = refresh.where(RefreshToken.offline.is_(False))
    db.session.execute(refresh.values(revoked_at=now))
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.session_id.in_(session_ids), AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end(session_id: str, *, reason: str, actor: str, ip: str | None = None) -> None:
    """End one session and revoke what was issued under it; commit.

    Safe to retry: ending an ended session changes nothing."""
    row = db.session.get(SignInSession, session_id)
    if row is None:
        raise NotFoundError("no such session")
    if row.ended_at is None:
        _end_rows([session_id], reason=reason, now=clock.now())
        events.record(
            "session.ended",
            user_id=row.user_id,
            session_id=session_id,
            ip=ip,
            reason=reason,
            actor=actor,
        )
    db.session.commit()


def end_for_reuse(session_id: str) -> None:
    """A refresh token of this session came back after use: end the session
    and revoke everything issued under it (caller commits)."""
    row = db.session.get(SignInSession, session_id)
    if row is None or row.ended_at is not None:
        return
    _end_rows([session_id], reason="refresh_token_reuse", now=clock.now())
    events.record(
        "session.ended",
        user_id=row.user_id,
        session_id=session_id,
        reason="refresh_token_reuse",
        actor="system",
    )


def end_all_for_user(user_id: str, *, reason: str, actor: str) -> int:
    """End every live session of a person in a fixed number of statements,
    and commit.  Returns how many ended."""
    now = clock.now()
    ids = list(
        db.session.scalars(
            select(SignInSession.id).where(
                SignInSession.user_id == user_id, SignInSession.ended_at.is_(None)
            )
        )
    )
    if ids:
        _end_rows(ids, reason=reason, now=now)
        events.record(
            "sessions.ended_all", user_id=user_id, reason=reason, actor=actor, count=len(ids)
        )
    db.session.commit()
    return len(ids)
