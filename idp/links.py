"""Single-use links sent by mail: confirm an address, change it, reset a password.

The link carries a random token; the server keeps only its SHA-256 with
what it is for, whose account and which address.  Opening it spends it by
one conditional update in the transaction that acts on it, so of two
simultaneous clicks exactly one does anything.  A newer link for the same
purpose and account makes the older ones useless (a person who asked twice
uses the last mail), and every link expires (a reset after 30 minutes)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, update

from idp import clock, runtime
from idp.db import db, delete_batch, new_secret, rowcount, secret_hash
from idp.errors import LinkError
from idp.models import EmailLink

__all__ = ["LinkUse", "Purpose", "issue", "peek", "purge_expired", "redeem"]


class Purpose(StrEnum):
    CONFIRM_EMAIL = "confirm_email"
    CHANGE_EMAIL = "change_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a secret


LIFETIME = {
    Purpose.CONFIRM_EMAIL: dt.timedelta(days=3),
    Purpose.CHANGE_EMAIL: dt.timedelta(days=1),
    Purpose.RESET_PASSWORD: dt.timedelta(minutes=30),
}

_PATHS = {
    Purpose.CONFIRM_EMAIL: "/register/verify/",
    Purpose.CHANGE_EMAIL: "/account/email/verify/",
    Purpose.RESET_PASSWORD: "/recover/password/",
}


@dataclass(frozen=True, slots=True)
class LinkUse:
    user_id: str
    email: str
    purpose: Purpose


def issue(purpose: Purpose, *, user_id: str, email: str) -> str:
    """A new link (absolute URL under the issuer) for ``purpose``; earlier
    unused links of the same purpose for the account stop working.  Joins
    the caller's transaction (which also queues the mail)."""
    now = clock.now()
    db.session.execute(
        update(EmailLink)
        .where(
            EmailLink.user_id == user_id,
            EmailLink.purpose == str(purpose),
            EmailLink.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = new_secret(32)
    db.session.add(
        EmailLink(
            token_hash=secret_hash(token),
            purpose=str(purpose),
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + LIFETIME[purpose],
        )
    )
    return runtime.current().settings.url(_PATHS[purpose] + token)


def _row(token: str, purpose: Purpose) -> EmailLink:
    row = (
        db.session.scalar(select(EmailLink).where(EmailLink.token_hash == secret_hash(token)))
        if token and len(token) <= 100
        else None
    )
    if row is None or row.purpose != str(purpose):
        raise LinkError("This link is unknown. Ask for a new one.")
    if row.used_at is not None:
        raise LinkError("This link was already used. Ask for a new one.")
    if row.expires_at <= clock.now():
        raise LinkError("This link has expired. Ask for a new one.")
    return row


def peek(token: str, purpose: Purpose) -> LinkUse:
    """What a link would do, without using it (a page shows a form first).
    Raises LinkError.  Writes nothing."""
    row = _row(token, purpose)
    return LinkUse(user_id=row.user_id, email=row.email, purpose=purpose)


def redeem(token: str, purpose: Purpose) -> LinkUse:
    """Spend the link; raises LinkError if it is unknown, used or expired
    (also when a simultaneous click spent it first).  Joins the caller's
    transaction, which does what the link is for."""
    row = _row(token, purpose)
    spent = db.session.execute(
        update(EmailLink)
        .where(
            EmailLink.id == row.id,
            EmailLink.used_at.is_(None),
            EmailLink.expires_at > clock.now(),
        )
        .values(used_at=clock.now())
    )
    if rowcount(spent) != 1:
        raise LinkError("This link was already used. Ask for a new one.")
    return LinkUse(user_id=row.user_id, email=row.email, purpose=purpose)


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` links a day past their expiry (joins the
    caller's transaction); returns how many went."""
    return delete_batch(EmailLink, EmailLink.expires_at < now - dt.timedelta(days=1), batch=batch)
