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

from idp import clock, events, passwords
from idp.db import db
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
    """Create an account and commit.  Raises UsageError or ConflictError."""
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
    events.record("account.created", user_id=user.id)
    db.session.commit()
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


def authenticate(login: str, password: str, *, ip: str | None = None) -> Member:
    """Check a user ID (or email) and password.

    Unknown user and wrong password raise the same InvalidCredentialsError
    after the same argon2 work, so the answer reveals nothing.  A correct
    password for a disabled account raises AccountDisabledError.  A failure
    is recorded (and committed) against the account when there is one."""
    key = login.strip().casefold()
    user = None
    if key and len(key) <= 254:
        column = User.email_key if "@" in key else User.username_key
        user = db.session.scalar(select(User).where(column == key))
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not ok:
        reason = "unknown user" if user is None else "wrong password"
        if user is not None:
            events.record("signin.failed", user_id=user.id, ip=ip, reason=reason)
            db.session.commit()
        raise InvalidCredentialsError(detail=reason)
    if user.disabled_at is not None:
        events.record("signin.refused", user_id=user.id, ip=ip, reason="account disabled")
        db.session.commit()
        raise AccountDisabledError(detail="account disabled")
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return _member(user)


def update_name(user_id: str, name: str) -> Member:
    """Change the display name (the only profile field a member may edit); commits."""
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
        db.session.commit()
    return _member(user)


def set_disabled(ref: str, disabled: bool) -> Member:
    """Disable or re-enable an account and commit (callers end its sessions)."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    now = clock.now()
    user.disabled_at = now if disabled else None
    user.updated_at = now
    events.record("account.disabled" if disabled else "account.enabled", user_id=user.id)
    db.session.commit()
    return _member(user)


def delete(ref: str) -> Member:
    """Delete an account and everything that cascades from it, and commit."""
    user = _lookup(ref)
    if user is None:
        raise NotFoundError(f"no user {ref!r}")
    member = _member(user)
    db.session.delete(user)
    events.record("account.deleted", user_id=member.id, username=member.username)
    db.session.commit()
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
