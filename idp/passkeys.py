"""Passkeys (WebAuthn) with py_webauthn: register, sign in, list, rename, delete.

* Registration asks for a discoverable credential (``residentKey:
  required``) with user verification, so that sign-in needs no user ID.
* Every ceremony answers a challenge of ``idp.webauthn_challenges``:
  random, stored hashed, single use, short-lived.
* The relying-party ID and the allowed origins come from the settings
  (``passkeys.rp_id``, ``passkeys.origins``), never from the request.
* The signature is verified before anything is said about the account: an
  assertion that does not verify is recorded without naming anyone, and
  only a verified one can count as a cloned authenticator (a sign count
  that goes backwards) or be refused against its account.  The
  ``userHandle`` it carries must be its account's.
* A ceremony that says it ran in a frame under another origin
  (``crossOrigin``, ``topOrigin``) is refused: our pages are never framed.
* A refusal leaves its challenge spent and is recorded (``idp.db.refuse``).

py_webauthn's exceptions become :class:`PasskeyError` here, the one place
that wraps the library (as warehouse's ``utils/webauthn.py`` does).
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

import webauthn
from cryptography.exceptions import UnsupportedAlgorithm
from sqlalchemy import func, select
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers import exceptions as webauthn_errors
from webauthn.helpers.decode_credential_public_key import decode_credential_public_key
from webauthn.helpers.decoded_public_key_to_cryptography import (
    decoded_public_key_to_cryptography,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp import clock, events, members, runtime, webauthn_challenges
from idp.db import db, refuse, service
from idp.errors import NotFoundError, PasskeyError, UsageError
from idp.members import Member
from idp.models import Passkey

__all__ = [
    "AMR",
    "PasskeyInfo",
    "authenticate",
    "authentication_options",
    "delete",
    "list_for_user",
    "register",
    "registration_options",
    "rename",
]

AMR = ["hwk", "user"]
"""A passkey proves possession of a key (hwk) and user verification (user)."""
TIMEOUT_MS = 60_000
MAX_PASSKEYS = 20

_LIBRARY_ERRORS = (
    # Every error py_webauthn defines (a key without ``kty``, an unknown
    # algorithm or curve, a bad certificate chain...), and what its parsers
    # raise on structures of the wrong shape (a COSE key that is a string
    # or a list, a number past its size) or cryptography on a key it cannot use.
    webauthn_errors.WebAuthnException,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    ArithmeticError,
    UnsupportedAlgorithm,
)
"""What py_webauthn (and malformed input it parses) raises: our PasskeyError."""


@dataclass(frozen=True, slots=True)
class PasskeyInfo:
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    backed_up: bool
    transports: tuple[str, ...]


def _info(row: Passkey) -> PasskeyInfo:
    return PasskeyInfo(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        backed_up=row.backed_up,
        transports=tuple(row.transports),
    )


def _refuse(
    error: PasskeyError, challenge_id: int, event: str | None = None, **fields: Any
) -> NoReturn:
    """Refuse a ceremony: its challenge stays spent, and ``event`` is recorded."""

    def record() -> None:
        webauthn_challenges.mark_spent(challenge_id)
        if event is not None:
            events.record(event, **fields)

    refuse(error, record=record)


def _rp() -> tuple[str, list[str]]:
    settings = runtime.current().settings
    return settings.rp_id, list(settings.allowed_origins)


@service
def registration_options(member: Member, *, session_id: str) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``; stores the challenge."""
    rp_id, _ = _rp()
    existing = db.session.scalars(
        select(Passkey.credential_id).where(Passkey.user_id == member.id)
    ).all()
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name="Account",
        user_id=uuid.UUID(member.id).bytes,
        user_name=member.username,
        user_display_name=member.name or member.username,
        challenge=webauthn_challenges.issue("register", user_id=member.id, session_id=session_id),
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in existing],
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


