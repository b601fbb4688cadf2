"""The rules of the settings that a type alone cannot say: an issuer that is
an absolute URL without a trailing slash (https unless on loopback), counts
and durations that are positive, a SMTP timeout that ends within the
worker's lease, names of algorithms, backends, time zones and networks that
exist, rates that Flask-Limiter can read, a password hash no cheaper than
OWASP's least.  ``idp.config.load`` runs
:func:`check` on every settings object it makes."""

from __future__ import annotations

import ipaddress
import zoneinfo
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from idp.errors import ConfigError

if TYPE_CHECKING:
    from idp.config import Settings

__all__ = ["MAX_SMTP_TIMEOUT_SECONDS", "check", "is_loopback"]


def is_loopback(host: str) -> bool:
    """``localhost``, a name under it, or a loopback address."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MAX_SMTP_TIMEOUT_SECONDS = 20

_LEAST_HASH_MEMORY_KIB = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}
"""OWASP's least argon2id memory for each number of iterations (its Password
Storage Cheat Sheet: 46 MiB with 1, 19 MiB with 2, 12 MiB with 3, 9 MiB
with 4, 7 MiB with 5; more iterations need no more than 5's)."""
_MAX_HASH_MEMORY_KIB = 4 * 1024 * 1024
"""4 GiB: twice RFC 9106's first recommendation.  More is a typo (a hash
that size, times the sign-ins at once, would take the node down)."""
_MAX_HASH_PARALLELISM = 64


_DATABASES = {"sqlite": "pysqlite", "postgresql": "psycopg"}
"""The databases the schema, its migrations and the prepared statements are
written and tested for, each with the driver installed with the project
(SQLAlchemy's default for each)."""


def _check_database_url(url: str) -> None:
    """SQLite or PostgreSQL through psycopg.  Another backend or driver would
    fail at the first query with an import error (or work until a statement
    only those two speak); the URL's password is never repeated."""
    expected = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"
    try:
        scheme = make_url(url).drivername if "://" in url else None
    except (ArgumentError, ValueError):
        scheme = None
    if scheme is None:
        raise ConfigError(f"database.url is not a URL; {expected}")
    backend, _, driver = scheme.partition("+")
    if backend not in _DATABASES or driver not in ("", _DATABASES[backend]):
        raise ConfigError(f"database.url: {scheme}:// is not supported; {expected}")


def _positive(settings: Settings, key: str, minimum: int = 1) -> None:
    section, name = key.split(".")
    value = getattr(getattr(settings, section), name)
    if value < minimum:
        raise ConfigError(f"{key} = {value!r}: expected an integer >= {minimum}")


