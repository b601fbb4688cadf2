"""Accounts: a user ID is taken once, also by two requests at the same moment."""

from __future__ import annotations

from flask import Flask

from idp import accounts
from idp.errors import ConflictError
from idp.members import Member
from tests.support.race import in_app, race


def test_of_two_simultaneous_registrations_of_one_user_id_one_wins(app: Flask) -> None:
    for i in range(5):

        def register(email: str, name: str = f"hanako{i}") -> Member:
            return accounts.create(username=name, email=email, password="a long passphrase")

        outcomes = race(
            in_app(app, lambda i=i: register(f"a{i}@example.com")),
            in_app(app, lambda i=i: register(f"b{i}@example.com")),
        )

        assert sum(isinstance(o, Member) for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, ConflictError) for o in outcomes) == 1, outcomes