@service
def register(
    member: Member, credential: dict[str, Any], *, session_id: str, name: str = ""
) -> PasskeyInfo:
    """Verify a new passkey and store it.  Raises PasskeyError."""
    rp_id, origins = _rp()
    challenge, row = webauthn_challenges.spend(credential, "register")
    if row.user_id != member.id or row.session_id != session_id:
        _refuse(PasskeyError("This passkey request belongs to another sign-in. Try again."), row.id)
    try:
        if _ran_in_a_foreign_frame(credential):
            raise webauthn_errors.InvalidRegistrationResponse("ran in a cross-origin frame")
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            require_user_verification=True,
        )
        # A "none" attestation proves nothing about the key: one that is no
        # key (a point off its curve) would be stored and fail every sign-in.
        decoded_public_key_to_cryptography(
            decode_credential_public_key(verified.credential_public_key)
        )
    except _LIBRARY_ERRORS as e:
        _refuse(PasskeyError("The passkey could not be registered.", detail=str(e)), row.id)
    count = db.session.scalar(select(func.count()).where(Passkey.user_id == member.id)) or 0
    if count >= MAX_PASSKEYS:
        _refuse(PasskeyError("You already have 20 passkeys. Delete one first."), row.id)
    taken = db.session.scalar(
        select(Passkey.id).where(Passkey.credential_id == verified.credential_id)
    )
    if taken is not None:
        _refuse(PasskeyError("This passkey is already registered."), row.id)
    now = clock.now()
    passkey = Passkey(
        user_id=member.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=_transports(credential),
        aaguid=str(verified.aaguid),
        backup_eligible=verified.credential_device_type == "multi_device",
        backed_up=verified.credential_backed_up,
        name=_clean_name(name) or f"Passkey {count + 1}",
        created_at=now,
    )
    db.session.add(passkey)
    events.record("passkey.registered", user_id=member.id, session_id=session_id, name=passkey.name)
    db.session.flush()
    return _info(passkey)


