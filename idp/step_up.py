"""The extra check of a sign-in session: a one-time code, then perhaps the birth date.

Asked for two reasons (CONTRACT "Step-up and risk"): a relying service
asks for the strong level (``acr_values=urn:idp:acr:2``) of a session that
has not reached it, or the risk rules (``idp.risk``) held a sign-in that
looks like someone else's -- then the session is *held* and serves nothing
until the check is passed.  The check belongs to the session, not to one
authorization request, so the same question and the same count of wrong
answers hold across requests, and a sign-in held with no request behind it
(``/login`` straight to ``/account``) is checked the same way.

* The question is a TOTP code or a recovery code; without TOTP, a
  six-digit code mailed to the account (10 minutes, again once expired).
  With ``risk.birthdate_question`` the birth date comes next.
* The first time it is asked, the login notification goes out: whoever
  is at the keyboard, the owner learns that their password was used.
* Passing keeps the first method in ``amr`` and adds ``otp`` and ``mfa``
  (``acr`` becomes ``urn:idp:acr:2``) and lifts the hold.
* Each wrong answer is counted (committed, whatever the request does
  next); the fifth refuses the sign-in for good: the session is forced out
  (reason ``step_up_refused``, so its device is suspect for a while) and
  the owner is mailed that a sign-in was ended.  Five guesses per password
  sign-in, and password sign-ins are themselves counted and locked.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update

from idp import (
    alerts,
    clock,
    events,
    forced_logout,
    mail,
    members,
    otp,
    runtime,
    sessions,
)
from idp.db import db, refuse, rowcount, secret_hash, service
from idp.errors import OtpError, StepUpRefusedError
from idp.models import StepUp
from idp.sessions import SessionInfo

__all__ = [
    "MAILED_CODE_TTL",
    "MAX_FAILURES",
    "Question",
    "answer",
    "ask",
    "prepare",
    "reasons_of",
    "require",
]

MAILED_CODE_TTL = dt.timedelta(minutes=10)
MAX_FAILURES = 5


@dataclass(frozen=True, slots=True)
class Question:
    """What the step-up page asks now."""

    question: str
    """``otp`` (a one-time code) or ``birthdate``."""
    has_totp: bool
    """Else the code was mailed to the account."""
    failures: int
    reasons: tuple[str, ...]


def reasons_of(session_id: str) -> tuple[str, ...]:
    """Why the session is asked for an extra check now (empty: it is not)."""
    reasons = db.session.scalar(select(StepUp.reasons).where(StepUp.session_id == session_id))
    return tuple(reasons or ())


def ask(session_id: str, reasons: tuple[str, ...]) -> bool:
    """Ask the session for an extra check (joins the caller's transaction).
    Returns whether it was newly asked: the caller then sends the login
    notification, which :func:`prepare` would otherwise send."""
    row = db.session.get(StepUp, session_id)
    if row is None:
        db.session.add(
            StepUp(session_id=session_id, reasons=list(reasons), asked_at=clock.now(), failures=0)
        )
        db.session.flush()
        return True
    merged = list(dict.fromkeys([*row.reasons, *reasons]))
    db.session.execute(
        update(StepUp)
        .where(StepUp.session_id == session_id)
        .values(reasons=merged)
        .execution_options(synchronize_session=False)
    )
    return False


@service
def require(session: SessionInfo, reasons: tuple[str, ...]) -> None:
    """A page of the provider (``/admin``) asks this session for a fresh
    extra check before it goes on; the step-up page then asks it.  The
    login notification goes out when it is first asked."""
    if ask(session.id, reasons):
        alerts.notify(
            user_id=session.user_id, ip=session.ip, country=session.country, reasons=["step_up"]
        )


@service
def prepare(session: SessionInfo, *, reasons: tuple[str, ...]) -> Question:
    """The step-up page is shown: what it asks.  Asked for the first time,
    the login notification goes out; a member without TOTP is mailed a
    code (again once it expired)."""
    if ask(session.id, reasons):
        alerts.notify(
            user_id=session.user_id, ip=session.ip, country=session.country, reasons=["step_up"]
        )
    row = db.session.get(StepUp, session.id)
    assert row is not None  # noqa: S101 - ask() made it
    has_totp = otp.has_totp(session.user_id)
    if row.otp_at is not None:
        return Question("birthdate", has_totp, row.failures, tuple(row.reasons))
    now = clock.now()
    if not has_totp and (row.code_expires_at is None or row.code_expires_at <= now):
        code, digest = otp.new_mailed_code()
        # Conditional: of two page loads at once, one mails a code.
        fresh = db.session.execute(
            update(StepUp)
            .where(
                StepUp.session_id == session.id,
                or_(StepUp.code_expires_at.is_(None), StepUp.code_expires_at <= now),
            )
            .values(code_hash=digest, code_expires_at=now + MAILED_CODE_TTL)
            .execution_options(synchronize_session=False)
        )
        if rowcount(fresh) != 1:
            return Question("otp", has_totp, row.failures, tuple(row.reasons))
        member = members.get(session.user_id)
        mail.queue(
            to=member.email,
            user_id=member.id,
            template="signin_code",
            context={"name": member.name or member.username, "code": code},
        )
    return Question("otp", has_totp, row.failures, tuple(row.reasons))


def _mailed_code_matches(row: StepUp, answer: str, now: dt.datetime) -> bool:
    return bool(
        row.code_hash is not None
        and row.code_expires_at is not None
        and row.code_expires_at > now
        and hmac.compare_digest(row.code_hash, secret_hash(answer.strip()))
    )


@service
def answer(session: SessionInfo, given: str) -> SessionInfo | None:
    """Check an answer.  Returns the stepped-up session when the check is
    passed, None when the birth date is still to come.  A wrong answer
    raises OtpError (counted, committed); the fifth raises
    StepUpRefusedError, the session having been forced out.  Raises OtpError
    too when no check is asked of the session."""
    row = db.session.get(StepUp, session.id, populate_existing=True)
    if row is None:
        raise OtpError("There is no extra check to do for this sign-in.")
    now = clock.now()
    reasons = ",".join(row.reasons)
    mine = StepUp.session_id == session.id
    if row.otp_at is None:
        passed = otp.verify(session.user_id, given) is not None or _mailed_code_matches(
            row, given, now
        )
        if not passed:
            _failed(session)
        if (
            runtime.current().settings.risk.birthdate_question
            and members.get(session.user_id).birthdate
        ):
            # Conditional writes only: another answer may be racing this one.
            moved_on = db.session.execute(
                update(StepUp)
                .where(mine, StepUp.otp_at.is_(None))
                .values(otp_at=now, code_hash=None)
                .execution_options(synchronize_session=False)
            )
            if rowcount(moved_on) != 1:
                raise OtpError("This extra check was already answered.")
            return None
    else:
        birthdate = members.get(session.user_id).birthdate
        if birthdate is None or given.strip() != birthdate.isoformat():
            _failed(session)
    # Passed: the row goes by a conditional delete, so of two simultaneous
    # right answers one steps the session up and the other is told so.
    gone = db.session.execute(
        delete(StepUp).where(mine).execution_options(synchronize_session=False)
    )
    if rowcount(gone) != 1:
        raise OtpError("This extra check was already answered.")
    stepped = sessions.add_factors(session.id, ["otp", "mfa"])
    _record(session, "success", reasons)
    return stepped


def _record(session: SessionInfo, result: str, reason: str) -> None:
    events.record_attempt(
        user_id=session.user_id,
        method="step_up",
        result=result,
        reason=reason,
        device_id=session.device_id,
        user_agent=session.user_agent,
        ip=session.ip,
        country=session.country,
    )


def _failed(session: SessionInfo) -> None:
    """Count a wrong answer in a transaction of its own, and raise."""
    refused = False

    def record() -> None:
        nonlocal refused
        db.session.execute(
            update(StepUp)
            .where(StepUp.session_id == session.id)
            .values(failures=StepUp.failures + 1)
        )
        count = db.session.scalar(select(StepUp.failures).where(StepUp.session_id == session.id))
        refused = count is not None and count >= MAX_FAILURES
        if not refused:
            _record(session, "failure", "wrong_answer")
            return
        db.session.execute(delete(StepUp).where(StepUp.session_id == session.id))
        forced_logout.force_logout(
            session_ids=[session.id],
            reason=forced_logout.LogoutReason.STEP_UP_REFUSED,
            actor="system",
            ip=session.ip,
        )
        _record(session, "refused", "too_many_wrong_answers")
        alerts.signin_ended(user_id=session.user_id, reason="step_up_refused")

    try:
        refuse(OtpError("That is not right. Try again."), record=record)
    except OtpError as e:
        if refused:
            raise StepUpRefusedError() from e
        raise
