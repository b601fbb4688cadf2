"""An address's country from a MaxMind-format database, and its name in a language."""

from __future__ import annotations

from pathlib import Path

import pytest

from idp import geo
from tests.support.geodb import IN_GB, IN_JP, IN_US, OUTSIDE, write_country_database


@pytest.mark.parametrize("style", ["maxmind", "ip-location-db"])
def test_both_record_shapes_give_the_country(tmp_path: Path, style: str) -> None:
    database = str(write_country_database(tmp_path / f"{style}.mmdb", style=style))

    assert [geo.country_of(ip, database) for ip in (IN_JP, IN_US, IN_GB)] == ["JP", "US", "GB"]


def test_an_address_the_database_does_not_know_has_no_country(tmp_path: Path) -> None:
    database = str(write_country_database(tmp_path / "c.mmdb"))

    assert geo.country_of(OUTSIDE, database) is None


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "junk", ""])
def test_private_loopback_and_junk_addresses_have_no_country(tmp_path: Path, ip: str) -> None:
    database = str(write_country_database(tmp_path / "c.mmdb"))

    assert geo.country_of(ip, database) is None


def test_off_turns_look_ups_off() -> None:
    assert geo.country_of(IN_US, "off") is None


def test_the_bundled_database_is_used_when_none_is_named() -> None:
    if not geo.BUNDLED_DATABASE.is_file():
        pytest.fail("make test installs the bundled database (geoip/, npm ci)")

    assert geo.country_of("8.8.8.8", "") == "US"


def test_a_database_that_cannot_be_opened_stops_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")

    with pytest.raises(geo.ConfigError, match=r"^geoip\.database = "):
        geo.check(str(broken))


def test_country_names_come_in_the_reader_s_language() -> None:
    assert geo.country_name("JP") == "Japan"
    assert geo.country_name("jp", "ja") == "日本"
    assert geo.country_name("GB", "en-GB") == "United Kingdom"
    assert geo.country_name("XK", "xx-not-a-language") == "Kosovo"
    assert geo.country_name("ZZZ") == "ZZZ"
    assert geo.country_name(None) is None
