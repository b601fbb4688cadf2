"""The risk rules: signals in, a decision and its reasons out.

Every rule of CONTRACT "Step-up and risk" and of the membership help page's
last notes is a pure function here, of the signals the callers gathered and
the ``[risk]`` settings, so that each is unit-tested without a server; the
callers (``idp.signin``, ``idp.rotation``) act on the decision and record its
reasons with the attempt.

* **A sign-in** (:func:`assess_sign_in`) is allowed, allowed with a login
  notification (a device or a country not seen before for the account, a
  long absence), or held for an extra check -- a one-time code, then perhaps
  the birth date (``idp.step_up``) -- when it looks like someone else: the
  right password after a burst of failed ones, a country other than that of
  a session of the account active within ``risk.travel_hours`` (nobody
  flies that fast; the same browser counts too, as CONTRACT says), or a
  device whose session was just forced out for misuse.  Held sign-ins are
  always notified.  A passkey (or a QR sign-in, which a passkey approved)
  is not held: it already proves a device and a person, which is what the
  extra check asks, so it is only notified.
* **A failed password** (:func:`assess_password_failure`): each failure
  after the second holds the answer a quarter second more (at most 5 s);
  ``risk.lock_after_failures`` within ``risk.lock_minutes`` lock password
  sign-ins to the account for that long.  During the lock even the right
  password gets the wrong-password answer, after the same work, so a
  guesser learns nothing; a passkey or QR sign-in still works, and a
  password reset lifts the lock.  An unknown user ID is counted and delayed
  the same way under its typed name, so the three cases look alike.
* **Many failures from one address across accounts** (credential
  stuffing, :func:`address_delay`): past
  ``risk.address_slowdown_after_failures`` within ``risk.lock_minutes``,
  every password attempt from that address waits, a quarter second more
  per failure, at most 5 s -- before the password is checked, so that the
  wait says nothing about the answer.  (``ratelimit.signin`` refuses such an
  address outright later.)
* **A rotated refresh token presented again** (:func:`assess_refresh_reuse`)
  forces the logout of its session -- unless a confidential client is
  within ``tokens.refresh_reuse_seconds`` of the rotation (CONTRACT "Stay
  signed in").

The counters (:class:`PasswordGuard`, :class:`AddressGuard`) are moving
windows in the rate-limit storage: Redis when ``redis.url`` is set (every
node counts together), this process's memory otherwise."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItem, parse

from idp import runtime
from idp.config import RiskSettings
from idp.ratelimit import failures

__all__ = [
    "MAX_DELAY_SECONDS",
    "STRONG_METHODS",
    "Action",
    "AddressGuard",
    "Decision",
    "PasswordGuard",
    "SignInSignals",
    "address_delay",
    "address_guard",
    "assess_password_failure",
    "assess_refresh_reuse",
    "assess_sign_in",
    "failure_delay",
    "notice_reasons",
    "password_guard",
    "risk_reasons",
]

MAX_DELAY_SECONDS = 5.0
STRONG_METHODS = frozenset({"passkey", "qr"})
"""Ways in that already prove a device and a person: never held for an extra check."""


class Action(StrEnum):
    ALLOW = "allow"
    NOTIFY = "notify"
    """Allow, and mail the login notification."""
    STEP_UP = "step_up"
    """Hold the sign-in until an extra check is passed (and notify)."""
    DENY = "deny"
    FORCE_LOGOUT = "force_logout"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reasons: tuple[str, ...] = ()
    """Why, in the words recorded with the attempt: ``new_device``,
    ``new_country``, ``absence``, ``failure_burst``, ``travel``,
    ``suspect_device``, ``wrong_password``, ``locked``, ``refresh_token_reuse``,
    ``within_grace``."""
    delay_seconds: float = 0.0
    """How long to hold the answer."""


# --- a sign-in ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignInSignals:
    """What is known about a sign-in whose proof (password, passkey, QR) was right."""

    method: str
    """``pwd``, ``passkey`` or ``qr``."""
    recent_password_failures: int
    """Failed passwords on the account within ``risk.lock_minutes``."""
    country: str | None
    countries_active_elsewhere: frozenset[str]
    """Countries of the account's sessions that were active within
    ``risk.travel_hours`` (a VPN switched on counts: the check is cheap)."""
    device_suspect: bool
    """A session on this device was forced out for misuse within
    ``risk.suspect_device_hours``."""
    device_seen: bool
    country_seen: bool
    last_sign_in: dt.datetime | None
    now: dt.datetime


def notice_reasons(
    *,
    device_seen: bool,
    country: str | None,
    country_seen: bool,
    last_sign_in: dt.datetime | None,
    now: dt.datetime,
    absence_days: int,
) -> list[str]:
    """Why a sign-in deserves a login notification (empty: it does not)."""
    reasons = []
    if not device_seen:
        reasons.append("new_device")
    if country is not None and not country_seen:
        reasons.append("new_country")
    if last_sign_in is not None and now - last_sign_in > dt.timedelta(days=absence_days):
        reasons.append("absence")
    return reasons


def risk_reasons(s: SignInSignals, rules: RiskSettings) -> list[str]:
    """What makes a sign-in look like someone else's (empty: nothing)."""
    reasons = []
    if s.method == "pwd" and s.recent_password_failures >= rules.step_up_after_failures:
        reasons.append("failure_burst")
    if s.country is not None and s.countries_active_elsewhere - {s.country}:
        reasons.append("travel")
    if s.device_suspect:
        reasons.append("suspect_device")
    return reasons


