"""The rules of an account's fields, before anything is looked up: the
shape of a user ID and of an email address, a name's length, the genders
registration offers and the birth date it takes, the languages.  The same
rules hold at registration (``idp.registration``), at the command line and
on the profile page (``idp.accounts``); a refusal is a UsageError whose
words say what to fix (they are translated for the pages)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from idp import clock, passwords
from idp.errors import UsageError

__all__ = [
    "EARLIEST_BIRTHDATE",
    "GENDERS",
    "LANGUAGES",
    "MAX_NAME_LENGTH",
    "check_new",
    "clean_name",
    "validate_email",
]

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{1,63}$|^[^@\s]{1,64}@localhost$")

LANGUAGES = ("en", "ja")
"""The languages of the pages and of mail."""
GENDERS = ("female", "male", "other", "unspecified")
"""What registration offers; OIDC Core 5.1 allows any value (the CLI may set one)."""
MAX_NAME_LENGTH = 200
EARLIEST_BIRTHDATE = dt.date(1900, 1, 1)
"""No member was born before it: an earlier date is a typing error."""


def validate_email(email: str) -> str:
    """The address, trimmed; UsageError if it is none."""
    email = email.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise UsageError("Enter a valid email address.")
    return email


def clean_name(name: str) -> str:
    """The display name with its runs of whitespace made one space.  A
    control character left after that (an ESC, a DEL) is refused: it would
    reach the ID token, mail and the admin's terminal as it is."""
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise UsageError("The name must have at most 200 characters.")  # MAX_NAME_LENGTH
    if any(unicodedata.category(c) == "Cc" for c in cleaned):
        raise UsageError("The name must not contain control characters.")
    return cleaned


def check_new(
    *,
    username: str,
    email: str,
    password: str,
    name: str,
    birthdate: dt.date | None,
    gender: str | None,
) -> tuple[str, str, str]:
    """The rules of a new account's fields, before anything is looked up;
    returns the user ID, email and name cleaned.  Raises UsageError."""
    username = username.strip()
    if not _USERNAME.match(username):
        raise UsageError(
            "A user ID has 3-64 letters, digits, '.', '_' or '-', and starts with a letter "
            "or digit."
        )
    email = validate_email(email)
    name = clean_name(name)
    if gender is not None and not 1 <= len(gender.strip()) <= 32:
        # OIDC Core 5.1: "female", "male", or another value the member chose.
        raise UsageError("The gender must have 1-32 characters (e.g. female, male).")
    if birthdate is not None and birthdate > clock.now().date():
        raise UsageError("The birth date must not be in the future.")
    if birthdate is not None and birthdate < EARLIEST_BIRTHDATE:
        raise UsageError("The birth date must be 1900-01-01 or later.")  # EARLIEST_BIRTHDATE
    passwords.check_policy(password, username=username, email=email)
    return username, email, name