def check(s: Settings) -> None:
    """Rules across fields: what a type alone cannot say."""
    parts = urlsplit(s.server.issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"server.issuer = {s.server.issuer!r}: expected an absolute http(s) URL")
    if parts.query or parts.fragment or s.server.issuer.endswith("/"):
        raise ConfigError(
            f"server.issuer = {s.server.issuer!r}: expected no query, fragment or trailing slash"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"server.issuer = {s.server.issuer!r}: http is allowed only on a loopback host; "
            "use https"
        )
    for key in (
        "server.trusted_proxies",
        "mail.smtp_port",
        "tokens.refresh_reuse_seconds",
        "database.answer_timeout_seconds",
    ):
        _positive(s, key, 0)
    for key in (
        "tokens.access_token_ttl_seconds",
        "tokens.id_token_ttl_seconds",
        "tokens.refresh_token_ttl_days",
        "tokens.code_ttl_seconds",
        "tokens.interaction_ttl_seconds",
        "session.remember_days",
        "session.remember_max_days",
        "session.idle_minutes",
        "qr.ttl_seconds",
        "alerts.absence_days",
        "risk.travel_hours",
        "risk.lock_after_failures",
        "risk.lock_minutes",
        "risk.step_up_after_failures",
        "risk.address_slowdown_after_failures",
        "risk.suspect_device_hours",
        "events.signin_retention_days",
        "logout.retry_hours",
        "mail.retry_hours",
        "mail.smtp_timeout_seconds",
        "passwords.hash_iterations",
        "passwords.hash_parallelism",
    ):
        _positive(s, key)
    _check_password_cost(s)
    if s.mail.smtp_timeout_seconds > MAX_SMTP_TIMEOUT_SECONDS:
        raise ConfigError(
            f"mail.smtp_timeout_seconds = {s.mail.smtp_timeout_seconds!r}: expected an integer "
            f"<= {MAX_SMTP_TIMEOUT_SECONDS} (a delivery must end within the worker's lease)"
        )
    if s.session.remember_max_days < s.session.remember_days:
        raise ConfigError(
            f"session.remember_max_days = {s.session.remember_max_days}: expected an integer "
            f">= session.remember_days ({s.session.remember_days})"
        )
    if s.keys.algorithm not in ("RS256", "ES256"):
        raise ConfigError(f"keys.algorithm = {s.keys.algorithm!r}: expected RS256 or ES256")
    _check_database_url(s.database.url)
    if s.redis.url and not s.redis.url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"redis.url = {s.redis.url!r}: expected redis://, rediss:// or unix:// (or empty)"
        )
    if s.mail.backend not in ("smtp", "file", "console"):
        raise ConfigError(f"mail.backend = {s.mail.backend!r}: expected smtp, file or console")
    if s.mail.smtp_starttls and s.mail.smtp_tls:
        raise ConfigError(
            "mail.smtp_starttls and mail.smtp_tls are both true: choose one "
            "(STARTTLS on a plain port, usually 587, or TLS from the start, usually 465)"
        )
    if s.mail.backend == "smtp" and not s.mail.smtp_host:
        raise ConfigError("mail.smtp_host is empty: the smtp backend needs a host")
    try:
        zoneinfo.ZoneInfo(s.alerts.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"alerts.timezone = {s.alerts.timezone!r}: expected an IANA time zone such as "
            "Asia/Tokyo"
        ) from None
    rp_id = s.rp_id
    try:
        ipaddress.ip_address(rp_id)
        if s.passkeys.rp_id:
            raise ConfigError(
                f"passkeys.rp_id = {rp_id!r}: expected a domain name, not an IP address"
            )
    except ValueError:
        pass
    for network in s.metrics.allowed_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(
                f"metrics.allowed_networks: {network!r} is not a network such as 10.0.0.0/8"
            ) from None
    for key, limit in (
        ("ratelimit.signin", s.ratelimit.signin),
        ("ratelimit.token", s.ratelimit.token),
    ):
        _check_rate(key, limit)


def _check_password_cost(s: Settings) -> None:
    """No less than OWASP's least argon2id cost: the hash is what stands
    between a stolen database and its passwords."""
    memory, iterations = s.passwords.hash_memory_kib, s.passwords.hash_iterations
    least = _LEAST_HASH_MEMORY_KIB[min(iterations, 5)]
    if memory < least:
        raise ConfigError(
            f"passwords.hash_memory_kib = {memory!r}: expected an integer >= {least} with "
            f"hash_iterations = {iterations} (OWASP's least argon2id cost)"
        )
    if memory > _MAX_HASH_MEMORY_KIB:
        raise ConfigError(
            f"passwords.hash_memory_kib = {memory!r}: expected an integer <= "
            f"{_MAX_HASH_MEMORY_KIB} (4 GiB)"
        )
    if s.passwords.hash_parallelism > _MAX_HASH_PARALLELISM:
        raise ConfigError(
            f"passwords.hash_parallelism = {s.passwords.hash_parallelism!r}: expected an "
            f"integer <= {_MAX_HASH_PARALLELISM}"
        )


def _check_rate(key: str, value: str) -> None:
    from limits import parse_many  # Flask-Limiter's own parser

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{key} = {value!r}: expected a rate such as '10/minute' or '100 per hour'"
        ) from None
