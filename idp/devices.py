"""The device cookie: a long-lived random identifier of a browser.

It never signs anyone in; it is what "a device seen before" means for login
notifications and risk decisions.  Signing out keeps it."""

from __future__ import annotations

import re

from idp.db import new_secret

__all__ = ["COOKIE_MAX_AGE_SECONDS", "is_valid", "new_device_id"]

COOKIE_MAX_AGE_SECONDS = 400 * 24 * 3600
"""400 days: the longest lifetime browsers honour (RFC 6265bis)."""

_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_device_id() -> str:
    return new_secret(24)


def is_valid(value: str | None) -> bool:
    """Whether a presented cookie has our shape (anything else is replaced)."""
    return bool(value and _SHAPE.match(value))
