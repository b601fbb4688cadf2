"""Becoming a member, and proving an email address (at registration or a change).

Registration refuses a taken user ID at once (the person must choose
another), but never says whether an email address is registered: a taken
address gets the same answer as a free one, and its owner is mailed that
someone tried (CONTRACT "Pages": registration).  The new account's address
is confirmed by a single-use link; until then the account may use its own
pages but sign in to no relying service (``idp.signin``).

A member changes their address the same way: the new address is used only
once its link is opened, and the old one is told."""

from __future__ import annotations

import datetime as dt

from idp import account_rules, accounts, events, links, mail, members, passwords, runtime
from idp.account_rules import GENDERS
from idp.db import service
from idp.errors import ConflictError, UsageError
from idp.links import Purpose
from idp.members import Member

__all__ = [
    "confirm_email_change",
    "parse_birthdate",
    "register",
    "request_email_change",
    "verify_email",
]


def parse_birthdate(value: str) -> dt.date:
    """A ``YYYY-MM-DD`` date; UsageError otherwise.  Its range is
    ``account_rules.check_new``'s, the same at the command line."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise UsageError("Enter the birth date as YYYY-MM-DD.") from None


def _reset_page() -> str:
    return runtime.current().settings.url("/recover/password")


@service
def register(
    *,
    username: str,
    email: str,
    password: str,
    name: str,
    gender: str,
    birthdate: str,
    ip: str | None = None,
    language: str = "en",
) -> None:
    """Register a member (in the language of the page they registered on)
    and mail the confirmation link.

    Raises UsageError for a field to fix and ConflictError for a taken user
    ID.  A registered address is answered like a free one (nothing is
    created; its owner is told), after the same password hashing work."""
    if gender not in GENDERS:
        raise UsageError("Choose one of the gender options.")
    day = parse_birthdate(birthdate)
    username, email, name = account_rules.check_new(
        username=username, email=email, password=password, name=name, birthdate=day, gender=gender
    )
    if accounts.username_taken(username):
        raise ConflictError("That user ID is taken. Choose another.")
    owner = accounts.find_by_email(email)
    if owner is not None:
        # The same work as a registration:
        passwords.hash_password(password, runtime.current().settings.passwords)
        mail.queue(
            to=owner.email,
            user_id=owner.id,
            template="register_attempt",
            context={"link": _reset_page()},
        )
        events.record("registration.address_taken", user_id=owner.id, ip=ip)
        return
    member = accounts.create(
        username=username,
        email=email,
        password=password,
        name=name,
        birthdate=day,
        gender=gender,
        language=language,
    )
    link = links.issue(Purpose.CONFIRM_EMAIL, user_id=member.id, email=member.email)
    mail.queue(
        to=member.email,
        user_id=member.id,
        template="confirm_email",
        context={"name": member.name or member.username, "link": link},
    )
    events.record("registration.completed", user_id=member.id, ip=ip)


@service
def verify_email(token: str) -> Member:
    """The confirmation link was opened: the address is confirmed.  Raises
    LinkError for an unknown, used or expired link."""
    use = links.redeem(token, Purpose.CONFIRM_EMAIL)
    return accounts.mark_email_verified(use.user_id, use.email)


@service
def request_email_change(user_id: str, new_email: str) -> None:
    """Mail a link to the new address; nothing changes until it is opened.
    An address another account has is answered the same way (that owner is
    told instead), so the page reveals no one's address."""
    member = members.get(user_id)
    new_email = account_rules.validate_email(new_email)
    if new_email.casefold() == member.email.casefold():
        return
    owner = accounts.find_by_email(new_email)
    if owner is not None:
        mail.queue(
            to=owner.email,
            user_id=owner.id,
            template="register_attempt",
            context={"link": _reset_page()},
        )
        return
    link = links.issue(Purpose.CHANGE_EMAIL, user_id=user_id, email=new_email)
    mail.queue(
        to=new_email,
        user_id=user_id,
        template="confirm_email",
        context={"name": member.name or member.username, "link": link},
    )
    events.record("account.email_change_requested", user_id=user_id)


@service
def confirm_email_change(token: str) -> Member:
    """The link mailed to a new address was opened: it replaces the old one,
    which is told.  Raises LinkError or ConflictError."""
    use = links.redeem(token, Purpose.CHANGE_EMAIL)
    member, old = accounts.set_email(use.user_id, use.email)
    mail.queue(
        to=old,
        user_id=member.id,
        template="email_changed",
        context={
            "name": member.name or member.username,
            "new_address": member.email,  # the mail shows it masked
            "link": _reset_page(),
        },
    )
    return member
