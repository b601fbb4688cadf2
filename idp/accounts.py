"""Member accounts: creation, look-up, password sign-in, profile claims.

A member signs in with a user ID or an email address.  Both are compared
case-folded (``*_key`` columns) so that ``Alice`` and ``alice`` can never be
two accounts.  Gender and birth date are set at registration and never
changed afterwards, as the membership help page promises."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from idp import clock, events, passwords, sessions
from idp.db import db, service
from idp.errors import (
    AccountDisabledError,
    ConflictError,
    InvalidCredentialsError,
    NotFoundError,
    UsageError,
)
from idp.models import User

__all__ = [
    "Member",
    "authenticate",
    "create",
    "find",
    "get",
    "login_key",
    "set_admin",
    "set_disabled",
    "update_name",
    "userinfo_claims",
]

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{1,63}$|^[^@\s]{1,64}@localhost$")


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    username: str
    email: str
    email_verified: bool
    name: str
    gender: str | None
    birthdate: dt.date | None
    is_admin: bool
    disabled: bool
    created_at: dt.datetime


def _member(u: User) -> Member:
    return Member(
        id=u.id,
        username=u.username,
        email=u.email,
        email_verified=u.email_verified,
        name=u.name,
        gender=u.gender,
        birthdate=u.birthdate,
        is_admin=u.is_admin,
        disabled=u.disabled_at is not None,
        created_at=u.created_at,
    )


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
) -> Member:
    """Create an account.  Raises UsageError or ConflictError."""
    if not _USERNAME.match(username):
        raise UsageError(
            "username must be 3-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    if "@" in username:
        raise UsageError("username must not contain '@'")
    if not _EMAIL.match(email):
        raise UsageError(f"email {email!r} is not an email address")
    if gender is not None and not 1 <= len(gender.strip()) <= 32:
        # OIDC Core 5.1: "female", "male", or another value the member chose.
        raise UsageError("gender must be 1-32 characters (e.g. female, male)")
    if birthdate is not None and birthdate > clock.now().date():
        raise UsageError("birthdate must not be in the future")
    passwords.check_policy(password)
    username_key, email_key = username.casefold(), email.casefold()
    taken = db.session.scalar(
        select(User.id).where(or_(User.username_key == username_key, User.email_key == email_key))
    )
    if taken is not None:
        raise ConflictError("that username or email is already registered")
    now = clock.now()
    user = User(
        id=str(uuid.uuid4()),
        username=username,
        username_key=username_key,
        email=email,
        email_key=email_key,
        email_verified=email_verified,
        password_hash=passwords.hash_password(password),
        name=name,
        gender=gender,
        birthdate=birthdate,
        is_admin=is_admin,
        created_at=now,
        updated_at=now,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        # Registered a moment ago by a concurrent request: the unique index decided.
        raise ConflictError("that username or email is already registered") from None
    events.record("account.created", user_id=user.id)
    return _member(user)


def _lookup(ref: str) -> User | None:
    """By ``sub`` or username (exact), as the admin API and CLI name accounts."""
    user = db.session.get(User, ref) if len(ref) == 36 else None
    if user is None:
        user = db.session.scalar(select(User).where(User.username_key == ref.casefold()))
    return user


def get(user_id: str) -> Member:
    """The member with this ``sub``.  Raises NotFoundError."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFoundError("no such user")
    return _member(user)


def find(ref: str) -> Member:
    """The member with this ``sub`` or username.  Raises NotFoundError."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    return _member(user)


def _by_login(login: str) -> User | None:
    key = login.strip().casefold()
    if not key or len(key) > 254:
        return None
    column = User.email_key if "@" in key else User.username_key
    return db.session.scalar(select(User).where(column == key))


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
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not ok:
        raise InvalidCredentialsError(detail="unknown user" if user is None else "wrong password")
    if user.disabled_at is not None:
        raise AccountDisabledError(detail="account disabled")
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return _member(user)


@service
def update_name(user_id: str, name: str) -> Member:
    """Change the display name (the only profile field a member may edit)."""
    cleaned = " ".join(name.split())
    if len(cleaned) > 200:
        raise UsageError("The name must have at most 200 characters.")
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFoundError("no such user")
    if user.name != cleaned:
        user.name = cleaned
        user.updated_at = clock.now()
        events.record("account.name_changed", user_id=user_id)
    return _member(user)


@service
def set_disabled(ref: str, disabled: bool) -> tuple[Member, int]:
    """Disable an account -- and end every session and token of it, in the
    same transaction -- or enable it again.  Returns the member and how many
    sessions ended."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    now = clock.now()
    user.disabled_at = now if disabled else None
    user.updated_at = now
    events.record("account.disabled" if disabled else "account.enabled", user_id=user.id)
    ended = 0
    if disabled:
        ended = len(
            sessions.force_logout(
                user_id=user.id, reason=sessions.LogoutReason.ACCOUNT_DISABLED, actor="admin"
            ).session_ids
        )
    return _member(user), ended


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
    return _member(user)


@service
def delete(ref: str) -> tuple[Member, int]:
    """Delete an account after ending every session and token of it (the
    relying services are told), in one transaction.  Returns the member and
    how many sessions ended."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    member = _member(user)
    ended = len(
        sessions.force_logout(
            user_id=member.id, reason=sessions.LogoutReason.ACCOUNT_DELETED, actor="admin"
        ).session_ids
    )
    # The session rows go with the account; the logouts queued above stay.
    db.session.delete(user)
    events.record("account.deleted", user_id=member.id, username=member.username)
    return member, ended


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
