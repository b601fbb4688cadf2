"""When a sign-in deserves a login notification: the rule alone, no I/O."""

from __future__ import annotations

import datetime as dt

from idp.alerts import notice_reasons

NOW = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)


def reasons(**kw: object) -> list[str]:
    given: dict[str, object] = {
        "device_seen": True,
        "country": "JP",
        "country_seen": True,
        "last_sign_in": NOW - dt.timedelta(days=1),
        "now": NOW,
        "absence_days": 30,
    }
    given.update(kw)
    return notice_reasons(**given)  # type: ignore[arg-type]


def test_a_known_device_and_country_seen_yesterday_needs_no_notice() -> None:
    assert reasons() == []


def test_the_first_sign_in_on_a_device_is_noticed() -> None:
    assert reasons(device_seen=False, last_sign_in=None, country_seen=False) == [
        "new_device",
        "new_country",
    ]


def test_a_new_country_is_noticed_and_an_unknown_one_is_not() -> None:
    assert reasons(country_seen=False) == ["new_country"]
    assert reasons(country=None, country_seen=False) == []


def test_a_sign_in_after_the_absence_is_noticed() -> None:
    assert reasons(last_sign_in=NOW - dt.timedelta(days=31)) == ["absence"]
    assert reasons(last_sign_in=NOW - dt.timedelta(days=29)) == []
