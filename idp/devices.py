"""The device cookie: a long-lived random identifier of a browser.

It never signs anyone in; it is what "a device seen before" means for login
notifications and risk decisions.  Signing out keeps it."""

from __future__ import annotations

import re

from idp.db import new_secret

__all__ = ["COOKIE_MAX_AGE_SECONDS", "describe", "is_valid", "new_device_id"]

COOKIE_MAX_AGE_SECONDS = 400 * 24 * 3600
"""400 days: the longest lifetime browsers honour (RFC 6265bis)."""

_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_device_id() -> str:
    return new_secret(24)


def is_valid(value: str | None) -> bool:
    """Whether a presented cookie has our shape (anything else is replaced)."""
    return bool(value and _SHAPE.match(value))


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str) -> str:
    """A person-readable "Browser on System" from a User-Agent header.

    Deliberately coarse: it names what a person recognises in a list of
    their devices, not a fingerprint."""
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), "")
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"
