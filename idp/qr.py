"""Cross-device sign-in: a QR code on one device, approved by a passkey on another.

The device that wants to sign in (the "PC") starts a request and shows a QR
code of ``<issuer>/qr/<token>`` with a two-digit number.  The registered
phone opens the link, sees which browser asks, from which IP address and
country, and when; the person picks the number the PC shows among three,
and confirms with the phone's passkey, which says whose account it is.  The
PC, polling, then collects the approval and is signed in.

Why this is safe against a QR code shown by an attacker (a phishing page
that relays our QR): the phone shows the *requester's* IP address, country
and browser, so a request from somewhere else looks wrong; the number must
be read off the requesting screen, so a person who was merely sent a link
cannot guess it (one wrong pick ends the request for good); and only the
browser holding the request's binding cookie can collect the approval, so
an approval leaks nothing to whoever else sees the link.

The token is random, stored hashed, single use (approving, denying or
picking a number uses it; opening the link does not, because mail and chat
apps fetch links to preview them) and expires after ``qr.ttl_seconds``.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from dataclasses import dataclass
from typing import Any

import qrcode
import qrcode.image.svg
from sqlalchemy import delete, select, update

from idp import clock, events, geo, passkeys, runtime
from idp.db import db, delete_batch, new_secret, refuse, rowcount, secret_hash, service
from idp.errors import QrError
from idp.members import Member
from idp.models import QrRequest

__all__ = [
    "AMR",
    "QrStatus",
    "Started",
    "approve",
    "collect",
    "deny",
    "describe",
    "forget_user",
    "pick",
    "start",
    "status",
    "svg",
]

AMR = ["hwk", "user", "mca"]
"""On the PC: a passkey (on another device: multiple-channel authentication)."""

PENDING, APPROVED, DENIED, EXPIRED, COLLECTED = (
    "pending",
    "approved",
    "denied",
    "expired",
    "collected",
)


@dataclass(frozen=True, slots=True)
class Started:
    public_id: str
    token: str
    binding: str
    """The ``idp_qr`` cookie value: only this browser may collect."""
    match_code: str
    url: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class QrStatus:
    public_id: str
    state: str
    match_code: str
    choices: tuple[str, ...]
    requester_ip: str
    requester_user_agent: str
    requester_country: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    return_to: str
    deny_reason: str | None


def _state(row: QrRequest, now: dt.datetime) -> str:
    if row.state == PENDING and row.expires_at <= now:
        return EXPIRED
    if row.state == APPROVED and row.expires_at <= now:
        return EXPIRED  # approved but never collected in time
    return row.state


def _status(row: QrRequest) -> QrStatus:
    return QrStatus(
        public_id=row.public_id,
        state=_state(row, clock.now()),
        match_code=row.match_code,
        choices=tuple(row.choices),
        requester_ip=row.requester_ip,
        requester_user_agent=row.requester_user_agent,
        requester_country=row.requester_country,
        created_at=row.created_at,
        expires_at=row.expires_at,
        return_to=row.return_to,
        deny_reason=row.deny_reason,
    )


@service
def start(*, ip: str, user_agent: str, return_to: str) -> Started:
    """Open a request for this browser."""
    settings = runtime.current().settings
    now = clock.now()
    token, binding = new_secret(32), new_secret(32)
    match_code = f"{secrets.randbelow(90) + 10:02d}"
    decoys: set[str] = set()
    while len(decoys) < 2:
        candidate = f"{secrets.randbelow(90) + 10:02d}"
        if candidate != match_code:
            decoys.add(candidate)
    choices = [match_code, *decoys]
    secrets.SystemRandom().shuffle(choices)
    row = QrRequest(
        public_id=new_secret(16),
        token_hash=secret_hash(token),
        binding_hash=secret_hash(binding),
        match_code=match_code,
        choices=choices,
        state=PENDING,
        return_to=return_to[:512],
        requester_ip=ip,
        requester_user_agent=user_agent[:400],
        requester_country=geo.country_of(ip, settings.geoip.database),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.qr.ttl_seconds),
    )
    db.session.add(row)
    events.record("qr.started", ip=ip, qr_request=row.public_id)
    return Started(
        public_id=row.public_id,
        token=token,
        binding=binding,
        match_code=match_code,
        url=settings.url(f"/qr/{token}"),
        expires_at=row.expires_at,
    )


def svg(url: str) -> str:
    """The QR code of ``url`` as an inline SVG element (no image library)."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2, box_size=10)
    out = io.BytesIO()
    image.save(out)
    text = out.getvalue().decode()
    return text[text.index("<svg") :]


def _by_public_id(public_id: str, binding: str | None) -> QrRequest:
    row = (
        db.session.scalar(select(QrRequest).where(QrRequest.public_id == public_id))
        if public_id and len(public_id) <= 32
        else None
    )
    if row is None or not binding or row.binding_hash != secret_hash(binding):
        # Another browser (or none): it learns nothing, not even that it exists.
        raise QrError("This sign-in request is unknown.")
    return row


def status(public_id: str, binding: str | None) -> QrStatus:
    """The request as its own browser sees it."""
    return _status(_by_public_id(public_id, binding))


