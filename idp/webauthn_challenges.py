"""WebAuthn challenges: issued for one ceremony, spent by its answer.

Every challenge is 32 random bytes, stored only as the SHA-256 of its
base64url form, single use and short-lived (:data:`TTL`).  An answer is
matched to its challenge through the challenge the browser echoes in
``clientDataJSON``, so nothing needs to be kept in the browser between the
options and the answer.  Spending is one conditional ``UPDATE ... WHERE
used_at IS NULL``: of two answers to one challenge, one wins.

This module owns the ``webauthn_challenges`` table; ``idp.passkeys`` runs
the ceremonies that use it."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from sqlalchemy import select, update
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from idp import clock
from idp.db import db, delete_batch, rowcount, secret_hash
from idp.errors import PasskeyError
from idp.models import WebauthnChallenge

__all__ = ["TTL", "issue", "mark_spent", "purge_expired", "spend"]

TTL = dt.timedelta(seconds=120)
"""How long a ceremony may take, from its options to its answer."""


def issue(
    purpose: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    qr_request_id: int | None = None,
) -> bytes:
    """A new challenge for ``purpose`` (joins the caller's transaction)."""
    challenge = secrets.token_bytes(32)
    now = clock.now()
    db.session.add(
        WebauthnChallenge(
            challenge_hash=secret_hash(bytes_to_base64url(challenge)),
            purpose=purpose,
            user_id=user_id,
            session_id=session_id,
            qr_request_id=qr_request_id,
            created_at=now,
            expires_at=now + TTL,
        )
    )
    return challenge


def spend(credential: dict[str, Any], purpose: str) -> tuple[bytes, WebauthnChallenge]:
    """The challenge this answer echoes, spent now; else PasskeyError."""
    try:
        client_data = json.loads(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        echoed = str(client_data["challenge"])
    except (KeyError, TypeError, ValueError) as e:
        raise PasskeyError("The passkey answer could not be read.", detail=str(e)) from e
    row = db.session.scalar(
        select(WebauthnChallenge).where(WebauthnChallenge.challenge_hash == secret_hash(echoed))
    )
    if row is None or row.purpose != purpose:
        raise PasskeyError("This passkey request is unknown. Try again.")
    if row.used_at is not None:
        raise PasskeyError("This passkey request was already used. Try again.")
    if row.expires_at <= clock.now():
        raise PasskeyError("This passkey request has expired. Try again.")
    if not mark_spent(row.id):
        raise PasskeyError("This passkey request was already used. Try again.")
    return base64url_to_bytes(echoed), row


def mark_spent(challenge_id: int) -> bool:
    """Spend a challenge: a conditional update, True for the one winner."""
    spent = db.session.execute(
        update(WebauthnChallenge)
        .where(WebauthnChallenge.id == challenge_id, WebauthnChallenge.used_at.is_(None))
        .values(used_at=clock.now())
    )
    return rowcount(spent) == 1


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` challenges past their expiry (joins the
    caller's transaction); returns how many went."""
    return delete_batch(WebauthnChallenge, WebauthnChallenge.expires_at < now, batch=batch)
