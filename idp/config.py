"""The settings tree: one frozen object, loaded once.

Every key lives in exactly one dataclass field below, so the TOML keys, the
``IDP_<SECTION>_<KEY>`` environment names, the defaults and
``config.example.toml`` cannot drift apart (a test checks the example file
covers every field).  Nothing else in the project reads ``os.environ``:
``create_app`` and the CLI call :func:`load` and pass the result down.

A mistake stops start-up with a :class:`~idp.errors.ConfigError` that names
the key, where the value came from and what is allowed, because a provider
that starts on a half-understood configuration is worse than one that does
not start.  Reading the file and the environment into typed values is
``idp.config_sources``; the rules across fields are ``idp.config_rules``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from idp import config_rules, config_sources
from idp.errors import ConfigError

__all__ = [
    "AlertSettings",
    "DatabaseSettings",
    "EventSettings",
    "GeoipSettings",
    "KeySettings",
    "LogoutSettings",
    "MailSettings",
    "MetricsSettings",
    "PasskeySettings",
    "PasswordSettings",
    "QrSettings",
    "RateLimitSettings",
    "RedisSettings",
    "RiskSettings",
    "ServerSettings",
    "SessionSettings",
    "Settings",
    "TokenSettings",
    "load",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    issuer: str = "http://localhost:5000"
    """Public base URL of every endpoint; ``http`` only on a loopback host."""
    trusted_proxies: int = 0
    """Proxies in front: the client IP is this many entries from the right of
    X-Forwarded-For.  0 ignores the header."""
    secret_key: str = ""
    """Signs the CSRF cookie.  Empty: a random key is created once in
    ``keys.dir`` (every node behind a load balancer must share it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    url: str = "sqlite:///var/idp.sqlite3"
    """SQLite (a relative path is the working directory's) or PostgreSQL with
    postgresql+psycopg://user:password@host/dbname; no other database."""
    answer_timeout_seconds: int = 30
    """PostgreSQL: how long a statement waits for the server's answer before
    the connection is given up and the request answered 503; 0 waits
    without end.  ``idp init`` (migrations) always waits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str = ""
    """Shared rate-limit counters; empty keeps them in this process."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySettings:
    dir: str = "keys"
    """Where signing keys live (private keys are created 0600), and the data
    key that seals TOTP seeds at rest (``idp.sealing``)."""
    algorithm: str = "RS256"
    """Algorithm of newly created keys: RS256 or ES256."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordSettings:
    """The argon2id cost of a password hash.  The defaults are RFC 9106's
    second recommendation (argon2-cffi's own); ``idp.config_rules`` refuses
    less than OWASP's least.  A hash made at another cost still verifies and
    is re-made at the next sign-in."""

    hash_memory_kib: int = 65536
    """Memory of one hash, in KiB."""
    hash_iterations: int = 3
    """Passes over that memory."""
    hash_parallelism: int = 4
    """Lanes (threads) of one hash."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSettings:
    access_token_ttl_seconds: int = 900
    id_token_ttl_seconds: int = 3600
    refresh_token_ttl_days: int = 30
    """Life of a refresh token family without offline_access is further
    bounded by its sign-in session."""
    code_ttl_seconds: int = 60
    interaction_ttl_seconds: int = 900
    refresh_reuse_seconds: int = 10
    """A confidential client presenting a refresh token it rotated less than
    this many seconds ago gets a fresh pair instead of a forced logout
    (overlapping requests of one web service); 0 turns the grace off.
    Public clients never get it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    remember_days: int = 30
    remember_max_days: int = 90
    idle_minutes: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class PasskeySettings:
    rp_id: str = ""
    """WebAuthn relying-party ID; empty means the issuer's host."""
    origins: tuple[str, ...] = ()
    """Allowed origins; empty means the issuer's origin."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QrSettings:
    ttl_seconds: int = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class MailSettings:
    backend: str = "file"
    """smtp, file or console."""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: int = 10
    """Each step of an SMTP conversation (connect, a command, the data) gives
    up after this long; the attempt is then retried.  At most 20, so that a
    delivery ends well within the worker's 60-second lease on the message."""
    sender: str = "no-reply@localhost"
    file_dir: str = "var/mail"
    retry_hours: int = 72
    """How long a mail that cannot be delivered is retried (with back-off)
    before it is recorded in the audit log as undelivered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    brand_prefix: str = ""
    timezone: str = "Asia/Tokyo"
    absence_days: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class GeoipSettings:
    database: str = ""
    """A MaxMind-format country database (GeoLite2 Country, DB-IP, a
    commercial one).  Empty: the CC0 database that ``make run`` installs
    from npm when it is there, else countries are unknown.  ``off``: never
    look a country up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskSettings:
    travel_hours: int = 4
    """A password sign-in from another country than that of a session active
    within this many hours is asked for an extra check."""
    lock_after_failures: int = 10
    """Failed passwords on one account that lock password sign-ins to it."""
    lock_minutes: int = 15
    """How long the failures count and the lock lasts (a reset lifts it)."""
    birthdate_question: bool = False
    """The step-up also asks the birth date, after the one-time code."""
    step_up_after_failures: int = 5
    """The right password after this many failed ones within
    ``lock_minutes`` (a burst on the account) is asked for an extra check."""
    address_slowdown_after_failures: int = 30
    """Failed sign-ins from one address, across accounts, within
    ``lock_minutes`` after which every password attempt from it is slowed
    (credential stuffing), a quarter second more per failure, at most 5 s."""
    suspect_device_hours: int = 24
    """A sign-in from a device whose session was forced out for suspected
    misuse (a reused refresh token, a refused extra check) within this many
    hours is asked for an extra check."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSettings:
    signin_retention_days: int = 180
    """How long sign-in attempts are kept (the account's recent activity,
    ``idp events list``); the worker then deletes them in batches."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    enabled: bool = True
    """Serve ``/metrics`` (Prometheus's text format)."""
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Client addresses (after ``server.trusted_proxies``) that may scrape it;
    others get 404."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitSettings:
    enabled: bool = True
    signin: str = "10/minute"
    """Failed sign-ins per account and address (ten times as many per address
    across accounts)."""
    token: str = "600/minute"  # noqa: S105 - a rate, not a secret
    """Failed client authentications and invalid grants per client and address."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoutSettings:
    allow_private_uris: bool | None = None
    """Whether back-channel URIs may point at loopback or private addresses.
    Unset: true when the issuer's host is loopback."""
    retry_hours: int = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    passwords: PasswordSettings = field(default_factory=PasswordSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    passkeys: PasskeySettings = field(default_factory=PasskeySettings)
    qr: QrSettings = field(default_factory=QrSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    geoip: GeoipSettings = field(default_factory=GeoipSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    events: EventSettings = field(default_factory=EventSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    ratelimit: RateLimitSettings = field(default_factory=RateLimitSettings)
    logout: LogoutSettings = field(default_factory=LogoutSettings)

    embedded_defaults: bool = True
    """True when no configuration file was named and no ``IDP_<SECTION>_*``
    variable set anything: only then does first run create a demo account
    and client (a deployment configured by its environment is a deployment)."""
    test_clock_file: str = ""
    """``IDP_TEST_CLOCK_FILE``: the test suite moves a live server's clock by
    the seconds written in this file.  Never set in production; it is no
    key of any section, so no configuration file can set it."""

    # Derived values, computed once so that hot paths do no string work.
    @property
    def issuer_is_https(self) -> bool:
        return self.server.issuer.startswith("https://")

    @property
    def issuer_host(self) -> str:
        return urlsplit(self.server.issuer).hostname or ""

    @property
    def issuer_is_loopback(self) -> bool:
        return config_rules.is_loopback(self.issuer_host)

    @property
    def allow_private_logout_uris(self) -> bool:
        if self.logout.allow_private_uris is None:
            return self.issuer_is_loopback
        return self.logout.allow_private_uris

    @property
    def rp_id(self) -> str:
        return self.passkeys.rp_id or self.issuer_host

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        if self.passkeys.origins:
            return self.passkeys.origins
        parts = urlsplit(self.server.issuer)
        return (f"{parts.scheme}://{parts.netloc}",)

    def url(self, path: str) -> str:
        """An absolute URL on this provider, built from the issuer only."""
        return self.server.issuer + path


SECTIONS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Settings)
    if f.name not in ("embedded_defaults", "test_clock_file")
)


def load(path: str | Path | None, environ: Mapping[str, str]) -> Settings:
    """Read the TOML file (if any), then ``IDP_<SECTION>_<KEY>`` overrides.

    ``path`` None falls back to ``IDP_CONFIG``; neither means the embedded
    defaults.  Raises ConfigError naming the first bad key."""
    if path is None and environ.get("IDP_CONFIG"):
        path = environ["IDP_CONFIG"]
    raw = config_sources.read_file(path) if path is not None else {}
    hints = get_type_hints(Settings)
    section_types = {name: hints[name] for name in SECTIONS}
    sections: dict[str, Any] = {}
    for name, section_type in section_types.items():
        given = raw.pop(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[{name}] in {path} must be a table")
        sections[name] = config_sources.build_section(name, section_type, given, environ, path)
    if raw:
        unknown = sorted(raw)[0]
        raise ConfigError(
            f"unknown section or key '{unknown}' in {path}; sections are: {', '.join(SECTIONS)}"
        )
    configured_by_environment = config_sources.reject_unknown_env(environ, section_types)
    settings = Settings(
        **sections,
        embedded_defaults=path is None and not configured_by_environment,
        test_clock_file=environ.get("IDP_TEST_CLOCK_FILE", ""),
    )
    config_rules.check(settings)
    return settings
