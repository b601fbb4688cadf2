"""Tokens: RFC 9068 JWT access tokens, ID tokens, refresh-token families.

Access tokens are signed JWTs that relying parties verify on their own, and
each is also recorded by ``jti`` so that revocation and forced logout take
effect before ``exp`` (introspection and UserInfo check the record).

Refresh tokens are opaque, stored as SHA-256 digests and rotate on every use.
A spent token coming back means two parties hold the family (RFC 9700
§4.14).  We cannot tell which is honest, so the family and the sign-in
session it came from end."""

from __future__ import annotations

import datetime as dt
import hashlib
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from idp import clock, events, runtime, sessions
from idp.clients import RelyingParty
from idp.db import db, new_secret, secret_hash
from idp.errors import InvalidTokenError
from idp.models import AccessToken, RefreshToken

__all__ = [
    "AccessClaims",
    "IssuedAccessToken",
    "RefreshGrant",
    "find_refresh_token",
    "introspect",
    "issue_access_token",
    "issue_refresh_token",
    "new_family_id",
    "purge_expired",
    "revoke",
    "revoke_family",
    "sign_id_token",
    "spend_refresh_token",
    "verify_access_token",
]

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - RFC 9068 media type


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified, unrevoked access token."""

    jti: str
    client_id: str
    sub: str
    user_id: str | None
    session_id: str | None
    scopes: frozenset[str]
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RefreshGrant:
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


def new_family_id() -> str:
    return new_secret(24)


def issue_access_token(
    *,
    client_id: str,
    scope: str,
    user_id: str | None = None,
    session_id: str | None = None,
    family_id: str | None = None,
    auth_time: dt.datetime | None = None,
    acr: str = "",
) -> IssuedAccessToken:
    """Sign an RFC 9068 access token and record it (the caller commits)."""
    rt = runtime.current()
    ttl = rt.settings.tokens.access_token_ttl_seconds
    now = clock.now()
    jti = new_secret(24)
    claims: dict[str, Any] = {
        "iss": rt.settings.server.issuer,
        "sub": user_id or client_id,
        "aud": rt.settings.server.issuer,
        "client_id": client_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl,
        "jti": jti,
        "scope": scope,
    }
    if auth_time is not None:
        claims["auth_time"] = int(auth_time.timestamp())
    if acr:
        claims["acr"] = acr
    if session_id:
        claims["sid"] = session_id
    token = rt.keys.sign(claims, typ=ACCESS_TOKEN_TYP)
    db.session.add(
        AccessToken(
            jti=jti,
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            family_id=family_id,
            scope=scope,
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    return IssuedAccessToken(token=token, jti=jti, expires_in=ttl)


def _half_hash(value: str) -> str:
    """``at_hash``: left half of the SHA-256 of the ASCII token (OIDC Core 3.1.3.6).

    SHA-256 because both algorithms we sign with (RS256, ES256) use it."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def sign_id_token(
    *,
    client_id: str,
    user_claims: dict[str, Any],
    session_id: str,
    auth_time: dt.datetime,
    amr: tuple[str, ...],
    acr: str,
    nonce: str | None,
    access_token: str | None,
) -> str:
    """An ID token for a relying party (OIDC Core 2), signed with the active key."""
    rt = runtime.current()
    now = clock.now_ts()
    claims: dict[str, Any] = {
        **user_claims,
        "iss": rt.settings.server.issuer,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "exp": now + rt.settings.tokens.id_token_ttl_seconds,
        "auth_time": int(auth_time.timestamp()),
        "sid": session_id,
        "amr": list(amr),
    }
    if acr:
        claims["acr"] = acr
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["at_hash"] = _half_hash(access_token)
    return rt.keys.sign(claims, typ="JWT")


def issue_refresh_token(
    *,
    family_id: str,
    client_id: str,
    user_id: str,
    session_id: str,
    scope: str,
    offline: bool,
    auth_time: dt.datetime,
    amr: tuple[str, ...],
    acr: str,
) -> str:
    """Add a new member to a family and return its value (the caller commits)."""
    rt = runtime.current()
    value = new_secret(32)
    now = clock.now()
    db.session.add(
        RefreshToken(
            token_hash=secret_hash(value),
            family_id=family_id,
            client_id=client_id,
            user_id=user_id,
            session_id=session_id,
            scope=scope,
            offline=offline,
            auth_time=auth_time,
            amr=list(amr),
            acr=acr,
            created_at=now,
            expires_at=now + dt.timedelta(days=rt.settings.tokens.refresh_token_ttl_days),
        )
    )
    return value


