"""TOTP seeds are stored sealed (``idp.sealing``): the database alone gives
no one a member's codes, a sealed seed moved into another member's row
gives no codes there, and seeds stored before sealing keep working until
``idp init`` seals them."""

from __future__ import annotations

import datetime as dt

import pyotp
import pytest
from flask import Flask
from sqlalchemy import update

from idp import accounts, clock, otp
from idp.db import db
from idp.members import Member
from idp.models import TotpCredential
from idp.sealing import is_sealed


def _member(name: str) -> Member:
    return accounts.create(username=name, email=f"{name}@example.com", password="a long passphrase")


def _turned_on(member: Member) -> pyotp.TOTP:
    setup = otp.begin_setup(member.id, username=member.username)
    totp = pyotp.TOTP(setup.secret)
    otp.confirm_setup(member.id, totp.at(clock.now()))
    return totp


def _later_code(totp: pyotp.TOTP) -> str:
    """A code of the next step: accepted (one step of drift) after this one."""
    return totp.at(clock.now() + dt.timedelta(seconds=otp.STEP_SECONDS))


def _stored(member: Member) -> str:
    db.session.expire_all()
    row = db.session.get(TotpCredential, member.id)
    assert row is not None
    return row.secret


def test_a_new_seed_is_stored_sealed_and_its_codes_work(app: Flask) -> None:
    member = _member("hanako")
    setup = otp.begin_setup(member.id, username=member.username)

    assert is_sealed(_stored(member))
    assert setup.secret not in _stored(member)

    totp = pyotp.TOTP(setup.secret)
    assert len(otp.confirm_setup(member.id, totp.at(clock.now()))) == otp.RECOVERY_CODES
    assert otp.verify(member.id, _later_code(totp)) == "totp"


def test_a_sealed_seed_moved_into_another_members_row_gives_no_codes(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    mallory, hanako = _member("mallory"), _member("hanako")
    mallorys = _turned_on(mallory)
    _turned_on(hanako)
    db.session.execute(
        update(TotpCredential)
        .where(TotpCredential.user_id == hanako.id)
        .values(secret=_stored(mallory), last_step=None)
    )
    db.session.commit()

    assert otp.verify(hanako.id, _later_code(mallorys)) is None
    assert "cannot be unsealed" in caplog.text


def test_a_seed_stored_before_sealing_works_and_init_seals_it(app: Flask) -> None:
    member = _member("hanako")
    totp = _turned_on(member)
    db.session.execute(
        update(TotpCredential)
        .where(TotpCredential.user_id == member.id)
        .values(secret=totp.secret, last_step=None)
    )
    db.session.commit()

    assert otp.verify(member.id, totp.at(clock.now())) == "totp"
    assert otp.seal_stored_seeds() == 1
    db.session.commit()

    assert is_sealed(_stored(member))
    assert otp.verify(member.id, _later_code(totp)) == "totp"
    assert otp.seal_stored_seeds() == 0
