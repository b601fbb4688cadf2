"""Authorization codes: single use, short-lived, stored hashed.

A code presented a second time means it leaked (RFC 6749 §4.1.2, RFC 9700
§4.5): the exchange fails and every token the first exchange issued is
revoked, because we cannot tell the honest party from the thief."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from idp import clock, events, tokens
from idp.db import db, new_secret, secret_hash
from idp.models import AuthorizationCode

__all__ = [
    "CodeGrant",
    "issue",
    "mark_exchanged",
    "purge_expired",
    "redeem",
]


@dataclass(frozen=True, slots=True)
class CodeGrant:
    id: int
    client_id: str
    user_id: str
    session_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str


def issue(
    *,
    client_id: str,
    user_id: str,
    session_id: str,
    redirect_uri: str,
    scope: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
    auth_time: dt.datetime,
    amr: list[str],
    acr: str,
    ttl_seconds: int,
) -> str:
    """Create a code and return it (the caller commits)."""
    code = new_secret(32)
    now = clock.now()
    db.session.add(
        AuthorizationCode(
            code_hash=secret_hash(code),
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=nonce,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            auth_time=auth_time,
            amr=amr,
            acr=acr,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_seconds),
        )
    )
    return code


def redeem(code: str, client_id: str) -> CodeGrant | None:
    """The grant behind an unused, unexpired code of this client, else None.

    Redeeming a spent code revokes the token family its first exchange
    started and commits that at once (the failed request must not roll it
    back).  The code itself is spent by :func:`mark_exchanged`."""
    if not code or len(code) > 100:
        return None
    row = db.session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == secret_hash(code))
    )
    if row is None or row.client_id != client_id:
        return None
    if row.used_at is not None:
        if row.family_id:
            tokens.revoke_family(row.family_id, reason="code_replayed")
        events.record(
            "code.replayed", user_id=row.user_id, client_id=client_id, session_id=row.session_id
        )
        db.session.commit()
        return None
    if row.expires_at <= clock.now():
        return None
    return CodeGrant(
        id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        session_id=row.session_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        auth_time=row.auth_time,
        amr=tuple(row.amr),
        acr=row.acr,
    )


def mark_exchanged(grant: CodeGrant, family_id: str | None) -> bool:
    """Spend the code, linking the family it started (caller commits).

    A conditional update: of two racing exchanges only one sees True."""
    result = db.session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.id == grant.id, AuthorizationCode.used_at.is_(None))
        .values(used_at=clock.now(), family_id=family_id)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # CursorResult


def purge_expired(now: dt.datetime) -> None:
    """Delete codes past their expiry (the caller commits).

    A spent code is kept until then so that a replay still finds it and
    revokes what it issued."""
    db.session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < now))