def assess_sign_in(s: SignInSignals, rules: RiskSettings, *, absence_days: int) -> Decision:
    """Allow, notify, or hold the sign-in for an extra check."""
    risks = risk_reasons(s, rules)
    notices = notice_reasons(
        device_seen=s.device_seen,
        country=s.country,
        country_seen=s.country_seen,
        last_sign_in=s.last_sign_in,
        now=s.now,
        absence_days=absence_days,
    )
    if risks and s.method not in STRONG_METHODS:
        return Decision(Action.STEP_UP, tuple(risks + notices))
    if risks or notices:
        return Decision(Action.NOTIFY, tuple(risks + notices))
    return Decision(Action.ALLOW)


# --- failed passwords -------------------------------------------------------------------


def failure_delay(failed: int) -> float:
    """Seconds to hold the answer to the ``failed``-th failure in a row:
    nothing for the first two (a typo), then a quarter second more each
    time, never more than five."""
    return min(MAX_DELAY_SECONDS, max(0.0, 0.25 * (failed - 2)))


def assess_password_failure(failed: int, rules: RiskSettings) -> Decision:
    """A wrong password (or any password during a lock), the ``failed``-th
    on the account within ``risk.lock_minutes``."""
    reason = "locked" if failed >= rules.lock_after_failures else "wrong_password"
    return Decision(Action.DENY, (reason,), failure_delay(failed))


def address_delay(failed: int, rules: RiskSettings) -> float:
    """Seconds every password attempt from an address waits after ``failed``
    failures from it across accounts within ``risk.lock_minutes``."""
    over = failed - rules.address_slowdown_after_failures
    return min(MAX_DELAY_SECONDS, 0.25 * over) if over > 0 else 0.0


# --- refresh-token reuse ----------------------------------------------------------------


def assess_refresh_reuse(
    *, confidential: bool, since_rotation: dt.timedelta, grace_seconds: int
) -> Decision:
    """A spent refresh token came back: a confidential client's overlapping
    request within the grace, or two parties holding one family (RFC 9700
    §4.14), which ends the session."""
    if confidential and grace_seconds > 0 and since_rotation < dt.timedelta(seconds=grace_seconds):
        return Decision(Action.ALLOW, ("within_grace",))
    return Decision(Action.FORCE_LOGOUT, ("refresh_token_reuse",))


# --- counters ---------------------------------------------------------------------------


def _window(amount: int) -> RateLimitItem:
    return parse(f"{amount} per {runtime.current().settings.risk.lock_minutes} minutes")


@dataclass(frozen=True, slots=True)
class PasswordGuard:
    """The failed-password counter of one account (or typed name)."""

    key: str

    @property
    def _item(self) -> RateLimitItem:
        return _window(runtime.current().settings.risk.lock_after_failures)

    def count(self) -> int:
        """Failed passwords within the window."""
        return failures().used(self._item, self.key)

    def locked(self) -> bool:
        """Whether password sign-ins to the account are locked now."""
        return not failures().test(self._item, self.key)

    def failed(self) -> int:
        """Count a failed password; returns the count within the window."""
        failures().hit(self._item, self.key)
        return self.count()

    def clear(self) -> None:
        """A password reset lifts the lock."""
        failures().clear(self._item, self.key)


def password_guard(account_key: str) -> PasswordGuard:
    """The guard of the account a typed name points at (``accounts.login_key``)."""
    return PasswordGuard(key=f"risk-password|{account_key}")


_ADDRESS_CEILING = 10_000
"""The address counter's window never fills: ``ratelimit.signin`` refuses an
address long before (ten times its rate), and failures are counted only
when a password was checked."""


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """The failed-sign-in counter of one client address, across accounts."""

    key: str

    def count(self) -> int:
        return failures().used(_window(_ADDRESS_CEILING), self.key)

    def failed(self) -> None:
        failures().hit(_window(_ADDRESS_CEILING), self.key)


def address_guard(ip: str) -> AddressGuard:
    return AddressGuard(key=f"risk-address|{ip}")
