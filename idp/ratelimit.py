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
requests) per address, at ten times the sign-in rate.

Redis going away must not take sign-in with it, nor open the door: while
it does not answer (within ``REDIS_TIMEOUT_SECONDS``), both kinds of limit
count in this process's memory -- per node, so a guesser spread over N
nodes gets N times the tries for as long as the outage lasts -- and Redis
is asked again every ``SHARED_RETRY_SECONDS``.  The outage is logged once
when it starts and once when it ends."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
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
log = logging.getLogger("idp.ratelimit")
T = TypeVar("T")

REDIS_TIMEOUT_SECONDS = 0.5
"""How long a count may wait for Redis before this process counts alone: a
sign-in must not hang on a blackholed connection (redis-py waits forever
by default)."""
SHARED_RETRY_SECONDS = 15
"""While Redis is away, how often a count tries it again."""


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


@dataclass(slots=True)
class Failures:
    """Failure counters in a moving window: in the shared store, or in this
    process's memory while the shared store does not answer."""

    enabled: bool
    shared: MovingWindowRateLimiter
    local: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )
    shared_away_until: float = 0.0
    """``time.monotonic()`` before which the shared store is not asked."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def blocked(self, rate: str, *keys: str) -> int | None:
        """Seconds to wait if any of ``keys`` used up ``rate``, else None."""
        if not self.enabled:
            return None
        item = parse(rate)

        def check(strategy: MovingWindowRateLimiter) -> int | None:
            for key in keys:
                if not strategy.test(item, key):
                    return _retry_after(strategy, item, key)
            return None

        return self._with_a_store(check)

    def count(self, rate: str, *keys: str) -> int | None:
        """Count one failure against each key; seconds to wait if that used
        one of them up, else None."""
        if not self.enabled:
            return None
        item = parse(rate)

        def hit(strategy: MovingWindowRateLimiter) -> int | None:
            over = None
            for key in keys:
                if not strategy.hit(item, key):
                    over = _retry_after(strategy, item, key)
            return over

        return self._with_a_store(hit)

    def refuse_if_over(self, rate: str, *keys: str) -> None:
        """Count a failure; raise RateLimitedError if the limit is now passed."""
        if (retry := self.count(rate, *keys)) is not None:
            raise RateLimitedError(retry_after_seconds=retry)

    def shared_state(self) -> str:
        """``ok`` when the shared store (Redis) answers now, ``unavailable``
        when it does not (this process counts alone meanwhile), ``none``
        when there is none (``redis.url`` unset)."""
        storage = self.shared.storage
        if isinstance(storage, MemoryStorage):
            return "none"
        return "ok" if storage.check() else "unavailable"

    # The moving window's own operations, for counters kept past a rate
    # limit's refusal (``idp.risk``'s lock after failed passwords).

    def hit(self, item: RateLimitItem, key: str) -> bool:
        return self._with_a_store(lambda strategy: strategy.hit(item, key))

    def test(self, item: RateLimitItem, key: str) -> bool:
        return self._with_a_store(lambda strategy: strategy.test(item, key))

    def used(self, item: RateLimitItem, key: str) -> int:
        """How much of ``item`` the window of ``key`` holds now."""
        _, remaining = self._with_a_store(lambda s: s.get_window_stats(item, key))
        return item.amount - remaining

    def clear(self, item: RateLimitItem, key: str) -> None:
        self._with_a_store(lambda strategy: strategy.clear(item, key))

    def _with_a_store(self, use: Callable[[MovingWindowRateLimiter], T]) -> T:
        if time.monotonic() < self.shared_away_until:
            return use(self.local)
        try:
            answer = use(self.shared)
        except StorageError as e:
            with self._lock:
                if not self.shared_away_until:
                    log.warning("Redis does not answer (%s): counting in this process", e)
                self.shared_away_until = time.monotonic() + SHARED_RETRY_SECONDS
            return use(self.local)
        if self.shared_away_until:
            with self._lock:
                if self.shared_away_until:
                    log.warning("Redis answers again: counting across nodes")
                self.shared_away_until = 0.0
        return answer


def _retry_after(strategy: MovingWindowRateLimiter, item: RateLimitItem, key: str) -> int:
    reset_at, _ = strategy.get_window_stats(item, key)
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
    options: dict[str, float] = {}
    if settings.redis.url:
        options = {
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        }
    app.config["RATELIMIT_ENABLED"] = settings.ratelimit.enabled
    app.config["RATELIMIT_STORAGE_URI"] = uri
    app.config["RATELIMIT_STORAGE_OPTIONS"] = options
    app.config["RATELIMIT_KEY_PREFIX"] = "idp"
    app.config["RATELIMIT_SWALLOW_ERRORS"] = False
    app.config["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    limiter.init_app(app)
    storage = storage_from_string(uri, key_prefix="idp-failures", wrap_exceptions=True, **options)
    assert isinstance(storage, Storage)  # noqa: S101 - a synchronous URI gives a synchronous storage
    app.extensions[_EXTENSION] = Failures(
        enabled=settings.ratelimit.enabled, shared=MovingWindowRateLimiter(storage)
    )