@service
def collect(public_id: str, binding: str | None) -> tuple[str, QrStatus]:
    """The approving member's id, once, for the browser that asked (a
    conditional update picks the one collector)."""
    row = _by_public_id(public_id, binding)
    state = _state(row, clock.now())
    if state != APPROVED or row.user_id is None:
        raise QrError(_refusal(state))
    done = db.session.execute(
        update(QrRequest)
        .where(QrRequest.id == row.id, QrRequest.state == APPROVED)
        .values(state=COLLECTED, collected_at=clock.now())
    )
    if rowcount(done) != 1:
        raise QrError(_refusal(COLLECTED))
    events.record(
        "qr.collected", user_id=row.user_id, ip=row.requester_ip, qr_request=row.public_id
    )
    return row.user_id, _status(row)


def _refusal(state: str) -> str:
    return {
        PENDING: "This sign-in request has not been approved yet.",
        DENIED: "This sign-in request was denied.",
        EXPIRED: "This sign-in request has expired. Start again.",
        COLLECTED: "This sign-in request was already used.",
    }.get(state, "This sign-in request cannot be used.")


def _by_token(token: str) -> QrRequest:
    row = (
        db.session.scalar(select(QrRequest).where(QrRequest.token_hash == secret_hash(token)))
        if token and len(token) <= 100
        else None
    )
    if row is None:
        raise QrError("This sign-in link is unknown.")
    return row


def describe(token: str) -> QrStatus:
    """What the approving device shows; opening the link uses nothing."""
    return _status(_by_token(token))


def _pending(row: QrRequest) -> None:
    state = _state(row, clock.now())
    if state != PENDING:
        raise QrError(_refusal(state) if state != APPROVED else "This request was already used.")


def _end_denied(row_id: int, public_id: str, reason: str, ip: str | None) -> None:
    db.session.execute(
        update(QrRequest)
        .where(QrRequest.id == row_id, QrRequest.state == PENDING)
        .values(state=DENIED, deny_reason=reason, decided_at=clock.now())
    )
    events.record("qr.denied", ip=ip, qr_request=public_id, reason=reason)


def _deny_for_good(row: QrRequest, reason: str, message: str, ip: str | None) -> None:
    row_id, public_id = row.id, row.public_id
    refuse(QrError(message), record=lambda: _end_denied(row_id, public_id, reason, ip))


@service
def pick(token: str, number: str, *, ip: str | None = None) -> dict[str, Any]:
    """The person picked a number: the right one returns the passkey challenge
    that approves; a wrong one (or a second pick) denies the request for good."""
    row = _by_token(token)
    _pending(row)
    picked = db.session.execute(
        update(QrRequest)
        .where(QrRequest.id == row.id, QrRequest.state == PENDING, QrRequest.picked_at.is_(None))
        .values(picked_at=clock.now())
    )
    if rowcount(picked) != 1:
        _deny_for_good(
            row,
            "second_use",
            "A number was already picked for this request. The request is denied.",
            ip,
        )
    if not secrets.compare_digest(number.encode(), row.match_code.encode()):
        _deny_for_good(
            row,
            "wrong_number",
            "That was not the number on the other screen. The request is denied.",
            ip,
        )
    events.record("qr.number_matched", ip=ip, qr_request=row.public_id)
    return passkeys.authentication_options(purpose="qr", qr_request_id=row.id)


@service
def approve(token: str, credential: dict[str, Any], *, ip: str | None = None) -> Member:
    """Verify the phone's passkey answer and approve the request, once."""
    row = _by_token(token)
    _pending(row)
    if row.picked_at is None:
        raise QrError("Pick the number shown on the other screen first.")
    member, request_id = passkeys.authenticate(credential, purpose="qr", ip=ip)
    if request_id != row.id:
        raise QrError("This passkey answer belongs to another request.")
    done = db.session.execute(
        update(QrRequest)
        .where(QrRequest.id == row.id, QrRequest.state == PENDING)
        .values(state=APPROVED, user_id=member.id, decided_at=clock.now())
    )
    if rowcount(done) != 1:
        raise QrError("This request was already used.")
    events.record(
        "qr.approved",
        user_id=member.id,
        ip=ip,
        qr_request=row.public_id,
        requester_ip=row.requester_ip,
        requester_country=row.requester_country,
        requester_user_agent=row.requester_user_agent,
    )
    return member


@service
def deny(token: str, *, ip: str | None = None) -> None:
    """The person said it was not them: the request ends as denied."""
    row = _by_token(token)
    _pending(row)
    _end_denied(row.id, row.public_id, "denied_by_person", ip)


def purge_expired(now: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` requests a day past their expiry (joins the
    caller's transaction); returns how many went."""
    return delete_batch(QrRequest, QrRequest.expires_at < now - dt.timedelta(days=1), batch=batch)


def forget_user(user_id: str) -> None:
    """Delete the QR requests a cancelled member approved (joins the caller's transaction)."""
    db.session.execute(delete(QrRequest).where(QrRequest.user_id == user_id))
