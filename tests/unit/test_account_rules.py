"""The rules of an account's fields, the same on the pages and at the command line."""

from __future__ import annotations

import datetime as dt

import pytest

from idp.account_rules import EARLIEST_BIRTHDATE, check_new, clean_name
from idp.errors import UsageError

FIELDS = {
    "username": "hanako",
    "email": "hanako@example.com",
    "password": "a long passphrase",
    "name": "Hanako",
    "gender": None,
}


def test_a_name_keeps_its_words_one_space_apart() -> None:
    assert clean_name(" Hanako \t\n Yamada\u3000") == "Hanako Yamada"
    assert clean_name("\u5c71\u7530\u200d\u82b1\u5b50") == "\u5c71\u7530\u200d\u82b1\u5b50"


@pytest.mark.parametrize("control", ["\x1b", "\x7f", "\x00", "\x85\x07", "\x9b"])
def test_a_name_with_a_control_character_is_refused(control: str) -> None:
    with pytest.raises(UsageError, match="control characters"):
        clean_name(f"Hanako{control}[2J")


@pytest.mark.parametrize(
    ("birthdate", "refused"),
    [
        (dt.date(1, 1, 1), "1900-01-01 or later"),
        (EARLIEST_BIRTHDATE - dt.timedelta(days=1), "1900-01-01 or later"),
        (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2), "not be in the future"),
    ],
)
def test_a_birth_date_out_of_range_is_refused(birthdate: dt.date, refused: str) -> None:
    with pytest.raises(UsageError, match=refused):
        check_new(**FIELDS, birthdate=birthdate)


def test_the_earliest_birth_date_is_taken() -> None:
    assert check_new(**FIELDS, birthdate=EARLIEST_BIRTHDATE) == (
        "hanako",
        "hanako@example.com",
        "Hanako",
    )
