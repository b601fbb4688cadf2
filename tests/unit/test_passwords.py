"""Password hashes: made at the configured argon2id cost, verified at their
own, re-made at the next sign-in when the cost changed.

The rest of the suite hashes at OWASP's least cost (``TEST_PASSWORD_COST``);
the shipped cost is checked here."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import extract_parameters
from flask import Flask

from idp import accounts, passwords
from idp.config import PasswordSettings, Settings
from idp.db import db
from idp.errors import InvalidCredentialsError
from idp.models import User
from tests.support.harness import TEST_PASSWORD_COST, app_for, make_settings

LEAST = TEST_PASSWORD_COST
OTHER = PasswordSettings(hash_memory_kib=9216, hash_iterations=4, hash_parallelism=2)


def _cost_of(password_hash: str) -> PasswordSettings:
    made = extract_parameters(password_hash)
    return PasswordSettings(
        hash_memory_kib=made.memory_cost,
        hash_iterations=made.time_cost,
        hash_parallelism=made.parallelism,
    )


def test_the_shipped_cost_is_rfc_9106s_second_recommendation() -> None:
    made = passwords.hash_password("a long passphrase", PasswordSettings())

    assert made.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(made, "a long passphrase", PasswordSettings())
    assert not passwords.verify_password(made, "a long passphrasE", PasswordSettings())


def test_a_hash_verifies_at_its_own_cost_whatever_the_cost_is_now() -> None:
    made = passwords.hash_password("a long passphrase", LEAST)

    assert passwords.verify_password(made, "a long passphrase", OTHER)
    assert passwords.needs_rehash(made, OTHER)
    assert not passwords.needs_rehash(made, LEAST)


def test_an_unknown_account_is_checked_at_the_configured_cost() -> None:
    """The dummy hash an unknown user ID is verified against costs what a
    real hash does, so the answer's time does not tell them apart."""
    assert not passwords.verify_password(None, "a long passphrase", OTHER)

    assert _cost_of(passwords._dummy_hash(OTHER)) == OTHER
    assert _cost_of(passwords._dummy_hash(LEAST)) == LEAST


def _stored_hash(username: str) -> str:
    user = db.session.query(User).filter_by(username=username).one()
    assert user.password_hash is not None
    return user.password_hash


def test_a_sign_in_remakes_a_hash_made_at_another_cost(
    app: Flask, app_settings: Settings, tmp_path: Path
) -> None:
    accounts.create(username="hanako", email="hanako@example.com", password="a long passphrase")
    assert _cost_of(_stored_hash("hanako")) == LEAST
    raised = make_settings(
        tmp_path / "raised",
        database_url=app_settings.database.url,
        issuer=app_settings.server.issuer,
        password_cost=OTHER,
    )

    with app_for(raised):
        with pytest.raises(InvalidCredentialsError):
            accounts.authenticate("hanako", "a wrong passphrase")
        assert _cost_of(_stored_hash("hanako")) == LEAST  # only a right password re-makes it

        accounts.authenticate("hanako", "a long passphrase")
        db.session.commit()

        assert _cost_of(_stored_hash("hanako")) == OTHER
        assert accounts.authenticate("hanako", "a long passphrase").username == "hanako"
