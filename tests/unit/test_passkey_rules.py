"""Passkey assertions judged in the right order, and QR approvals used once under a race.

A software authenticator (``tests.support.authenticator``) plays the
phone: honest, forging, cloned, or naming another account."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest
from flask import Flask
from sqlalchemy import func, select

from idp import accounts, events, passkeys, qr, runtime, sessions
from idp.db import db
from idp.errors import PasskeyError, QrError, UsageError
from idp.members import Member
from idp.models import AuditEvent, Passkey
from tests.support.authenticator import SoftAuthenticator, b64url, unb64url
from tests.support.race import in_app, race


@dataclass
class Person:
    member: Member
    phone: SoftAuthenticator
    session_id: str


@pytest.fixture
def person(app: Flask) -> Person:
    settings = runtime.current().settings
    member = accounts.create(
        username="hanako", email="hanako@example.com", password="a long passphrase"
    )
    session = sessions.start(
        user_id=member.id,
        policy=settings.session,
        remember=False,
        amr=["pwd"],
        ip="192.0.2.1",
        user_agent="test",
    ).session
    phone = SoftAuthenticator(rp_id=settings.rp_id, origin=settings.allowed_origins[0])
    options = passkeys.registration_options(member, session_id=session.id)
    passkeys.register(member, phone.create(options), session_id=session.id)
    return Person(member=member, phone=phone, session_id=session.id)


def _kinds_without_user() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.kind).where(AuditEvent.user_id.is_(None))))


def test_an_honest_assertion_signs_the_account_in(person: Person) -> None:
    member, _ = passkeys.authenticate(person.phone.get(passkeys.authentication_options()))
    assert member.id == person.member.id


def test_a_forged_assertion_is_refused_without_naming_the_account(person: Person) -> None:
    passkeys.authenticate(person.phone.get(passkeys.authentication_options()))  # count 1
    forged = person.phone.get(passkeys.authentication_options(), forge_signature=True, sign_count=0)

    with pytest.raises(PasskeyError, match="could not be verified"):
        passkeys.authenticate(forged)

    kinds = [e.kind for e in events.list_for_user(person.member.id)]
    assert "passkey.sign_count_regression" not in kinds
    assert "passkey.refused" not in kinds
    assert "passkey.refused" in _kinds_without_user()


def test_a_cloned_authenticator_is_refused_and_recorded_against_its_account(
    person: Person,
) -> None:
    passkeys.authenticate(person.phone.get(passkeys.authentication_options()))  # count 1
    clone = person.phone.get(passkeys.authentication_options(), sign_count=1)

    with pytest.raises(PasskeyError, match="looks copied"):
        passkeys.authenticate(clone)

    kinds = [e.kind for e in events.list_for_user(person.member.id)]
    assert "passkey.sign_count_regression" in kinds


@pytest.mark.parametrize("count", [2**31, 2**32 - 1])
def test_a_sign_count_anywhere_in_the_unsigned_32_bit_range_is_kept(
    person: Person, count: int
) -> None:
    """WebAuthn's counter is unsigned 32-bit; PostgreSQL's ``integer`` is signed."""
    member, _ = passkeys.authenticate(
        person.phone.get(passkeys.authentication_options(), sign_count=count)
    )
    db.session.commit()
    db.session.expire_all()

    assert member.id == person.member.id
    assert db.session.scalar(select(Passkey.sign_count)) == count


def test_an_assertion_naming_another_account_is_refused(person: Person) -> None:
    other = person.phone.get(passkeys.authentication_options(), user_handle=uuid.uuid4().bytes)

    with pytest.raises(PasskeyError):
        passkeys.authenticate(other)


def test_a_refused_assertion_leaves_its_challenge_spent(person: Person) -> None:
    options = passkeys.authentication_options()
    with pytest.raises(PasskeyError):
        passkeys.authenticate(person.phone.get(options, forge_signature=True))

    with pytest.raises(PasskeyError, match="already used"):
        passkeys.authenticate(person.phone.get(options))


def _new_answer(person: Person, client_data_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Another authenticator's answer to registration options of this person."""
    settings = runtime.current().settings
    options = passkeys.registration_options(person.member, session_id=person.session_id)
    phone = SoftAuthenticator(
        rp_id=settings.rp_id,
        origin=settings.allowed_origins[0],
        client_data_extra=client_data_extra or {},
    )
    return phone.create(options)


def _with_public_key(answer: dict[str, Any], key: object) -> dict[str, Any]:
    """The answer with ``key`` CBOR-encoded in place of its credential public key."""
    response = answer["response"]
    attestation = cbor2.loads(unb64url(response["attestationObject"]))
    auth_data = attestation["authData"]
    # rpIdHash 32, flags 1, signCount 4, AAGUID 16, then the credential ID's length.
    id_length = int.from_bytes(auth_data[53:55], "big")
    attestation["authData"] = auth_data[: 55 + id_length] + cbor2.dumps(key)
    response["attestationObject"] = b64url(cbor2.dumps(attestation))
    return answer


