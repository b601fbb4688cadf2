"""The provider's idea of now.

Every rule with a time in it (expiry, idle timeout, key retirement) asks
:func:`now` so that tests can move time instead of sleeping.  Only tests call
:func:`freeze` / :func:`advance`; production never does."""

from __future__ import annotations

import datetime as dt

__all__ = ["advance", "freeze", "now", "now_ts", "unfreeze"]

_frozen_at: dt.datetime | None = None


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    if _frozen_at is not None:
        return _frozen_at
    return dt.datetime.now(dt.UTC)


def now_ts() -> int:
    """The current time as integer seconds since the epoch (JWT NumericDate)."""
    return int(now().timestamp())


def freeze(at: dt.datetime | None = None) -> dt.datetime:
    global _frozen_at
    _frozen_at = at or dt.datetime.now(dt.UTC)
    return _frozen_at


def advance(**delta: float) -> dt.datetime:
    global _frozen_at
    _frozen_at = now() + dt.timedelta(**delta)
    return _frozen_at


def unfreeze() -> None:
    global _frozen_at
    _frozen_at = None
