"""Authorization codes: single use, short-lived, stored hashed.

A code is spent by one conditional update in the transaction that issues
its tokens: of two simultaneous exchanges exactly one wins.  A code
presented again -- at once by a racing request or later -- means it leaked
(RFC 6749 §4.1.2, RFC 9700 §4.5): the exchange fails and every token the
first exchange issued is revoked, because we cannot tell the honest party
from the thief."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, insert, select, update

from idp import clock, events, members, runtime, sessions, tokens
from idp.clients import RelyingParty
from idp.db import db, delete_batch, new_secret, refuse, secret_hash, service
from idp.errors import InvalidGrantError, NotFoundError
from idp.models import AuthorizationCode
from idp.prepared import read_in_transaction, write
from idp.sessions import SessionInfo

__all__ = [
    "CodeGrant",
    "exchange",
    "find",
    "forget_user",
    "issue",
    "purge_expired",
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
    used: bool


# Built once, of table columns: every sign-in at a service issues and spends a
# code, and Core statements built per call cost more than SQLite's work.
_CODES = AuthorizationCode.metadata.tables[AuthorizationCode.__tablename__]
_INSERT_CODE = insert(_CODES)
_CODE_BY_HASH = select(
    _CODES.c.id,
    _CODES.c.client_id,
    _CODES.c.user_id,
    _CODES.c.session_id,
    _CODES.c.redirect_uri,
    _CODES.c.scope,
    _CODES.c.nonce,
    _CODES.c.code_challenge,
    _CODES.c.code_challenge_method,
    _CODES.c.auth_time,
    _CODES.c.amr,
    _CODES.c.acr,
    _CODES.c.expires_at,
    _CODES.c.used_at,
).where(_CODES.c.code_hash == bindparam("code_hash"))
_SPEND_CODE = (
    update(_CODES)
    .where(
        _CODES.c.id == bindparam("code_id"),
        _CODES.c.used_at.is_(None),
        _CODES.c.expires_at > bindparam("now"),
    )
    .values(
        used_at=bindparam("used_now", type_=_CODES.c.used_at.type),
        family_id=bindparam("family_id", type_=_CODES.c.family_id.type),
    )
)
_SPENT_CODE = select(_CODES.c.used_at, _CODES.c.family_id).where(
    _CODES.c.id == bindparam("code_id")
)


@service
def issue(
    *,
    client_id: str,
    session: SessionInfo,
    redirect_uri: str,
    scope: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> str:
    """Create a code for a signed-in person and return it; joins an
    enclosing service (the resume of an interaction) or commits."""
    code = new_secret(32)
    now = clock.now()
    write(
        _INSERT_CODE,
        {
            "code_hash": secret_hash(code),
            "client_id": client_id,
            "user_id": session.user_id,
            "session_id": session.id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
            "auth_time": session.auth_time,
            "amr": list(session.amr),
            "acr": session.acr,
            "created_at": now,
            "expires_at": now
            + dt.timedelta(seconds=runtime.current().settings.tokens.code_ttl_seconds),
            "used_at": None,
            "family_id": None,
        },
    )
    return code


def find(code: str, client_id: str) -> CodeGrant | None:
    """The unexpired code of this client behind ``code``, used or not (the
    exchange decides what a used one means), else None.  Writes nothing."""
    if not code or len(code) > 100:
        return None
    row = read_in_transaction(_CODE_BY_HASH, {"code_hash": secret_hash(code)})
    if row is None or row.client_id != client_id or row.expires_at <= clock.now():
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
        used=row.used_at is not None,
    )


@service
def exchange(grant: CodeGrant, *, client: RelyingParty) -> tokens.TokenSet:
    """Spend the code and issue its tokens, in one transaction.

    The conditional update comes first: on SQLite it takes the database's
    write lock, on PostgreSQL it waits for a racing exchange to finish; the
    session is then locked and checked, so that a forced logout either sees
    these tokens or this exchange sees the logout.  A used code revokes the
    family its first exchange started (committed) and raises
    InvalidGrantError."""
    now = clock.now()
    family_id = tokens.new_family_id()
    won = write(
        _SPEND_CODE,
        {"code_id": grant.id, "now": now, "used_now": now, "family_id": family_id},
    )
    if won == 0:
        row = read_in_transaction(_SPENT_CODE, {"code_id": grant.id})
        if row is None or row.used_at is None:
            raise InvalidGrantError("The code has expired.")
        replayed_family = row.family_id
        refuse(
            InvalidGrantError("The code was already used."),
            record=lambda: _replayed(grant, replayed_family),
        )
    session = sessions.lock(grant.session_id)
    try:
        member = members.get(grant.user_id)
    except NotFoundError:
        member = None
    settings = runtime.current().settings
    if (
        session is None
        or member is None
        or member.disabled
        or not session.is_live(now)
        or not sessions.serves_client(
            session,
            allow_stay_signed_in=client.allow_stay_signed_in,
            idle_minutes=settings.session.idle_minutes,
            now=now,
        )
    ):
        raise InvalidGrantError("The sign-in behind this code has ended.")
    sessions.record_client(session.id, client.client_id)
    scopes = grant.scope.split()
    offline = "offline_access" in scopes and session.remember and client.allow_stay_signed_in
    if "offline_access" in scopes and not offline:
        scopes.remove("offline_access")
    scope = " ".join(scopes)
    signed = tokens.sign_for_person(
        client=client,
        member=member,
        auth=tokens.Authentication(
            user_id=grant.user_id,
            session_id=grant.session_id,
            auth_time=grant.auth_time,
            amr=grant.amr,
            acr=grant.acr,
        ),
        scope=scope,
        family_id=family_id,
        refresh_scope=scope if client.allows_grant("refresh_token") else None,
        offline=offline,
        nonce=grant.nonce,
    )
    return tokens.record(signed)


def _replayed(grant: CodeGrant, family_id: str | None) -> None:
    if family_id:
        tokens.revoke_family(family_id, reason="code_replayed")
    events.record(
        "code.replayed",
        user_id=grant.user_id,
        client_id=grant.client_id,
        session_id=grant.session_id,
    )


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` codes past their expiry (joins the caller's
    transaction); returns how many went.

    A spent code is kept until then so that a replay still finds it and
    revokes what it issued."""
    return delete_batch(AuthorizationCode, AuthorizationCode.expires_at < now, batch=batch)


def forget_user(user_id: str) -> None:
    """Delete a cancelled member's codes (joins the caller's transaction)."""
    db.session.execute(delete(AuthorizationCode).where(AuthorizationCode.user_id == user_id))
