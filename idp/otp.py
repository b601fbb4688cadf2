"""One-time codes: TOTP (RFC 6238) with recovery codes, and mailed sign-in codes.

* TOTP is set up on ``/account/security``: a new secret is shown as an
  ``otpauth://`` QR code and as text, and is turned on only by a first
  right code (the person's app has it).  Turning it on shows ten recovery
  codes once; only their SHA-256 is kept (80 random bits each, so a digest
  is enough, as for every other high-entropy secret here).
* A code is accepted in the current 30-second step or one either side (a
  phone's clock drifts), and never twice: the step of the last accepted
  code is stored and a code must come from a later one, decided by one
  conditional update (two simultaneous uses of one code: one wins).
* A recovery code is spent by a conditional update too.
* A six-digit code mailed for a step-up (members without TOTP) belongs to
  its sign-in session and is checked there (``idp.step_up``); this module
  makes it.

The TOTP secret itself must stay readable to compute codes, so it is the one
credential not stored as a digest: it is sealed under the data key
(``idp.sealing``), bound to its account, so the database alone gives no one
a member's codes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import io
import logging
import secrets
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import delete, select, update

from idp import clock, events, runtime, sealing
from idp.db import db, rowcount, secret_hash, service
from idp.errors import OtpError, SealedValueError, UsageError
from idp.models import RecoveryCode, TotpCredential

__all__ = [
    "RECOVERY_CODES",
    "TotpSetup",
    "begin_setup",
    "confirm_setup",
    "has_totp",
    "new_mailed_code",
    "recovery_codes_left",
    "remove",
    "seal_stored_seeds",
    "verify",
]

log = logging.getLogger("idp.otp")

RECOVERY_CODES = 10
STEP_SECONDS = 30
_WINDOW = 1
"""Steps accepted either side of now."""


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    """Base32, to type into an app that cannot scan."""
    uri: str
    """``otpauth://totp/...``: what the QR code holds."""
    svg: str
    """The QR code of ``uri`` as an inline SVG element."""


def _issuer_name() -> str:
    settings = runtime.current().settings
    return settings.alerts.brand_prefix.strip(" []:") or settings.issuer_host


def has_totp(user_id: str) -> bool:
    """Whether the member has turned TOTP on."""
    return (
        db.session.scalar(
            select(TotpCredential.user_id).where(
                TotpCredential.user_id == user_id, TotpCredential.confirmed_at.is_not(None)
            )
        )
        is not None
    )


@service
def begin_setup(user_id: str, *, username: str) -> TotpSetup:
    """A new secret, not yet on: shown until a first code confirms it."""
    if has_totp(user_id):
        raise UsageError("One-time codes are already on. Remove them first to set up anew.")
    secret = pyotp.random_base32()
    db.session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
    db.session.add(
        TotpCredential(user_id=user_id, secret=_seal(user_id, secret), created_at=clock.now())
    )
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=_issuer_name())
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, border=2, box_size=10)
    out = io.BytesIO()
    image.save(out)
    text = out.getvalue().decode()
    return TotpSetup(secret=secret, uri=uri, svg=text[text.index("<svg") :])


def _matching_step(secret: str | None, code: str, now: dt.datetime) -> int | None:
    """The time step whose code ``code`` is (within the window), else None."""
    code = code.strip().replace(" ", "")
    if not secret or len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - _WINDOW, current + _WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 80 bits, 16 characters
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _context(user_id: str) -> str:
    return f"totp:{user_id}"


def _seal(user_id: str, seed: str) -> str:
    return runtime.current().sealer.seal(seed, context=_context(user_id))


def _seed(row: TotpCredential) -> str | None:
    """The row's seed, unsealed; None (no code matches: never a seed of
    nothing, whose codes anyone can compute) when the data key cannot open
    it, which is logged.  Recovery codes still work."""
    try:
        return runtime.current().sealer.unseal(row.secret, context=_context(row.user_id))
    except SealedValueError:
        log.error("the TOTP seed of %s cannot be unsealed with this data key", row.user_id)
        return None


def seal_stored_seeds() -> int:
    """Seal the seeds stored before sealing (``idp init`` calls it; joins the
    caller's transaction); returns how many."""
    rows = db.session.scalars(
        select(TotpCredential).where(~TotpCredential.secret.startswith(sealing.PREFIX))
    ).all()
    for row in rows:
        row.secret = _seal(row.user_id, row.secret)
    return len(rows)


def _recovery_hash(code: str) -> bytes:
    return secret_hash(code.strip().lower().replace(" ", "").replace("-", ""))


@service
def confirm_setup(user_id: str, code: str) -> list[str]:
    """Turn TOTP on with a first right code; returns the ten recovery codes,
    shown once.  Raises OtpError."""
    row = db.session.get(TotpCredential, user_id)
    if row is None or row.confirmed_at is not None:
        raise OtpError("Start the set-up again.")
    step = _matching_step(_seed(row), code, clock.now())
    if step is None:
        raise OtpError("That code is not right. Check the app's time and try again.")
    row.confirmed_at = clock.now()
    row.last_step = step
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    db.session.add_all(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(c)) for c in codes)
    events.record("otp.enabled", user_id=user_id)
    return codes


def verify(user_id: str, answer: str) -> str | None:
    """Accept a TOTP code or a recovery code of this member, once; returns
    which (``totp`` or ``recovery``), or None.  Joins the caller's
    transaction (the step-up that it passes)."""
    row = db.session.get(TotpCredential, user_id)
    if row is not None and row.confirmed_at is not None:
        step = _matching_step(_seed(row), answer, clock.now())
        if step is not None:
            won = db.session.execute(
                update(TotpCredential)
                .where(
                    TotpCredential.user_id == user_id,
                    (TotpCredential.last_step.is_(None)) | (TotpCredential.last_step < step),
                )
                .values(last_step=step)
            )
            return "totp" if rowcount(won) == 1 else None
    cleaned = answer.strip()
    if len(cleaned.replace("-", "").replace(" ", "")) == 16:
        spent = db.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == _recovery_hash(cleaned),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=clock.now())
        )
        if rowcount(spent) == 1:
            events.record("otp.recovery_code_used", user_id=user_id)
            return "recovery"
    return None


@service
def remove(user_id: str) -> None:
    """Turn TOTP off and drop the recovery codes (the caller checked the
    sign-in is fresh)."""
    db.session.execute(delete(TotpCredential).where(TotpCredential.user_id == user_id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    events.record("otp.removed", user_id=user_id)


def new_mailed_code() -> tuple[str, bytes]:
    """A six-digit code to mail, and the digest to keep."""
    code = f"{secrets.randbelow(1_000_000):06d}"
    return code, secret_hash(code)


def recovery_codes_left(user_id: str) -> int:
    return len(
        db.session.scalars(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
