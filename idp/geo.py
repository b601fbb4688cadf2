"""An IP address's country, or unknown.

Any MaxMind-format country database named by ``geoip.database`` (GeoLite2,
DB-IP's free country database, ...) is opened once per process.  Without
one, or for an address it does not know (private, loopback), the country is
``None``: "the location could not be determined", which the login
notification then leaves out, as the membership help page promises."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from idp.errors import ConfigError

__all__ = ["country_name", "country_of"]


@functools.cache
def _reader(path: str) -> Any:
    import maxminddb

    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"geoip.database = {path!r}: cannot be opened ({e})") from None


def country_of(ip: str, database: str) -> str | None:
    """The ISO 3166 alpha-2 code of ``ip``'s country, or None."""
    if not database:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.is_private or address.is_loopback:
        return None
    try:
        record = _reader(database).get(str(address))
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    country = record.get("country") or record.get("registered_country") or {}
    code = country.get("iso_code") if isinstance(country, dict) else None
    return code if isinstance(code, str) and len(code) == 2 else None


def country_name(code: str | None) -> str | None:
    """An English country name for display; the code itself if unknown."""
    if code is None:
        return None
    return _NAMES.get(code.upper(), code.upper())


_NAMES = {
    "JP": "Japan",
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "KR": "South Korea",
    "CN": "China",
    "TW": "Taiwan",
    "SG": "Singapore",
    "AU": "Australia",
    "CA": "Canada",
    "IN": "India",
    "BR": "Brazil",
    "NL": "Netherlands",
    "ES": "Spain",
    "IT": "Italy",
    "TH": "Thailand",
    "VN": "Vietnam",
    "PH": "Philippines",
    "ID": "Indonesia",
    "HK": "Hong Kong",
    "RU": "Russia",
}
