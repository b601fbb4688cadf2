"""Refresh-token rotation: a refresh token spent for a new pair, and what a
spent one coming back means.

Refresh tokens are opaque, stored as SHA-256 digests (``idp.tokens`` issues
them) and rotate on every use.  A spent token coming back means two parties
hold the family (RFC 9700 §4.14).  We cannot tell which is honest, so the
family and the sign-in session it came from end -- with one exception that
keeps real web services working: a confidential client that presents a
token it rotated less than ``tokens.refresh_reuse_seconds`` ago gets a fresh
pair in the same family (parallel workers of one service refresh the same
token at once; Auth0's reuse interval and Okta's grace period do the same).
Public clients get no grace: whoever else holds their token holds
everything.

Single use is decided by a conditional update whose row count picks the
winner, in the transaction that issues; the session row is locked before
(see ``idp.sessions``), so a forced logout racing a refresh either revokes
what the refresh issued or makes it fail."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update

from idp import (
    alerts,
    clock,
    events,
    forced_logout,
    members,
    risk,
    runtime,
    sessions,
    tokens,
)
from idp.clients import RelyingParty
from idp.db import AnyRow, db, refuse, rowcount, secret_hash, service
from idp.errors import InvalidGrantError
from idp.models import RefreshToken, User
from idp.prepared import read_in_transaction, write
from idp.sessions import SessionInfo

__all__ = ["RefreshGrant", "find", "rotate"]


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A refresh token of the presenting client, spent or not (the rotation
    decides what a spent one means)."""

    id: int
    family_id: str
    client_id: str
    user_id: str
    session_id: str
    scope: str
    offline: bool
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str
    spent_at: dt.datetime | None
    member: members.Member | None  # None: the account is gone

    @property
    def auth(self) -> tokens.Authentication:
        return tokens.Authentication(
            user_id=self.user_id,
            session_id=self.session_id,
            auth_time=self.auth_time,
            amr=self.amr,
            acr=self.acr,
        )


# Built once, of table columns: every refresh reads and spends a token.
_RT = RefreshToken.metadata.tables[RefreshToken.__tablename__]
_USERS = User.metadata.tables[User.__tablename__]
# The token and its member in one round trip: every refresh needs both.
_REFRESH_TOKEN_ROW = select(
    _RT.c.id.label("token_id"),
    _RT.c.family_id,
    _RT.c.client_id,
    _RT.c.user_id,
    _RT.c.session_id,
    _RT.c.scope,
    _RT.c.offline,
    _RT.c.auth_time,
    _RT.c.amr,
    _RT.c.acr,
    _RT.c.expires_at,
    _RT.c.spent_at,
    _RT.c.revoked_at,
    *members.MEMBER_COLUMNS,
).select_from(_RT.outerjoin(_USERS, _USERS.c.id == _RT.c.user_id))
_REFRESH_TOKEN_BY_HASH = _REFRESH_TOKEN_ROW.where(_RT.c.token_hash == bindparam("token_hash"))
_REFRESH_TOKEN_BY_ID = _REFRESH_TOKEN_ROW.where(_RT.c.id == bindparam("token_id"))
_SPEND_REFRESH_TOKEN = (
    update(_RT)
    .where(
        _RT.c.id == bindparam("token_id"),
        _RT.c.spent_at.is_(None),
        _RT.c.revoked_at.is_(None),
        _RT.c.expires_at > bindparam("now"),
    )
    .values(spent_at=bindparam("spent_now", type_=_RT.c.spent_at.type))
)


def find(value: str, client_id: str) -> RefreshGrant | None:
    """The refresh token behind ``value`` if it is this client's, unrevoked
    and unexpired -- spent or not: :func:`rotate` decides what a spent one
    means.  A look-up: writes nothing."""
    if not value or len(value) > 100:
        return None
    row = read_in_transaction(_REFRESH_TOKEN_BY_HASH, {"token_hash": secret_hash(value)})
    if row is None or row.client_id != client_id:
        return None
    if row.revoked_at is not None or row.expires_at <= clock.now():
        return None
    return _grant(row)


def _grant(row: AnyRow) -> RefreshGrant:
    return RefreshGrant(
        id=row.token_id,
        family_id=row.family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        session_id=row.session_id,
        scope=row.scope,
        offline=row.offline,
        auth_time=row.auth_time,
        amr=tuple(row.amr),
        acr=row.acr,
        spent_at=row.spent_at,
        member=members.member_of_row(row),
    )


