"""Password hashing with argon2id, and the rules a new password must meet.

Passwords are low-entropy, so they get a deliberately slow, memory-hard hash
at the cost of ``[passwords]`` (by default RFC 9106's second recommendation),
re-made at sign-in when the cost changes.  A sign-in for an unknown user ID
still verifies against a fixed dummy hash, so the answer takes the same
time whether the account exists or not.

A new password has at least 10 characters (NIST SP 800-63B §3.1.1.2 asks
for 8; attackers try the short ones first), is not one of the 30,000 most
common passwords (the list zxcvbn ships, from leaked password corpora), and
does not contain the user ID or the email address."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.config import PasswordSettings
from idp.errors import UsageError

__all__ = ["MIN_LENGTH", "check_policy", "hash_password", "needs_rehash", "verify_password"]

MIN_LENGTH = 10
MAX_LENGTH = 1024
# Their refusals below say these numbers in words a translation can hold.
"""Longer inputs are refused: argon2 cost grows with length (a DoS lever)."""


@functools.cache
def _hasher(cost: PasswordSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.hash_iterations,
        memory_cost=cost.hash_memory_kib,
        parallelism=cost.hash_parallelism,
    )


@functools.cache
def _dummy_hash(cost: PasswordSettings) -> str:
    """Made at the process's first verification, not at import: a hash
    takes ~0.2 s, which every ``idp`` command paid.  The first
    verification makes it whether the account exists or not, so that it
    does not tell them apart either; and at the configured cost, so that
    an unknown account costs what a known one does."""
    return _hasher(cost).hash("an unknown user's password never matches this")


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.casefold() for p in FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, username: str = "", email: str = "") -> None:
    """Raise UsageError (its description says what to change) unless the
    password may be set for this user ID and email."""
    if len(password) < MIN_LENGTH:
        raise UsageError("The password must have at least 10 characters.")  # MIN_LENGTH
    if len(password) > MAX_LENGTH:
        raise UsageError("The password must have at most 1024 characters.")  # MAX_LENGTH
    if "\0" in password:  # no form can send one (idp.text_input): it could never sign in
        raise UsageError("The password must not contain a NUL character.")
    folded = password.casefold()
    if folded in _common() or folded.strip("0123456789!?.") in _common():
        raise UsageError("This password is one of the most common ones. Choose another.")
    local_part = email.partition("@")[0]
    for name in (username, email, local_part if len(local_part) >= 4 else ""):
        if name and name.casefold() in folded:
            raise UsageError("The password must not contain your user ID or email address.")


def hash_password(password: str, cost: PasswordSettings) -> str:
    return _hasher(cost).hash(password)


def verify_password(password_hash: str | None, password: str, cost: PasswordSettings) -> bool:
    """Constant-work check: a missing hash costs the same as a wrong password.
    A hash verifies at the cost it was made with, whatever ``cost`` is now."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    dummy_hash = _dummy_hash(cost)
    try:
        return (
            _hasher(cost).verify(password_hash or dummy_hash, password)
            and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, cost: PasswordSettings) -> bool:
    """Whether the hash was made at another cost than ``cost``."""
    return _hasher(cost).check_needs_rehash(password_hash)
