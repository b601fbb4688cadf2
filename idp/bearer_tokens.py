"""Access tokens as they come back: presented at introspection, UserInfo
and the admin API, checked before anything is answered.

The signature is checked first (``idp.keys`` remembers a token it has
verified), then the token's record, read by ``jti`` outside the request's
transaction in one round trip (``idp.prepared.read_one``): a forced logout
or a revocation on any node takes effect at once.  A ``client_credentials``
token has no record until it is revoked (``idp.tokens``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from idp import clock, members, runtime
from idp.db import AnyRow
from idp.errors import InvalidTokenError
from idp.models import AccessToken, User
from idp.prepared import read_one
from idp.tokens import ACCESS_TOKEN_TYP

__all__ = [
    "AccessClaims",
    "is_machine_token",
    "looks_like_jwt",
    "verify_access_token",
    "verify_access_token_with_member",
]


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


_AT = AccessToken.metadata.tables[AccessToken.__tablename__]
_USERS = User.metadata.tables[User.__tablename__]
# Built once, of plain table columns: every introspection and UserInfo call
# reads one of them (``make bench``).
_ACCESS_TOKEN_COLUMNS = (
    _AT.c.client_id,
    _AT.c.user_id,
    _AT.c.session_id,
    _AT.c.scope,
    _AT.c.revoked_at,
)
_ACCESS_TOKEN_ROW = select(*_ACCESS_TOKEN_COLUMNS).where(_AT.c.jti == bindparam("jti"))
_ACCESS_TOKEN_WITH_MEMBER = (
    select(*_ACCESS_TOKEN_COLUMNS, *members.MEMBER_COLUMNS)
    .select_from(_AT.outerjoin(_USERS, _USERS.c.id == _AT.c.user_id))
    .where(_AT.c.jti == bindparam("jti"))
)


def verify_access_token(token: str) -> AccessClaims:
    """A signed, unexpired, unrevoked access token of ours, or InvalidTokenError."""
    claims = _signed_access_claims(token)
    return _access_claims(claims, read_one(_ACCESS_TOKEN_ROW, {"jti": claims["jti"]}))


def verify_access_token_with_member(token: str) -> tuple[AccessClaims, members.Member | None]:
    """:func:`verify_access_token`, and the member the token names (None: a
    machine token, or a member who is gone) read in the same round trip:
    UserInfo asks both on every call."""
    claims = _signed_access_claims(token)
    row = read_one(_ACCESS_TOKEN_WITH_MEMBER, {"jti": claims["jti"]})
    access = _access_claims(claims, row)
    return access, None if row is None else members.member_of_row(row)


def _signed_access_claims(token: str) -> dict[str, Any]:
    """The claims of a token signed by us as an access token, unexpired, of
    this issuer, with a ``jti``; else InvalidTokenError."""
    rt = runtime.current()
    if not token or len(token) > 8192:
        raise InvalidTokenError("The access token is invalid.")
    _, claims = rt.keys.verify(token, typ=ACCESS_TOKEN_TYP)
    exp = claims.get("exp")
    if (
        claims.get("iss") != rt.settings.server.issuer
        or not isinstance(exp, int)
        or exp <= clock.now_ts()
    ):
        raise InvalidTokenError("The access token is invalid or expired.")
    if not isinstance(claims.get("jti"), str):
        raise InvalidTokenError("The access token is invalid.")
    return claims


def _access_claims(claims: dict[str, Any], row: AnyRow | None) -> AccessClaims:
    """The token as its record says (revoked: InvalidTokenError); a machine
    token has no record until it is revoked."""
    jti = claims["jti"]
    if row is None and is_machine_token(claims):
        return AccessClaims(
            jti=jti,
            client_id=claims["client_id"],
            sub=claims["sub"],
            user_id=None,
            session_id=None,
            scopes=frozenset(str(claims.get("scope", "")).split()),
            claims=claims,
        )
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


def is_machine_token(claims: dict[str, Any]) -> bool:
    """A ``client_credentials`` token: it names its client as subject, and no session."""
    client_id = claims.get("client_id")
    return isinstance(client_id, str) and claims.get("sub") == client_id and "sid" not in claims


def looks_like_jwt(token: str) -> bool:
    """Shaped like one of our access tokens (anything else would be a refresh token)."""
    return token.count(".") == 2
