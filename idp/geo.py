"""An IP address's country, or unknown.

Any MaxMind-format country database works: MaxMind's own (GeoLite2 Country,
GeoIP2) whose records carry ``country.iso_code``, and the ip-location-db
databases whose records carry ``country_code``.  ``geoip.database`` names
one; left empty, the provider uses the CC0 ``geo-whois-asn-country``
database that ``make run`` installs from npm under ``geoip/`` (see the
README for its licence and age), so that a fresh clone knows countries out
of the box.  ``off`` turns look-ups off.

A database is opened once per process (memory-mapped by ``maxminddb``).
For an address it does not know -- private, loopback, unallocated -- the
country is ``None``: "the location could not be determined", which the
login notification then leaves out, as the membership help page promises.

Country names come from Babel's CLDR territory names in the reader's
language, so a notice reads "Japan" or "日本" as the member reads."""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError

from idp.errors import ConfigError

__all__ = ["BUNDLED_DATABASE", "check", "country_name", "country_of", "database_path"]

BUNDLED_DATABASE = (
    Path(__file__).resolve().parent.parent
    / "geoip"
    / "node_modules"
    / "@ip-location-db"
    / "geo-whois-asn-country-mmdb"
    / "geo-whois-asn-country.mmdb"
)
"""Where ``npm ci`` in ``geoip/`` puts the bundled database (a source checkout)."""


@functools.cache
def database_path(configured: str) -> str:
    """The database file ``geoip.database`` means; empty when there is none."""
    if configured == "off":
        return ""
    if configured:
        return configured
    return str(BUNDLED_DATABASE) if BUNDLED_DATABASE.is_file() else ""


@functools.cache
def _reader(path: str) -> Any:
    import maxminddb

    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise ConfigError(f"geoip.database = {path!r}: cannot be opened ({e})") from None


def check(database: str) -> None:
    """Open the database ``geoip.database`` names now, so that a wrong path
    stops start-up (ConfigError) instead of failing a sign-in later."""
    if path := database_path(database):
        _reader(path)


def _code_in(record: object) -> str | None:
    """The ISO 3166 alpha-2 code in a record of either family of databases."""
    if not isinstance(record, dict):
        return None
    code = record.get("country_code")
    if code is None:
        country = record.get("country") or record.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, dict) else None
    if isinstance(code, str) and len(code) == 2 and code.isascii() and code.isalpha():
        return code.upper()
    return None


def country_of(ip: str, database: str) -> str | None:
    """The ISO 3166 alpha-2 code of ``ip``'s country, or None.  ``database``
    is the ``geoip.database`` setting."""
    path = database_path(database)
    if not path:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if not address.is_global:
        return None
    import maxminddb

    try:
        record = _reader(path).get(str(address))
    except (ValueError, maxminddb.InvalidDatabaseError):
        return None  # a damaged entry: unknown, never a failed sign-in
    return _code_in(record)


@functools.cache
def _territories(language: str) -> dict[str, str]:
    try:
        locale = Locale.parse(language, sep="-")
    except (UnknownLocaleError, ValueError):
        locale = Locale("en")
    return dict(locale.territories)


def country_name(code: str | None, language: str = "en") -> str | None:
    """The country's name in ``language`` (a BCP 47 tag such as ``ja``);
    the code itself for a code CLDR does not name."""
    if code is None:
        return None
    code = code.upper()
    return _territories(language).get(code, code)
