"""Login notifications: when a sign-in is worth a mail to the account's address.

The membership help page promises a notice whenever the account is used
from a device or a country not seen before, after a long absence
(``alerts.absence_days``), and whenever an extra check was asked.  Nobody
can turn it off.  "A device not seen before" is an ``idp_device`` value that
has not signed in to this account: the account's very first sign-in on a
device sends one.  A relying service's silent re-authorization
(``prompt=none``) is not a sign-in and sends nothing: only the sign-in
services call :func:`note_sign_in`.

The mail says when (in ``alerts.timezone``), from which IP address and
which country (the Location line is left out when the country is unknown),
and what to do if it was not the person."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from idp import accounts, clock, events, geo, mail, runtime
from idp.db import db
from idp.models import Sighting

__all__ = ["note_sign_in", "notice_reasons", "notify"]

DEVICE, COUNTRY = "device", "country"


def notice_reasons(
    *,
    device_seen: bool,
    country: str | None,
    country_seen: bool,
    last_sign_in: dt.datetime | None,
    now: dt.datetime,
    absence_days: int,
) -> list[str]:
    """Why this sign-in deserves a notice (empty: it does not).  Pure."""
    reasons = []
    if not device_seen:
        reasons.append("new_device")
    if country is not None and not country_seen:
        reasons.append("new_country")
    if last_sign_in is not None and now - last_sign_in > dt.timedelta(days=absence_days):
        reasons.append("absence")
    return reasons


def _seen(user_id: str, kind: str, value: str | None) -> bool:
    if value is None:
        return False
    return (
        db.session.scalar(
            select(Sighting.value).where(
                Sighting.user_id == user_id, Sighting.kind == kind, Sighting.value == value
            )
        )
        is not None
    )


def _remember(user_id: str, kind: str, value: str | None, now: dt.datetime) -> None:
    if value is None:
        return
    touched = db.session.execute(
        update(Sighting)
        .where(Sighting.user_id == user_id, Sighting.kind == kind, Sighting.value == value)
        .values(last_at=now)
    )
    if touched.rowcount == 0:  # type: ignore[attr-defined]  # CursorResult
        db.session.add(Sighting(user_id=user_id, kind=kind, value=value, first_at=now, last_at=now))


def note_sign_in(*, user_id: str, device_id: str | None, ip: str, country: str | None) -> list[str]:
    """A person signed in: remember the device and country, and mail a
    notice if one is due.  Joins the caller's transaction (the sign-in's).
    Returns the reasons a notice was sent for."""
    now = clock.now()
    last = db.session.scalar(
        select(func.max(Sighting.last_at)).where(
            Sighting.user_id == user_id, Sighting.kind == DEVICE
        )
    )
    reasons = notice_reasons(
        device_seen=_seen(user_id, DEVICE, device_id),
        country=country,
        country_seen=_seen(user_id, COUNTRY, country),
        last_sign_in=last,
        now=now,
        absence_days=runtime.current().settings.alerts.absence_days,
    )
    _remember(user_id, DEVICE, device_id, now)
    _remember(user_id, COUNTRY, country, now)
    if reasons:
        notify(user_id=user_id, ip=ip, country=country, reasons=reasons)
    return reasons


def notify(*, user_id: str, ip: str, country: str | None, reasons: list[str]) -> None:
    """Mail the login notification now (joins the caller's transaction)."""
    member = accounts.get(user_id)
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="login_notification",
        context={
            "name": member.name or member.username,
            "when": clock.now(),
            "ip": ip,
            "location": geo.country_name(country) or "",
            "link": runtime.current().settings.url("/recover/password"),
        },
    )
    events.record("alert.login_notification", user_id=member.id, ip=ip, reasons=reasons)
