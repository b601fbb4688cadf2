"""Introspection (RFC 7662) and revocation (RFC 7009): what a client may
learn of a token it holds, and how it gives one back.

Both take either kind of token without a type hint: a JWT is one of our
access tokens (``idp.tokens`` verifies it), anything else is looked up as a
refresh token.  A client learns and revokes only its own tokens (an admin
client may introspect any), and an unknown token is answered as a foreign
one, so neither endpoint tells a guesser anything."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from idp import bearer_tokens, clock, events, runtime, sessions, tokens
from idp.clients import RelyingParty
from idp.db import db, secret_hash, service
from idp.errors import InvalidTokenError
from idp.models import AccessToken, RefreshToken

__all__ = ["introspect", "revoke"]


def introspect(token: str, client: RelyingParty) -> dict[str, Any]:
    """RFC 7662 answer for ``client``: inactive unless the token is live and
    the client's own (an admin client may introspect any token).  The type
    hint is not needed: a JWT is an access token, anything else is looked
    up as a refresh token (§2.1 lets the server ignore the hint)."""
    inactive: dict[str, Any] = {"active": False}
    if not token or len(token) > 8192:
        return inactive
    if bearer_tokens.looks_like_jwt(token):
        try:
            access = bearer_tokens.verify_access_token(token)
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
    if not row.offline:
        session = sessions.get(row.session_id) if row.session_id else None
        if session is None or not session.is_live(now):
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


@service
def revoke(token: str, client: RelyingParty) -> None:
    """RFC 7009: revoke a token of this client; unknown or foreign tokens are
    ignored (the answer is 200 either way, so nothing is revealed).  Revoking
    a refresh token revokes its whole family, access tokens included."""
    if not token or len(token) > 8192:
        return
    if bearer_tokens.looks_like_jwt(token):
        try:
            access = bearer_tokens.verify_access_token(token)
        except InvalidTokenError:
            return
        if access.client_id != client.client_id:
            return
        now = clock.now()
        if access.user_id is None and bearer_tokens.is_machine_token(access.claims):
            # Recorded now, as revoked: it was never recorded when issued.
            insert_ = postgresql.insert if _dialect() == "postgresql" else sqlite.insert
            db.session.execute(
                insert_(AccessToken)
                .values(
                    jti=access.jti,
                    client_id=access.client_id,
                    scope=" ".join(sorted(access.scopes)),
                    issued_at=dt.datetime.fromtimestamp(int(access.claims["iat"]), dt.UTC),
                    expires_at=dt.datetime.fromtimestamp(int(access.claims["exp"]), dt.UTC),
                    revoked_at=now,
                )
                .on_conflict_do_nothing(index_elements=["jti"])
            )
        db.session.execute(
            update(AccessToken)
            .where(AccessToken.jti == access.jti, AccessToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        events.record("access_token.revoked", user_id=access.user_id, client_id=client.client_id)
        return
    row = db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == secret_hash(token))
    )
    if row is None or row.client_id != client.client_id:
        return
    tokens.revoke_family(row.family_id, reason="revoked_by_client")


def _dialect() -> str:
    return db.session.get_bind().dialect.name