@service
def authentication_options(
    *, purpose: str = "signin", qr_request_id: int | None = None
) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()`` asking for any discoverable
    credential of this site (no user ID typed); stores the challenge."""
    rp_id, _ = _rp()
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        challenge=webauthn_challenges.issue(purpose, qr_request_id=qr_request_id),
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))
    return result


@service
def authenticate(
    credential: dict[str, Any], *, purpose: str = "signin", ip: str | None = None
) -> tuple[Member, int | None]:
    """Verify a passkey answer; returns the member (and the QR request the
    challenge was made for).  Raises PasskeyError with a message a person
    can read, after recording why (the request's other work is dropped)."""
    rp_id, origins = _rp()
    challenge, row = webauthn_challenges.spend(credential, purpose)
    raw_id = credential.get("rawId") or credential.get("id") or ""
    try:
        credential_id = base64url_to_bytes(str(raw_id))
    except ValueError:
        credential_id = b""
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
    if passkey is None:
        _refuse(
            PasskeyError("This passkey is not registered with any account."),
            row.id,
            "passkey.unknown",
            ip=ip,
        )
    try:
        # The sign count is ours to judge, after the signature: the library
        # would compare it first, letting a forged answer pass for a clone.
        if _ran_in_a_foreign_frame(credential):
            raise webauthn_errors.InvalidAuthenticationResponse("ran in a cross-origin frame")
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _LIBRARY_ERRORS as e:
        _refuse(
            PasskeyError("The passkey could not be verified.", detail=str(e)),
            row.id,
            "passkey.refused",
            ip=ip,
            reason="not verified",
        )
    if not _user_handle_matches(credential, passkey.user_id):
        _refuse(
            PasskeyError("The passkey could not be verified.", detail="userHandle mismatch"),
            row.id,
            "passkey.refused",
            user_id=passkey.user_id,
            ip=ip,
            passkey_id=passkey.id,
            reason="user handle does not match",
        )
    stored, presented = passkey.sign_count, verified.new_sign_count
    if (stored > 0 or presented > 0) and presented <= stored:
        _refuse(
            PasskeyError(
                "This passkey looks copied and was refused. Sign in with your password.",
                detail=f"sign count {presented} after {stored}",
            ),
            row.id,
            "passkey.sign_count_regression",
            user_id=passkey.user_id,
            ip=ip,
            passkey_id=passkey.id,
        )
    member = members.get(passkey.user_id)
    if member.disabled:
        _refuse(
            PasskeyError("This account is locked. Contact support to unlock it."),
            row.id,
            "signin.refused",
            user_id=member.id,
            ip=ip,
            method="passkey",
            reason="account disabled",
        )
    passkey.sign_count = presented
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = clock.now()
    events.record("passkey.used", user_id=member.id, ip=ip, passkey_id=passkey.id, purpose=purpose)
    return member, row.qr_request_id


def _ran_in_a_foreign_frame(credential: dict[str, Any]) -> bool:
    """Whether the browser says the ceremony ran in a frame whose ancestors
    are of another origin (WebAuthn Level 3 §5.8.1: ``crossOrigin`` true,
    ``topOrigin`` given).  py_webauthn does not look; the relying party
    must decide whether it expects to be framed (§7.1 step 10), and our
    pages never are (``frame-ancestors 'none'``).  Client data that cannot
    be read is left to the library, which refuses it."""
    try:
        encoded = credential["response"]["clientDataJSON"]
        client_data = json.loads(base64url_to_bytes(str(encoded)))
    except (LookupError, TypeError, ValueError):
        return False
    if not isinstance(client_data, dict):
        return False
    return client_data.get("crossOrigin") is True or "topOrigin" in client_data


def _transports(credential: dict[str, Any]) -> list[str]:
    """The transports a browser reported for a new passkey (a hint for the
    next sign-in): the known names in its list, anything else dropped."""
    reported = credential["response"].get("transports")
    if not isinstance(reported, list):
        return []
    valid = {t.value for t in AuthenticatorTransport}
    return list(dict.fromkeys(t for t in reported if isinstance(t, str) and t in valid))


def _user_handle_matches(credential: dict[str, Any], user_id: str) -> bool:
    """A discoverable credential names its account (``userHandle``, the
    account's UUID bytes, as registered); when present it must be this one."""
    handle = (credential.get("response") or {}).get("userHandle")
    if not handle:
        return True
    try:
        return base64url_to_bytes(str(handle)) == uuid.UUID(user_id).bytes
    except (ValueError, TypeError):
        return False


def list_for_user(user_id: str) -> list[PasskeyInfo]:
    rows = db.session.scalars(
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at)
    )
    return [_info(r) for r in rows]


def _clean_name(name: str) -> str:
    """A passkey's label: whitespace runs made one space, control
    characters dropped (it reaches the audit log and an admin's terminal),
    at most 64 characters."""
    printable = "".join(c for c in name if unicodedata.category(c) != "Cc" or c.isspace())
    return " ".join(printable.split())[:64]


def _own(user_id: str, passkey_id: int) -> Passkey:
    row = db.session.get(Passkey, passkey_id)
    if row is None or row.user_id != user_id:
        raise NotFoundError("no such passkey")
    return row


@service
def rename(user_id: str, passkey_id: int, name: str) -> PasskeyInfo:
    cleaned = _clean_name(name)
    if not cleaned:
        raise UsageError("A passkey needs a name.")
    row = _own(user_id, passkey_id)
    row.name = cleaned
    events.record("passkey.renamed", user_id=user_id, passkey_id=passkey_id)
    return _info(row)


@service
def delete(user_id: str, passkey_id: int) -> None:
    row = _own(user_id, passkey_id)
    db.session.delete(row)
    events.record("passkey.deleted", user_id=user_id, passkey_id=passkey_id, name=row.name)