@pytest.mark.parametrize(
    "key",
    [
        "a text string",
        [1, 2, 3],
        {3: -7},
        {1: 0, 3: -7},
        {1: 2, 3: -7, -1: 99},
        {1: 2, 3: -65535},
        {1: 2, 3: -7, -1: 1, -2: bytes(32), -3: bytes(32)},
        {1: 3, 3: -257, -1: b"\x01", -2: b"\x03"},
    ],
    ids=[
        "text",
        "list",
        "no-kty",
        "zero-kty",
        "unknown-curve",
        "unknown-algorithm",
        "point-off-the-curve",
        "rsa-modulus-of-one",
    ],
)
def test_a_new_passkey_whose_key_cannot_be_read_is_refused(person: Person, key: object) -> None:
    """py_webauthn raises more than the errors its entry points name (an
    IndexError for a key that is no map): each is a refusal, never a 500."""
    answer = _with_public_key(_new_answer(person), key)

    with pytest.raises(PasskeyError, match="could not be registered"):
        passkeys.register(person.member, answer, session_id=person.session_id)
    assert db.session.scalar(select(func.count()).select_from(Passkey)) == 1


@pytest.mark.parametrize(
    ("reported", "kept"),
    [
        (7, ()),
        ("usb", ()),
        ({"usb": 1}, ()),
        (["usb", 5, "usb", "pigeon", "internal"], ("usb", "internal")),
    ],
)
def test_a_new_passkey_keeps_only_the_transports_it_names_known(
    person: Person, reported: object, kept: tuple[str, ...]
) -> None:
    answer = _new_answer(person)
    answer["response"]["transports"] = reported

    info = passkeys.register(person.member, answer, session_id=person.session_id)

    assert info.transports == kept


_FRAMED = [
    {"crossOrigin": True},
    {"crossOrigin": True, "topOrigin": "https://elsewhere.example"},
    {"topOrigin": "https://elsewhere.example"},
]


@pytest.mark.parametrize("framed", _FRAMED, ids=["cross-origin", "both", "top-origin"])
def test_a_ceremony_run_in_a_foreign_frame_is_refused(
    person: Person, framed: dict[str, object]
) -> None:
    """Our pages are never framed (``frame-ancestors 'none'``): an answer
    whose client data says it ran under another origin, though signed by
    the right key for the right origin, is not theirs."""
    person.phone.client_data_extra = framed
    with pytest.raises(PasskeyError, match="could not be verified"):
        passkeys.authenticate(person.phone.get(passkeys.authentication_options()))

    answer = _new_answer(person, client_data_extra=framed)
    with pytest.raises(PasskeyError, match="could not be registered"):
        passkeys.register(person.member, answer, session_id=person.session_id)
    assert db.session.scalar(select(func.count()).select_from(Passkey)) == 1


def test_a_ceremony_that_says_it_was_not_framed_signs_in(person: Person) -> None:
    person.phone.client_data_extra = {"crossOrigin": False}
    member, _ = passkeys.authenticate(person.phone.get(passkeys.authentication_options()))
    assert member.id == person.member.id


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Phone\x1b[31m red", "Phone[31m red"),
        ("  Work\tlaptop\n ", "Work laptop"),
        ("\x00\x07", ""),
        ("x" * 80, "x" * 64),
    ],
)
def test_a_passkey_name_keeps_no_control_character(person: Person, given: str, kept: str) -> None:
    """A passkey's name reaches the audit log (and an admin's terminal)."""
    (passkey,) = passkeys.list_for_user(person.member.id)
    if kept:
        assert passkeys.rename(person.member.id, passkey.id, given).name == kept
    else:
        with pytest.raises(UsageError):
            passkeys.rename(person.member.id, passkey.id, given)


def _picked(person: Person) -> tuple[qr.Started, dict[str, object]]:
    started = qr.start(ip="203.0.113.9", user_agent="Mozilla/5.0", return_to="/account")
    options = qr.pick(started.token, started.match_code)
    return started, person.phone.get(options)


def test_of_two_simultaneous_approvals_of_one_qr_request_one_wins(
    app: Flask, person: Person
) -> None:
    for _ in range(5):
        started, answer = _picked(person)
        db.session.commit()

        outcomes = race(
            in_app(app, lambda s=started, a=answer: qr.approve(s.token, a)),
            in_app(app, lambda s=started, a=answer: qr.approve(s.token, a)),
        )

        winners = [o for o in outcomes if isinstance(o, Member)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, (QrError, PasskeyError)) for o in outcomes if o not in winners)


def test_of_two_simultaneous_collections_one_browser_is_signed_in(
    app: Flask, person: Person
) -> None:
    for _ in range(5):
        started, answer = _picked(person)
        qr.approve(started.token, answer)

        outcomes = race(
            in_app(app, lambda s=started: qr.collect(s.public_id, s.binding)),
            in_app(app, lambda s=started: qr.collect(s.public_id, s.binding)),
        )

        collected = [o for o in outcomes if isinstance(o, tuple)]
        assert len(collected) == 1, outcomes
        assert collected[0][0] == person.member.id
        assert any(isinstance(o, QrError) for o in outcomes)
