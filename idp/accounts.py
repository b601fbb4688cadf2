"""Member accounts: creation, look-up, password sign-in, profile, cancellation.

A member signs in with a user ID or an email address.  Both are compared
case-folded (``*_key`` columns) so that ``Alice`` and ``alice`` can never be
two accounts.  Gender and birth date are set at registration and never
changed afterwards, as the membership help page promises: no function here
writes them after :func:`create`.

A user ID is never given to another person, also after a cancellation: a
cancelled account leaves a tombstone (its ``sub`` and a hash of its user ID)
and nothing else.  Only this module writes the users and tombstones tables;
the services read a member through ``idp.members``, the rules of the fields
are ``idp.account_rules``, the flows around it ``idp.registration``,
``idp.recovery`` and ``idp.membership`` (cancellation)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp import clock, events, forced_logout, passwords, runtime
from idp import security_events as set_events
from idp.account_rules import LANGUAGES, check_new, clean_name, validate_email
from idp.config import PasswordSettings
from idp.db import db, service
from idp.errors import (
    AccountDisabledError,
    ConflictError,
    InvalidCredentialsError,
    NotFoundError,
    UsageError,
)
from idp.members import Member, of_row
from idp.models import Tombstone, User

__all__ = [
    "authenticate",
    "check_password",
    "create",
    "find",
    "find_by_email",
    "find_by_login",
    "login_key",
    "mark_email_verified",
    "remove",
    "search",
    "set_admin",
    "set_disabled",
    "set_email",
    "set_language",
    "set_password",
    "update_name",
    "userinfo_claims",
    "username_taken",
]


def _username_hash(username_key: str) -> bytes:
    return hashlib.sha256(username_key.encode()).digest()


def _password_cost() -> PasswordSettings:
    return runtime.current().settings.passwords


def username_taken(username: str) -> bool:
    """Whether a user ID is in use or was ever used (cancelled accounts too)."""
    key = username.strip().casefold()
    in_use = db.session.scalar(select(User.id).where(User.username_key == key))
    gone = db.session.scalar(
        select(Tombstone.sub).where(Tombstone.username_key_hash == _username_hash(key))
    )
    return in_use is not None or gone is not None


def find_by_email(email: str) -> Member | None:
    user = db.session.scalar(select(User).where(User.email_key == email.strip().casefold()))
    return of_row(user) if user is not None else None


@service
def create(
    *,
    username: str,
    email: str,
    password: str,
    name: str = "",
    birthdate: dt.date | None = None,
    gender: str | None = None,
    is_admin: bool = False,
    email_verified: bool = False,
    language: str = "en",
) -> Member:
    """Create an account.  Raises UsageError (its description says what to
    fix) or ConflictError (user ID or email taken)."""
    username, email, name = check_new(
        username=username,
        email=email,
        password=password,
        name=name,
        birthdate=birthdate,
        gender=gender,
    )
    if username_taken(username):
        raise ConflictError("That user ID is taken. Choose another.")
    if find_by_email(email) is not None:
        raise ConflictError("That email address is already registered.")
    now = clock.now()
    user = User(
        id=str(uuid.uuid4()),
        username=username,
        username_key=username.casefold(),
        email=email,
        email_key=email.casefold(),
        email_verified=email_verified,
        password_hash=passwords.hash_password(password, _password_cost()),
        name=name,
        gender=gender,
        birthdate=birthdate,
        is_admin=is_admin,
        language=language if language in LANGUAGES else "en",
        created_at=now,
        updated_at=now,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        # Registered a moment ago by a concurrent request: the unique index decided.
        raise ConflictError("That user ID or email address was registered just now.") from None
    events.record("account.created", user_id=user.id)
    return of_row(user)


def _lookup(ref: str) -> User | None:
    """By ``sub`` or username (exact), as the admin API and CLI name accounts."""
    user = db.session.get(User, ref) if len(ref) == 36 else None
    if user is None:
        user = db.session.scalar(select(User).where(User.username_key == ref.casefold()))
    return user


def _user(user_id: str) -> User:
    user = db.session.get(User, user_id) if user_id else None
    if user is None:
        raise NotFoundError("no such user")
    return user


def search(query: str) -> list[Member]:
    """The members a user ID, an email address or a ``sub`` names exactly
    (case aside): what an admin types to find a person.  At most one each."""
    query = query.strip()[:254]
    if not query:
        return []
    found = {}
    for member in (
        of_row(user) if (user := _lookup(query)) is not None else None,
        find_by_email(query),
    ):
        if member is not None:
            found[member.id] = member
    return list(found.values())


def find(ref: str) -> Member:
    """The member with this ``sub`` or username.  Raises NotFoundError."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    return of_row(user)


def _by_login(login: str) -> User | None:
    key = login.strip().casefold()
    if not key or len(key) > 254:
        return None
    column = User.email_key if "@" in key else User.username_key
    return db.session.scalar(select(User).where(column == key))


def find_by_login(login: str) -> Member | None:
    """The member a typed user ID or email names, if any."""
    user = _by_login(login)
    return of_row(user) if user is not None else None


def login_key(login: str) -> str:
    """What names the account behind a typed user ID or email, whichever was
    typed: its ``sub``, or the typed name folded when there is no account
    (failures are counted per account, not per spelling)."""
    user = _by_login(login)
    return user.id if user is not None else "name:" + login.strip().casefold()[:254]


