"""Small MaxMind-format country databases built by the tests (mmdb-writer).

Real, public address blocks, so that the provider's ``is_global`` check
lets them through; each test names the country it wants them to have.
``style`` picks the record shape: MaxMind's (``country.iso_code``) or
ip-location-db's (``country_code``) -- the provider reads both."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

__all__ = ["IN_GB", "IN_JP", "IN_US", "OUTSIDE", "write_country_database"]

IN_JP = "1.0.16.1"
IN_US = "8.8.8.8"
IN_GB = "81.2.69.142"
OUTSIDE = "9.9.9.9"
"""A global address that the test databases do not know."""

BLOCKS = {"JP": "1.0.16.0/24", "US": "8.8.8.0/24", "GB": "81.2.69.0/24"}


def write_country_database(path: Path, *, style: str = "maxmind") -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    for code, block in BLOCKS.items():
        record = (
            {"country_code": code}
            if style == "ip-location-db"
            else {"country": {"iso_code": code, "names": {"en": code}}}
        )
        writer.insert_network(IPSet([block]), record)
    writer.to_db_file(str(path))
    return path
