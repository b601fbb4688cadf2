"""Password hashing with argon2id.

Passwords are low-entropy, so they get a deliberately slow, memory-hard hash
(argon2-cffi's defaults follow RFC 9106's second recommendation).  A sign-in
for an unknown user ID still verifies against a fixed dummy hash, so the
answer takes the same time whether the account exists or not."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.errors import UsageError

__all__ = ["MIN_LENGTH", "check_policy", "hash_password", "needs_rehash", "verify_password"]

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Longer inputs are refused: argon2 cost grows with length (a DoS lever)."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("an unknown user's password never matches this")


def check_policy(password: str) -> None:
    """Raise UsageError unless the password may be set."""
    if len(password) < MIN_LENGTH:
        raise UsageError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise UsageError(f"the password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check: a missing hash costs the same as a wrong password."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
