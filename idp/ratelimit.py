"""Rate limits on failures, and on the ceremonies that cost us work.

What is counted is failures, never successes, and always per address as
well as per target, so that nobody can lock a client or a person out from
an address of their own choosing (CONTRACT "Settings": ``ratelimit.*``):

* ``ratelimit.signin`` counts failed sign-ins per account and address
  (every name of an account -- user ID, email -- is one bucket) and,
  separately, per address across accounts (credential stuffing), where ten
  times as many are allowed (an office behind one address has many
  people who mistype).  A
  password is low in entropy, so an exhausted bucket refuses before the
  password is even checked: 429 with ``Retry-After``.
* ``ratelimit.token`` counts failed client authentications and invalid
  grants per (client, address) at the token, introspection and revocation
  endpoints.  Secrets, codes and refresh tokens are 256-bit random values,
  so the request is always evaluated: one that succeeds is answered, one
  that fails beyond the limit is answered 429 instead of its error.

Counters live in Redis when ``redis.url`` is set, so that every node counts
together; otherwise in this process's memory.  Flask-Limiter (same storage)
caps the ceremonies that create server-side state (passkey challenges, QR
requests) per address, at ten times the sign-in rate."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from idp import remote, runtime
from idp.config import Settings
from idp.errors import RateLimitedError

__all__ = [
    "Failures",
    "across_accounts",
    "ceremony_key",
    "ceremony_limit",
    "failures",
    "init_app",
    "limit_retry_after",
    "limiter",
    "named_client_id",
    "request_ip",
]

_EXTENSION = "idp.failures"


def request_ip() -> str:
    return remote.client_ip(request, runtime.current().settings.server.trusted_proxies)


limiter = Limiter(key_func=request_ip, headers_enabled=True, strategy="moving-window")


def ceremony_key() -> str:
    """Per client address: ceremonies that name no account until they succeed."""
    return f"ceremony|{request_ip()}"


def across_accounts(rate: str) -> str:
    """Ten times ``rate``: what one address may do across many accounts."""
    item = parse(rate)
    return f"{item.amount * 10} per {item.multiples} {item.GRANULARITY.name}"


def ceremony_limit() -> str:
    return across_accounts(runtime.current().settings.ratelimit.signin)


def named_client_id() -> str:
    """The client a request names by HTTP Basic or the form, authenticated
    or not (a flood of bad secrets for one client is counted all the same).
    Undecodable credentials name no client."""
    auth = request.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return "-"
        return decoded.split(":", 1)[0][:64] or "-"
    value = request.form.get("client_id", "")
    return value[:64] or "-"


@dataclass(frozen=True, slots=True)
class Failures:
    """Failure counters in a moving window."""

    enabled: bool
    strategy: MovingWindowRateLimiter

    def blocked(self, rate: str, *keys: str) -> int | None:
        """Seconds to wait if any of ``keys`` used up ``rate``, else None."""
        if not self.enabled:
            return None
        item = parse(rate)
        for key in keys:
            if not self.strategy.test(item, key):
                return self._retry_after(item, key)
        return None

    def count(self, rate: str, *keys: str) -> int | None:
        """Count one failure against each key; seconds to wait if that used
        one of them up, else None."""
        if not self.enabled:
            return None
        item = parse(rate)
        over = None
        for key in keys:
            if not self.strategy.hit(item, key):
                over = self._retry_after(item, key)
        return over

    def refuse_if_over(self, rate: str, *keys: str) -> None:
        """Count a failure; raise RateLimitedError if the limit is now passed."""
        if (retry := self.count(rate, *keys)) is not None:
            raise RateLimitedError(retry_after_seconds=retry)

    def _retry_after(self, item: RateLimitItem, key: str) -> int:
        reset_at, _ = self.strategy.get_window_stats(item, key)
        return max(1, int(reset_at - time.time()) + 1)


def limit_retry_after(e: Exception) -> int:
    """Seconds until Flask-Limiter's exhausted window (on its 429) frees up."""
    limit = getattr(e, "limit", None)
    try:
        return max(1, int(limit.limit.get_expiry()))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return 60


def failures() -> Failures:
    found: Failures = current_app.extensions[_EXTENSION]
    return found


def init_app(app: Flask, settings: Settings) -> None:
    uri = settings.redis.url or "memory://"
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit.enabled
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_KEY_PREFIX"] = "idp"
    app.config["RATELIMIT_SWALLOW_ERRORS"] = False
    limiter.init_app(app)
    storage = storage_from_string(uri, key_prefix="idp-failures")
    assert isinstance(storage, Storage)  # noqa: S101 - a synchronous URI gives a synchronous storage
    app.extensions[_EXTENSION] = Failures(
        enabled=settings.ratelimit.enabled, strategy=MovingWindowRateLimiter(storage)
    )
