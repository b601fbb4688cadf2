"""Tokens: RFC 9068 JWT access tokens, ID tokens, refresh-token families.

Access tokens are signed JWTs that relying parties verify on their own.  One
issued in a person's sign-in session is also recorded by ``jti``, so that
revocation and forced logout take effect before ``exp`` (introspection and
UserInfo check the record: ``idp.bearer_tokens``).  A ``client_credentials`` token names no person
and no session -- no forced logout can reach it -- so issuing it writes
nothing (a commit per machine token would be most of its cost); revoking it
records it then, as revoked, and a valid signature with no record is such a
token, live until ``exp``.

Refresh tokens are opaque, stored as SHA-256 digests, and form families:
one sign-in at one service, every rotation (``idp.rotation``) adding a
member.  Revoking a family revokes its access tokens too."""

from __future__ import annotations

import datetime as dt
import hashlib
from base64 import urlsafe_b64encode
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import delete, insert, update

from idp import accounts, clock, events, members, runtime
from idp.clients import RelyingParty
from idp.db import db, delete_batch, new_secret, secret_hash, service
from idp.models import AccessToken, RefreshToken
from idp.prepared import write

__all__ = [
    "SignedTokens",
    "TokenSet",
    "forget_user",
    "issue_for_client",
    "new_family_id",
    "purge_expired",
    "record",
    "revoke",
    "revoke_family",
    "sign_for_person",
]

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - RFC 9068 media type


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What the token endpoint answers (RFC 6749 §5.1, OIDC Core 3.1.3.3)."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


@dataclass(frozen=True, slots=True)
class Authentication:
    """Who signed in, when and how: carried from the code to every refresh."""

    user_id: str
    session_id: str
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str


def new_family_id() -> str:
    return new_secret(24)


# Statements built once, of plain table columns: on the hot paths (every
# token issued) the ORM's unit of work and per-statement work cost more than
# the database does (``make bench``).
_AT = AccessToken.metadata.tables[AccessToken.__tablename__]
_INSERT_ACCESS_TOKEN = insert(_AT)
_RT = RefreshToken.metadata.tables[RefreshToken.__tablename__]
_INSERT_REFRESH_TOKEN = insert(_RT)


def _sign_access_token(
    *,
    client_id: str,
    scope: str,
    user_id: str | None = None,
    session_id: str | None = None,
    family_id: str | None = None,
    auth_time: dt.datetime | None = None,
    acr: str = "",
) -> tuple[IssuedAccessToken, dict[str, Any]]:
    """An RFC 9068 access token, and the row that records it (a machine
    token's goes unwritten)."""
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
    row = {
        "jti": jti,
        "client_id": client_id,
        "user_id": user_id,
        "session_id": session_id,
        "family_id": family_id,
        "scope": scope,
        "issued_at": now,
        "expires_at": now + dt.timedelta(seconds=ttl),
        "revoked_at": None,
    }
    token = rt.keys.sign(claims, typ=ACCESS_TOKEN_TYP)
    return IssuedAccessToken(token=token, jti=jti, expires_in=ttl), row


