"""Signing keys: creation, rotation, retention in the JWKS, signing and verifying."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from idp import clock, keys
from idp.errors import InvalidTokenError
from idp.keys import SKEW_SECONDS, KeyRing

MAX_TOKEN_TTL_SECONDS = 3600
RETENTION_SECONDS = MAX_TOKEN_TTL_SECONDS + SKEW_SECONDS
START = dt.datetime(2025, 1, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def frozen_clock() -> Iterator[dt.datetime]:
    clock.freeze(START)
    yield START
    clock.unfreeze()


class MonotonicClock:
    """time.monotonic, which KeyRing uses to throttle its manifest re-check, moved on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real = time.monotonic
        monkeypatch.setattr(time, "monotonic", lambda: real() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> MonotonicClock:
    return MonotonicClock(monkeypatch)


def key_ring(directory: Path, algorithm: str = "RS256") -> KeyRing:
    """A KeyRing as a process would build it; a new one is a new process."""
    return KeyRing(directory, algorithm=algorithm, max_token_ttl_seconds=MAX_TOKEN_TTL_SECONDS)


def published_kids(ring: KeyRing) -> set[str]:
    return {key["kid"] for key in json.loads(ring.jwks_bytes())["keys"]}


def active_kid(ring: KeyRing) -> str:
    (active,) = [info.kid for info in ring.list() if info.active]
    return active


def test_ensure_creates_one_rs256_key_and_reports_it(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")

    created = ring.ensure()

    assert created is True
    assert [(info.alg, info.active) for info in ring.list()] == [("RS256", True)]


def test_ensure_writes_the_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")

    ring.ensure()

    pem = tmp_path / "keys" / f"{active_kid(ring)}.pem"
    assert stat.S_IMODE(os.stat(pem).st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ensure_on_a_directory_with_a_key_does_nothing(tmp_path: Path) -> None:
    key_ring(tmp_path / "keys").ensure()
    ring = key_ring(tmp_path / "keys")

    created = ring.ensure()

    assert created is False
    assert len(ring.list()) == 1


def test_signed_header_names_the_kid_and_alg(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()

    header, claims = ring.verify(ring.sign({"sub": "alice"}))

    assert header == {"alg": "RS256", "kid": active_kid(ring), "typ": "JWT"}
    assert claims == {"sub": "alice"}


def test_jwks_publishes_public_keys_only(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()

    (key,) = json.loads(ring.jwks_bytes())["keys"]

    assert key["kid"] == active_kid(ring)
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert {"d", "p", "q", "dp", "dq", "qi"} & set(key) == set()


def test_token_signed_before_rotation_still_verifies_after_it(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    token = ring.sign({"sub": "alice"})

    ring.rotate()

    _, claims = ring.verify(token)
    assert claims == {"sub": "alice"}


def test_rotation_publishes_old_and_new_key(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    old = active_kid(ring)

    new = ring.rotate().kid

    assert published_kids(ring) == {old, new}
    assert active_kid(ring) == new


def test_after_rotation_tokens_are_signed_with_the_new_key(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()

    new = ring.rotate().kid

    header, _ = ring.verify(ring.sign({"sub": "alice"}))
    assert header["kid"] == new


def test_retired_key_is_still_published_just_before_its_retention_ends(
    tmp_path: Path, frozen_clock: dt.datetime
) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    old = active_kid(ring)
    ring.rotate()

    clock.advance(seconds=RETENTION_SECONDS - 1)

    assert old in published_kids(key_ring(tmp_path / "keys"))


def test_retired_key_leaves_the_jwks_of_a_running_process_after_its_retention(
    tmp_path: Path, frozen_clock: dt.datetime, monotonic: MonotonicClock
) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    old = active_kid(ring)
    new = ring.rotate().kid
    assert published_kids(ring) == {old, new}

    clock.advance(seconds=RETENTION_SECONDS)
    monotonic.advance(seconds=2)

    assert published_kids(ring) == {new}


def test_token_of_a_retired_key_stops_verifying_in_a_running_process_after_retention(
    tmp_path: Path, frozen_clock: dt.datetime, monotonic: MonotonicClock
) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    token = ring.sign({"sub": "alice"})
    ring.rotate()
    ring.verify(token)

    clock.advance(seconds=RETENTION_SECONDS)
    monotonic.advance(seconds=2)

    with pytest.raises(InvalidTokenError):
        ring.verify(token)


def test_retired_key_is_not_published_by_a_process_started_after_its_retention(
    tmp_path: Path, frozen_clock: dt.datetime
) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    token = ring.sign({"sub": "alice"})
    new = ring.rotate().kid

    clock.advance(seconds=RETENTION_SECONDS)
    restarted = key_ring(tmp_path / "keys")

    assert published_kids(restarted) == {new}
    with pytest.raises(InvalidTokenError):
        restarted.verify(token)


def test_es256_keys_sign_and_verify(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys", algorithm="ES256")
    ring.ensure()

    header, claims = ring.verify(ring.sign({"sub": "alice"}))

    assert header["alg"] == "ES256"
    assert claims == {"sub": "alice"}
    (key,) = json.loads(ring.jwks_bytes())["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")


def test_rotation_to_es256_keeps_rs256_tokens_valid(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    token = ring.sign({"sub": "alice"})

    ring.rotate("ES256")

    assert ring.verify(token)[0]["alg"] == "RS256"
    assert ring.verify(ring.sign({"sub": "bob"}))[0]["alg"] == "ES256"


def test_tampered_token_raises_invalid_token(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    header, _, signature = ring.sign({"sub": "alice"}).split(".")
    forged = base64.urlsafe_b64encode(b'{"sub":"mallory"}').rstrip(b"=").decode()

    with pytest.raises(InvalidTokenError):
        ring.verify(f"{header}.{forged}.{signature}")


def test_token_signed_by_a_foreign_key_raises_invalid_token(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    stranger = key_ring(tmp_path / "other")
    stranger.ensure()

    with pytest.raises(InvalidTokenError):
        ring.verify(stranger.sign({"sub": "alice"}))


def test_verify_with_typ_refuses_a_token_of_another_typ(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    id_token = ring.sign({"sub": "alice"}, typ="JWT")

    with pytest.raises(InvalidTokenError):
        ring.verify(id_token, typ="at+jwt")


def test_verify_with_typ_accepts_a_token_of_that_typ(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    access_token = ring.sign({"sub": "alice"}, typ="at+jwt")

    header, _ = ring.verify(access_token, typ="at+jwt")

    assert header["typ"] == "at+jwt"


def test_another_process_on_the_same_dir_sees_a_rotation(tmp_path: Path) -> None:
    cli = key_ring(tmp_path / "keys")
    cli.ensure()
    token = cli.sign({"sub": "alice"})

    new = cli.rotate().kid
    server = key_ring(tmp_path / "keys")

    assert active_kid(server) == new
    assert server.verify(server.sign({"sub": "bob"}))[0]["kid"] == new
    assert server.verify(token)[1] == {"sub": "alice"}


def test_running_process_picks_up_a_rotation_once_its_recheck_is_due(
    tmp_path: Path, monotonic: MonotonicClock
) -> None:
    key_ring(tmp_path / "keys").ensure()
    server = key_ring(tmp_path / "keys")
    old = active_kid(server)

    new = key_ring(tmp_path / "keys").rotate().kid
    monotonic.advance(seconds=2)

    assert published_kids(server) == {old, new}
    assert server.verify(server.sign({"sub": "alice"}))[0]["kid"] == new


def test_a_remembered_token_is_still_checked_for_its_typ(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    access_token = ring.sign({"sub": "alice"}, typ="at+jwt")
    ring.verify(access_token, typ="at+jwt")

    with pytest.raises(InvalidTokenError):
        ring.verify(access_token, typ="JWT")


def test_the_claims_of_a_remembered_token_cannot_be_changed_by_a_caller(tmp_path: Path) -> None:
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    token = ring.sign({"sub": "alice"})
    _, claims = ring.verify(token)
    claims["sub"] = "mallory"

    assert ring.verify(token)[1]["sub"] == "alice"


def test_the_memory_of_verified_tokens_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "VERIFIED_TOKENS", 3)
    ring = key_ring(tmp_path / "keys")
    ring.ensure()
    signed = [ring.sign({"sub": f"member-{n}"}) for n in range(10)]
    for token in signed:
        ring.verify(token)

    assert len(ring._current().verified) <= 3
    assert [ring.verify(token)[1]["sub"] for token in signed] == [f"member-{n}" for n in range(10)]