def revoke_family(family_id: str, *, reason: str) -> None:
    """Revoke every refresh and access token of a family (caller commits)."""
    now = clock.now()
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.session.execute(
        update(AccessToken)
        .where(AccessToken.family_id == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    events.record("tokens.family_revoked", family_id=family_id, reason=reason)


def find_refresh_token(value: str, client_id: str) -> RefreshGrant | None:
    """The usable refresh token behind ``value`` for this client, else None.

    A spent token is reuse: its family is revoked and its sign-in session
    ended, committed at once so that the failing request cannot roll it
    back.  A token that is revoked, expired, another client's, or whose
    session ended (unless it is an offline token) is simply unusable."""
    if not value or len(value) > 100:
        return None
    row = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == secret_hash(value))
    )
    if row is None or row.client_id != client_id:
        return None
    now = clock.now()
    if row.spent_at is not None and row.revoked_at is None:
        revoke_family(row.family_id, reason="refresh_token_reuse")
        events.record(
            "refresh_token.reused",
            user_id=row.user_id,
            client_id=client_id,
            session_id=row.session_id,
        )
        sessions.force_logout(
            session_ids=[row.session_id],
            reason=sessions.LogoutReason.REFRESH_TOKEN_REUSE,
            actor="system",
            commit=False,
        )
        db.session.commit()
        return None
    if row.revoked_at is not None or row.spent_at is not None or row.expires_at <= now:
        return None
    if not row.offline and not sessions.is_live(row.session_id):
        return None
    return RefreshGrant(
        id=row.id,
        family_id=row.family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        session_id=row.session_id,
        scope=row.scope,
        offline=row.offline,
        auth_time=row.auth_time,
        amr=tuple(row.amr),
        acr=row.acr,
    )


def spend_refresh_token(grant: RefreshGrant) -> bool:
    """Mark the token spent (caller commits); False if a racing request won."""
    result = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == grant.id, RefreshToken.spent_at.is_(None))
        .values(spent_at=clock.now())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # CursorResult


def verify_access_token(token: str) -> AccessClaims:
    """A signed, unexpired, unrevoked access token of ours, or InvalidTokenError."""
    rt = runtime.current()
    if not token or len(token) > 8192:
        raise InvalidTokenError("The access token is invalid.")
    _, claims = rt.keys.verify(token, typ=ACCESS_TOKEN_TYP)
    now = clock.now_ts()
    exp = claims.get("exp")
    jti = claims.get("jti")
    if claims.get("iss") != rt.settings.server.issuer or not isinstance(exp, int) or exp <= now:
        raise InvalidTokenError("The access token is invalid or expired.")
    if not isinstance(jti, str):
        raise InvalidTokenError("The access token is invalid.")
    row = db.session.get(AccessToken, jti)
    if row is None or row.revoked_at is not None:
        raise InvalidTokenError("The access token was revoked.")
    return AccessClaims(
        jti=jti,
        client_id=row.client_id,
        sub=str(claims.get("sub")),
        user_id=row.user_id,
        session_id=row.session_id,
        scopes=frozenset(row.scope.split()),
        claims=claims,
    )


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def introspect(token: str, client: RelyingParty, hint: str | None = None) -> dict[str, Any]:
    """RFC 7662 answer for ``client``: inactive unless the token is live and
    the client's own (an admin client may introspect any token)."""
    inactive: dict[str, Any] = {"active": False}
    if _looks_like_jwt(token) and hint != "refresh_token":
        try:
            access = verify_access_token(token)
        except InvalidTokenError:
            return inactive
        if access.client_id != client.client_id and not client.is_admin:
            return inactive
        c = access.claims
        answer = {
            "active": True,
            "token_type": "Bearer",
            "client_id": access.client_id,
            "scope": c.get("scope", ""),
            "sub": access.sub,
            "iss": c["iss"],
            "aud": c["aud"],
            "iat": c["iat"],
            "exp": c["exp"],
            "jti": access.jti,
        }
        for claim in ("auth_time", "acr", "sid"):
            if claim in c:
                answer[claim] = c[claim]
        return answer
    row = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == secret_hash(token))
    )
    now = clock.now()
    if (
        row is None
        or row.revoked_at is not None
        or row.spent_at is not None
        or row.expires_at <= now
        or (row.client_id != client.client_id and not client.is_admin)
    ):
        return inactive
    if not row.offline and not sessions.is_live(row.session_id):
        return inactive
    return {
        "active": True,
        "token_type": "refresh_token",
        "client_id": row.client_id,
        "scope": row.scope,
        "sub": row.user_id,
        "iss": runtime.current().settings.server.issuer,
        "iat": int(row.created_at.timestamp()),
        "exp": int(row.expires_at.timestamp()),
        "sid": row.session_id,
    }


def revoke(token: str, client: RelyingParty, hint: str | None = None) -> None:
    """RFC 7009: revoke a token of this client; unknown or foreign tokens are
    ignored (the answer is 200 either way, so nothing is revealed).  Revoking
    a refresh token revokes its whole family, access tokens included."""
    if _looks_like_jwt(token) and hint != "refresh_token":
        try:
            access = verify_access_token(token)
        except InvalidTokenError:
            return
        if access.client_id != client.client_id:
            return
        db.session.execute(
            update(AccessToken)
            .where(AccessToken.jti == access.jti, AccessToken.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )
        events.record("access_token.revoked", user_id=access.user_id, client_id=client.client_id)
        db.session.commit()
        return
    row = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == secret_hash(token))
    )
    if row is None or row.client_id != client.client_id:
        return
    revoke_family(row.family_id, reason="revoked_by_client")
    db.session.commit()


def purge_expired(now: dt.datetime) -> None:
    """Delete access-token records and refresh tokens past their expiry.

    An expired token fails verification on its own ``exp``; its record is
    only needed until then (the caller commits)."""
    db.session.execute(delete(AccessToken).where(AccessToken.expires_at < now))
    db.session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