def _half_hash(value: str) -> str:
    """``at_hash``: left half of the SHA-256 of the ASCII token (OIDC Core 3.1.3.6).

    SHA-256 because both algorithms we sign with (RS256, ES256) use it."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _sign_id_token(
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


def _new_refresh_token(
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
) -> tuple[str, dict[str, Any]]:
    """A new member of a family: its value, and the row that records it."""
    rt = runtime.current()
    value = new_secret(32)
    now = clock.now()
    row = {
        "token_hash": secret_hash(value),
        "family_id": family_id,
        "client_id": client_id,
        "user_id": user_id,
        "session_id": session_id,
        "scope": scope,
        "offline": offline,
        "auth_time": auth_time,
        "amr": list(amr),
        "acr": acr,
        "created_at": now,
        "expires_at": now + dt.timedelta(days=rt.settings.tokens.refresh_token_ttl_days),
        "spent_at": None,
        "revoked_at": None,
        "grace_uses": 0,
    }
    return value, row


def revoke(
    by: Literal["family_id", "session_id", "user_id"],
    values: Collection[str],
    *,
    now: dt.datetime,
    keep_offline: bool = False,
) -> None:
    """Revoke the live refresh and access tokens whose family, session or
    person (``by``: both tables have the three) is one of ``values``: two
    statements whatever the count (joins the caller's transaction).
    ``keep_offline`` spares offline refresh tokens, which outlive the
    sign-out of their session."""
    refresh = update(RefreshToken).where(
        getattr(RefreshToken, by).in_(values), RefreshToken.revoked_at.is_(None)
    )
    if keep_offline:
        refresh = refresh.where(RefreshToken.offline.is_(False))
    db.session.execute(refresh.values(revoked_at=now))
    db.session.execute(
        update(AccessToken)
        .where(getattr(AccessToken, by).in_(values), AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_family(family_id: str, *, reason: str) -> None:
    """Revoke every refresh and access token of a family (joins the caller's transaction)."""
    revoke("family_id", [family_id], now=clock.now())
    events.record("tokens.family_revoked", family_id=family_id, reason=reason)


@dataclass(frozen=True, slots=True)
class SignedTokens:
    """Tokens for a person, signed but not yet recorded: ``record(sign_for_person(...))``
    issues them, in a transaction that holds the session's lock.

    The signatures are most of a refresh's work: made before the
    transaction takes its locks (``idp.rotation``), no request waits on
    another's signing -- on SQLite the one write lock is then held only for
    the writes themselves."""

    tokens: TokenSet
    access_row: dict[str, Any]
    refresh_row: dict[str, Any] | None


def sign_for_person(
    *,
    client: RelyingParty,
    member: members.Member,
    auth: Authentication,
    scope: str,
    family_id: str,
    refresh_scope: str | None,
    offline: bool,
    nonce: str | None,
) -> SignedTokens:
    """Access token, refresh token (``refresh_scope`` None: none) and, for
    ``openid``, an ID token: signed and made, nothing written."""
    access, access_row = _sign_access_token(
        client_id=client.client_id,
        scope=scope,
        user_id=member.id,
        session_id=auth.session_id,
        family_id=family_id,
        auth_time=auth.auth_time,
        acr=auth.acr,
    )
    refresh = refresh_row = None
    if refresh_scope is not None:
        refresh, refresh_row = _new_refresh_token(
            family_id=family_id,
            client_id=client.client_id,
            user_id=member.id,
            session_id=auth.session_id,
            scope=refresh_scope,
            offline=offline,
            auth_time=auth.auth_time,
            amr=auth.amr,
            acr=auth.acr,
        )
    scopes = frozenset(scope.split())
    id_token = None
    if "openid" in scopes:
        id_token = _sign_id_token(
            client_id=client.client_id,
            user_claims=accounts.userinfo_claims(member, scopes),
            session_id=auth.session_id,
            auth_time=auth.auth_time,
            amr=auth.amr,
            acr=auth.acr,
            nonce=nonce,
            access_token=access.token,
        )
    issued = TokenSet(
        access_token=access.token,
        expires_in=access.expires_in,
        scope=scope,
        refresh_token=refresh,
        id_token=id_token,
    )
    return SignedTokens(tokens=issued, access_row=access_row, refresh_row=refresh_row)


def record(signed: SignedTokens) -> TokenSet:
    """Record tokens signed by :func:`sign_for_person` (joins the caller's
    transaction, which must hold the session's lock:
    :func:`idp.sessions.lock`) and return them."""
    write(_INSERT_ACCESS_TOKEN, signed.access_row)
    if signed.refresh_row is not None:
        write(_INSERT_REFRESH_TOKEN, signed.refresh_row)
    return signed.tokens


@service
def issue_for_client(client: RelyingParty, scope: str) -> TokenSet:
    """``client_credentials``: an access token naming the client itself,
    recorded only if it is revoked."""
    access, _ = _sign_access_token(client_id=client.client_id, scope=scope)
    return TokenSet(access_token=access.token, expires_in=access.expires_in, scope=scope)


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` access-token records and as many refresh
    tokens past their expiry (joins the caller's transaction); returns the
    larger count.

    An expired token fails verification on its own ``exp``; its record is
    only needed until then.  Which services a session reached is kept on
    the session, not read from these rows."""
    return max(
        delete_batch(AccessToken, AccessToken.expires_at < now, batch=batch),
        delete_batch(RefreshToken, RefreshToken.expires_at < now, batch=batch),
    )


def forget_user(user_id: str) -> None:
    """Delete every token record of a cancelled member (joins the caller's
    transaction, which has revoked them first)."""
    db.session.execute(delete(AccessToken).where(AccessToken.user_id == user_id))
    db.session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
