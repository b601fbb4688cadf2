"""A forgotten user ID, a forgotten password, and changing a password.

The recovery pages answer the same for an address or user ID that has an
account and one that has not, in content and in time: the request only
queues a job in the outbox (one insert, whatever was typed), and the worker
looks the account up and mails it, if there is one.  A password reset is a
single-use link valid for 30 minutes; setting the new password ends every
session of the account through the forced logout (relying services are
told), mails ``Your password was changed`` and tells relying services with
an events URI (CAEP ``credential-change``).  Changing the password on the
account page (the current one required) does the same for the other
sessions."""

from __future__ import annotations

import datetime as dt

from idp import accounts, clock, events, forced_logout, links, mail, outbox, risk, runtime
from idp import security_events as set_events
from idp.db import service
from idp.errors import DeliveryFailedError, InvalidCredentialsError
from idp.links import Purpose
from idp.members import Member
from idp.outbox import OutboxItem

__all__ = [
    "KIND",
    "change_password",
    "deliver",
    "request_password_reset",
    "request_user_id",
    "reset_password",
]

KIND = "recovery"
_TTL = dt.timedelta(hours=1)


@service
def request_user_id(email: str) -> None:
    """Someone asks for the user ID of an address: queued, answered alike."""
    outbox.enqueue_many(KIND, [{"what": "user_id", "email": email.strip()[:254]}], ttl=_TTL)


@service
def request_password_reset(login: str) -> None:
    """Someone asks to reset the password of a user ID or address: queued,
    answered alike."""
    outbox.enqueue_many(KIND, [{"what": "password", "login": login.strip()[:254]}], ttl=_TTL)


def deliver(item: OutboxItem) -> None:
    """The worker's handler: mail the account, if there is one."""
    what = item.payload.get("what")
    if what == "user_id":
        _mail_user_id(str(item.payload.get("email", "")))
    elif what == "password":
        _mail_reset_link(str(item.payload.get("login", "")))
    else:
        raise DeliveryFailedError(f"unknown recovery job {what!r}", permanent=True)


def _name(member: Member) -> str:
    return member.name or member.username


@service
def _mail_user_id(email: str) -> None:
    member = accounts.find_by_email(email) if email else None
    if member is None:
        return
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="user_id",
        context={
            "name": _name(member),
            "username": member.username,
            "link": runtime.current().settings.url("/login"),
        },
    )
    events.record("recovery.user_id_sent", user_id=member.id)


@service
def _mail_reset_link(login: str) -> None:
    member = accounts.find_by_login(login) if login else None
    if member is None:
        return
    link = links.issue(Purpose.RESET_PASSWORD, user_id=member.id, email=member.email)
    minutes = int(links.LIFETIME[Purpose.RESET_PASSWORD].total_seconds() // 60)
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="reset_password",
        context={"name": _name(member), "link": link, "minutes": minutes},
    )
    events.record("recovery.reset_link_sent", user_id=member.id)


def _password_changed(member: Member, *, keep_session: str | None, reason: str) -> None:
    settings = runtime.current().settings
    forced_logout.force_logout(
        user_id=member.id,
        keep=keep_session,
        reason=(
            forced_logout.LogoutReason.PASSWORD_RESET
            if keep_session is None
            else forced_logout.LogoutReason.PASSWORD_CHANGED
        ),
        actor=f"user:{member.id}",
    )
    set_events.queue(user_id=member.id, event=set_events.SecurityEvent.CREDENTIAL_CHANGE)
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="password_changed",
        context={
            "name": _name(member),
            "when": clock.now(),
            "link": settings.url("/recover/password"),
        },
    )
    events.record("account.password_" + reason, user_id=member.id)


@service
def reset_password(token: str, password: str) -> Member:
    """Set a new password through a reset link: every session of the account
    ends.  Raises LinkError (unknown, used, expired) or UsageError (the
    password breaks a rule; the link stays usable)."""
    use = links.redeem(token, Purpose.RESET_PASSWORD)
    member = accounts.set_password(use.user_id, password)
    _password_changed(member, keep_session=None, reason="reset")
    risk.password_guard(member.id).clear()  # a reset lifts the lock
    return member


@service
def change_password(user_id: str, *, session_id: str, current: str, new: str) -> Member:
    """Change the password from the account page: the current one is needed;
    every other session ends, this one stays.  Raises
    InvalidCredentialsError or UsageError."""
    if not accounts.check_password(user_id, current):
        raise InvalidCredentialsError("The current password is not right.")
    member = accounts.set_password(user_id, new)
    _password_changed(member, keep_session=session_id, reason="changed")
    return member
