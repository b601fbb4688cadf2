"""The risk rules of a sign-in: signals in, a decision and its reason out.

Failed passwords on one account (CONTRACT "Step-up and risk"): each failure
after the second delays the answer a little more (a quarter second more
each time, at most 5 s), and ``risk.lock_after_failures`` failures within
``risk.lock_minutes`` lock password sign-ins to the account for that long.
During the lock even the right password gets the wrong-password answer
(same text, same work), so a guesser learns nothing; a passkey or QR
sign-in still works, and a password reset lifts the lock.  An unknown user
ID is counted and delayed the same way under its typed name, so the three
cases look alike.

The counters are moving windows in the rate-limit storage: Redis when
``redis.url`` is set (every node counts together), this process's memory
otherwise.  The decisions are plain functions of the counts and the
settings."""

from __future__ import annotations

from dataclasses import dataclass

from limits import parse

from idp import runtime
from idp.ratelimit import failures

__all__ = ["PasswordGuard", "failure_delay", "password_guard"]

MAX_DELAY_SECONDS = 5.0


def failure_delay(failed: int) -> float:
    """Seconds to hold the answer to the ``failed``-th failure in a row:
    nothing for the first two (a typo), then a quarter second more each
    time, never more than five."""
    return min(MAX_DELAY_SECONDS, max(0.0, 0.25 * (failed - 2)))


@dataclass(frozen=True, slots=True)
class PasswordGuard:
    """The password-failure counter of one account (or typed name)."""

    key: str

    @property
    def _window(self) -> str:
        risk = runtime.current().settings.risk
        return f"{risk.lock_after_failures} per {risk.lock_minutes} minutes"

    def locked(self) -> bool:
        """Whether password sign-ins to the account are locked now."""
        return not failures().strategy.test(parse(self._window), self.key)

    def failed(self) -> float:
        """Count a failed password; returns how long to hold the answer."""
        counters = failures()
        item = parse(self._window)
        counters.strategy.hit(item, self.key)
        _, remaining = counters.strategy.get_window_stats(item, self.key)
        return failure_delay(item.amount - remaining)

    def clear(self) -> None:
        """A password reset lifts the lock."""
        failures().strategy.clear(parse(self._window), self.key)


def password_guard(account_key: str) -> PasswordGuard:
    """The guard of the account a typed name points at (``accounts.login_key``)."""
    return PasswordGuard(key=f"risk-password|{account_key}")