def authenticate(login: str, password: str) -> Member:
    """Check a user ID (or email) and password.

    Unknown user and wrong password raise the same InvalidCredentialsError
    after the same argon2 work, so the answer reveals nothing; ``detail``
    says which for the audit log.  A correct password for a disabled
    account raises AccountDisabledError.  A hash made with older parameters
    is replaced (joins the caller's transaction)."""
    user = _by_login(login)
    cost = _password_cost()
    ok = passwords.verify_password(user.password_hash if user else None, password, cost)
    if user is None or not ok:
        raise InvalidCredentialsError(detail="unknown user" if user is None else "wrong password")
    if user.disabled_at is not None:
        raise AccountDisabledError(detail="account disabled")
    if user.password_hash and passwords.needs_rehash(user.password_hash, cost):
        user.password_hash = passwords.hash_password(password, cost)
    return of_row(user)


def check_password(user_id: str, password: str) -> bool:
    """Whether ``password`` is this member's (the same argon2 work either way)."""
    user = db.session.get(User, user_id)
    return passwords.verify_password(
        user.password_hash if user else None, password, _password_cost()
    )


def set_password(user_id: str, password: str) -> Member:
    """Replace the password (after the policy), joining the caller's
    transaction; the caller ends sessions and tells the person."""
    user = _user(user_id)
    passwords.check_policy(password, username=user.username, email=user.email)
    user.password_hash = passwords.hash_password(password, _password_cost())
    user.updated_at = clock.now()
    events.record("account.password_changed", user_id=user_id)
    return of_row(user)


def mark_email_verified(user_id: str, email: str) -> Member:
    """The person opened the link mailed to ``email`` (joins the caller's
    transaction).  A link to an address the account no longer has verifies
    nothing."""
    user = _user(user_id)
    if user.email_key == email.casefold() and not user.email_verified:
        user.email_verified = True
        user.updated_at = clock.now()
        events.record("account.email_verified", user_id=user_id)
    return of_row(user)


def set_email(user_id: str, email: str) -> tuple[Member, str]:
    """Make ``email`` (proved by its link) the account's address; returns the
    member and the old address.  Joins the caller's transaction.  Raises
    ConflictError if another account took the address meanwhile."""
    user = _user(user_id)
    email = validate_email(email)
    other = find_by_email(email)
    if other is not None and other.id != user_id:
        raise ConflictError("That email address is now used by another account.")
    old = user.email
    user.email, user.email_key = email, email.casefold()
    user.email_verified = True
    user.updated_at = clock.now()
    events.record("account.email_changed", user_id=user_id)
    return of_row(user), old


@service
def update_name(user_id: str, name: str) -> Member:
    """Change the display name."""
    cleaned = clean_name(name)
    user = _user(user_id)
    if user.name != cleaned:
        user.name = cleaned
        user.updated_at = clock.now()
        events.record("account.name_changed", user_id=user_id)
    return of_row(user)


@service
def set_disabled(ref: str, disabled: bool, *, actor: str = "operator") -> tuple[Member, int]:
    """Disable an account -- and end every session and token of it, in the
    same transaction -- or enable it again; relying services with an events
    URI are told either way.  ``actor`` (``operator`` at the command line,
    ``admin:<sub>`` on the admin pages) goes into the audit log.  Returns
    the member and how many sessions ended."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    now = clock.now()
    user.disabled_at = now if disabled else None
    user.updated_at = now
    events.record(
        "account.disabled" if disabled else "account.enabled", user_id=user.id, actor=actor
    )
    set_events.queue(
        user_id=user.id,
        event=set_events.SecurityEvent.ACCOUNT_DISABLED
        if disabled
        else set_events.SecurityEvent.ACCOUNT_ENABLED,
    )
    ended = 0
    if disabled:
        ended = len(
            forced_logout.force_logout(
                user_id=user.id, reason=forced_logout.LogoutReason.ACCOUNT_DISABLED, actor=actor
            ).session_ids
        )
    return of_row(user), ended


@service
def set_language(user_id: str, language: str) -> None:
    """The member chose the pages' language: their mail follows it."""
    if language not in LANGUAGES:
        raise UsageError(f"language must be one of {', '.join(LANGUAGES)}")
    user = _user(user_id)
    if user.language != language:
        user.language = language
        user.updated_at = clock.now()


@service
def set_admin(ref: str, admin: bool) -> Member:
    """Grant or revoke the admin role."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    if user.is_admin != admin:
        user.is_admin = admin
        user.updated_at = clock.now()
        events.record(
            "account.admin_granted" if admin else "account.admin_revoked", user_id=user.id
        )
    return of_row(user)


def remove(user_id: str, *, actor: str) -> Member:
    """Delete the account row, leaving a tombstone (its ``sub`` and a hash of
    its user ID, so that neither is given to another person).  Joins the
    caller's transaction (``idp.membership.cancel``, which ends and forgets
    everything else first); passkeys, one-time codes, consents, sessions and
    links go with the row."""
    user = _user(user_id)
    member = of_row(user)
    db.session.add(
        Tombstone(
            sub=member.id,
            username_key_hash=_username_hash(user.username_key),
            cancelled_at=clock.now(),
        )
    )
    db.session.delete(user)
    db.session.flush()
    events.record("account.cancelled", user_id=member.id, actor=actor)
    return member


def userinfo_claims(member: Member, scopes: frozenset[str]) -> dict[str, Any]:
    """The claims a token with these scopes may see (OIDC Core 5.4)."""
    claims: dict[str, Any] = {"sub": member.id}
    if "profile" in scopes:
        claims["preferred_username"] = member.username
        if member.name:
            claims["name"] = member.name
        if member.gender:
            claims["gender"] = member.gender
        if member.birthdate:
            claims["birthdate"] = member.birthdate.isoformat()
    if "email" in scopes:
        claims["email"] = member.email
        claims["email_verified"] = member.email_verified
    return claims
