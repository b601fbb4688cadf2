"""Login notifications and the other mails that tell a member about a sign-in.

The membership help page promises a notice whenever the account is used
from a device or a country not seen before, after a long absence
(``alerts.absence_days``), and whenever an extra check was asked.  Nobody
can turn it off.  "A device not seen before" is an ``idp_device`` value that
has not signed in to this account: the account's very first sign-in on a
device sends one.  Whether a sign-in deserves a notice is the risk rules'
decision (``idp.risk``); this module keeps what an account was seen from
(:func:`sightings`, :func:`remember`) and sends.  A relying service's silent
re-authorization (``prompt=none``) is not a sign-in and sends nothing: only
the sign-in services call :func:`notify`.

The notice says when (in ``alerts.timezone``), from which IP address and
which country (the Location line is left out when the country is unknown),
and what to do if it was not the person.  :func:`signin_ended` mails that a
sign-in was ended or refused because of suspected misuse."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from idp import clock, events, geo, mail, members, runtime
from idp.db import db
from idp.errors import NotFoundError
from idp.models import Sighting

__all__ = ["Sightings", "notify", "remember", "sightings", "signin_ended"]

DEVICE, COUNTRY = "device", "country"


@dataclass(frozen=True, slots=True)
class Sightings:
    """What an account was seen from before this sign-in."""

    device_seen: bool
    country_seen: bool
    last_sign_in: dt.datetime | None


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
    # One statement, so that two first sign-ins on one device at once both succeed.
    dialect = db.session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(Sighting).values(
        user_id=user_id, kind=kind, value=value, first_at=now, last_at=now
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["user_id", "kind", "value"], set_={"last_at": now}
        )
    )


def sightings(user_id: str, *, device_id: str | None, country: str | None) -> Sightings:
    """Whether the account signed in from this device and this country before,
    and when it last signed in at all.  Writes nothing."""
    last = db.session.scalar(
        select(func.max(Sighting.last_at)).where(
            Sighting.user_id == user_id, Sighting.kind == DEVICE
        )
    )
    return Sightings(
        device_seen=_seen(user_id, DEVICE, device_id),
        country_seen=_seen(user_id, COUNTRY, country),
        last_sign_in=last,
    )


def remember(*, user_id: str, device_id: str | None, country: str | None) -> None:
    """The account signed in from this device and country now (joins the
    caller's transaction)."""
    now = clock.now()
    _remember(user_id, DEVICE, device_id, now)
    _remember(user_id, COUNTRY, country, now)


def notify(*, user_id: str, ip: str, country: str | None, reasons: list[str]) -> None:
    """Mail the login notification now (joins the caller's transaction)."""
    member = members.get(user_id)
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


def signin_ended(*, user_id: str, reason: str) -> None:
    """Mail that a sign-in was ended (or refused) because of suspected
    misuse, saying why -- ``refresh_token_reuse`` or ``step_up_refused``, put
    in words by the mail's template (joins the caller's transaction).
    Nothing for an account that no longer exists."""
    try:
        member = members.get(user_id)
    except NotFoundError:
        return
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="signin_ended",
        context={
            "name": member.name or member.username,
            "when": clock.now(),
            "reason": reason,
            "link": runtime.current().settings.url("/recover/password"),
        },
    )