def _session_serves(
    session: SessionInfo | None, grant: RefreshGrant, client: RelyingParty, now: dt.datetime
) -> bool:
    """An offline token outlives its session's sign-out; any other needs the
    session live and willing to serve this client."""
    if session is None:
        return False
    if grant.offline:
        return True
    return session.is_live(now) and sessions.serves_client(
        session,
        allow_stay_signed_in=client.allow_stay_signed_in,
        idle_minutes=runtime.current().settings.session.idle_minutes,
        now=now,
    )


@service
def rotate(
    grant: RefreshGrant, *, client: RelyingParty, confidential: bool, scope: str | None
) -> tokens.TokenSet:
    """Spend a refresh token for a new one in its family, with a new access
    token (narrowed to ``scope`` if given) and, for ``openid``, an ID token.

    Raises InvalidGrantError when the sign-in behind it ended, the account
    is unavailable or the token was used before.  A token used before is
    reuse: the family is revoked and the session forced out (committed,
    whatever the request does next) -- unless a confidential client
    presents it within ``tokens.refresh_reuse_seconds`` of its rotation."""
    now = clock.now()
    member = grant.member
    if member is None or member.disabled:
        raise InvalidGrantError("The account behind this token is unavailable.")
    narrowed = " ".join(s for s in grant.scope.split() if not scope or s in scope.split())
    signed = tokens.sign_for_person(  # before any lock: signing is most of the work
        client=client,
        member=member,
        auth=grant.auth,
        scope=narrowed,
        family_id=grant.family_id,
        refresh_scope=grant.scope,  # narrowing applies to this access token only
        offline=grant.offline,
        nonce=None,
    )
    session = sessions.lock(grant.session_id)  # sessions before tokens: no deadlock
    if grant.spent_at is None:
        spent = write(_SPEND_REFRESH_TOKEN, {"token_id": grant.id, "now": now, "spent_now": now})
        if spent == 0:
            # Another request spent it first, or a forced logout revoked it.
            current = _reread(grant.id)
            if current is None or current.revoked_at is not None:
                raise InvalidGrantError("The refresh token is no longer valid.")
            grant = _grant(current)
    if grant.spent_at is not None:
        _reuse_within_grace(grant, confidential=confidential, now=now)
    if not _session_serves(session, grant, client, now):
        raise InvalidGrantError("The sign-in behind this token has ended.")
    return tokens.record(signed)


def _reread(token_id: int) -> AnyRow | None:
    return read_in_transaction(_REFRESH_TOKEN_BY_ID, {"token_id": token_id})


def _reuse_within_grace(grant: RefreshGrant, *, confidential: bool, now: dt.datetime) -> None:
    """Return if this reuse is a confidential client's overlapping request
    (``idp.risk``); else revoke the family, force the session out, commit
    that, and raise."""
    assert grant.spent_at is not None  # noqa: S101 - only spent tokens come here
    grace_seconds = runtime.current().settings.tokens.refresh_reuse_seconds
    decision = risk.assess_refresh_reuse(
        confidential=confidential, since_rotation=now - grant.spent_at, grace_seconds=grace_seconds
    )
    if decision.action is risk.Action.ALLOW:
        # A conditional write: the family may have been revoked meanwhile.
        counted = db.session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == grant.id,
                RefreshToken.revoked_at.is_(None),
                RefreshToken.spent_at > now - dt.timedelta(seconds=grace_seconds),
            )
            .values(grace_uses=RefreshToken.grace_uses + 1)
        )
        if rowcount(counted) == 1:
            events.record(
                "refresh_token.reused_within_grace",
                user_id=grant.user_id,
                client_id=grant.client_id,
                session_id=grant.session_id,
            )
            return
        current = _reread(grant.id)
        if current is None or current.revoked_at is not None:
            # A forced logout or a revocation came first: nothing to punish.
            raise InvalidGrantError("The refresh token is no longer valid.")
    refuse(
        InvalidGrantError("The refresh token was already used."),
        record=lambda: _end_reused_family(grant),
    )


def _end_reused_family(grant: RefreshGrant) -> None:
    tokens.revoke_family(grant.family_id, reason="refresh_token_reuse")
    events.record(
        "refresh_token.reused",
        user_id=grant.user_id,
        client_id=grant.client_id,
        session_id=grant.session_id,
    )
    forced_logout.force_logout(
        session_ids=[grant.session_id],
        reason=forced_logout.LogoutReason.REFRESH_TOKEN_REUSE,
        actor="system",
    )
    alerts.signin_ended(user_id=grant.user_id, reason="refresh_token_reuse")
