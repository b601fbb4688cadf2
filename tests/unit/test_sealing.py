"""Secrets sealed at rest: a TOTP seed is unreadable without the data key,
bound to its account, and the key is made once even by processes that
start together."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from idp.errors import ConfigError, SealedValueError
from idp.sealing import DATA_KEY_FILE, Sealer, is_sealed, load_data_key

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def sealer(tmp_path: Path) -> Sealer:
    return Sealer(load_data_key(tmp_path))


def test_a_sealed_seed_opens_only_for_its_account(sealer: Sealer) -> None:
    stored = sealer.seal(SEED, context="totp:a")

    assert is_sealed(stored)
    assert SEED not in stored
    assert len(stored) <= 200  # the column's width
    assert stored != sealer.seal(SEED, context="totp:a")  # a fresh nonce each time
    assert sealer.unseal(stored, context="totp:a") == SEED
    with pytest.raises(SealedValueError):
        sealer.unseal(stored, context="totp:b")  # moved into another member's row


@pytest.mark.parametrize(
    "alter",
    [
        lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),
        lambda s: s[:20],
        lambda s: s + "AAAA",
        lambda s: "sealed:v1:",
    ],
    ids=["flipped", "cut", "longer", "empty"],
)
def test_an_altered_seal_does_not_open(sealer: Sealer, alter: object) -> None:
    stored = alter(sealer.seal(SEED, context="totp:a"))  # type: ignore[operator]

    with pytest.raises(SealedValueError):
        sealer.unseal(stored, context="totp:a")


def test_another_data_key_opens_nothing(sealer: Sealer, tmp_path: Path) -> None:
    other = Sealer(load_data_key(tmp_path / "other"))

    with pytest.raises(SealedValueError):
        other.unseal(sealer.seal(SEED, context="totp:a"), context="totp:a")


def test_a_seed_stored_before_sealing_is_read_as_it_is(sealer: Sealer) -> None:
    assert not is_sealed(SEED)
    assert sealer.unseal(SEED, context="totp:a") == SEED


def test_the_data_key_is_made_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    first = load_data_key(tmp_path / "keys")
    path = tmp_path / "keys" / DATA_KEY_FILE

    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_data_key(tmp_path / "keys") == first
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [DATA_KEY_FILE]


def test_processes_starting_together_agree_on_one_data_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    start = threading.Barrier(16)

    def load() -> None:
        start.wait()
        keys.append(load_data_key(tmp_path))

    threads = [threading.Thread(target=load) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 16
    assert len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [DATA_KEY_FILE]


def test_a_file_that_is_no_data_key_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / DATA_KEY_FILE).write_bytes(b"short")

    with pytest.raises(ConfigError, match="is not a data key"):
        load_data_key(tmp_path)


def test_a_keys_directory_it_cannot_make_the_key_in_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    with pytest.raises(ConfigError, match="cannot make the data key"):
        load_data_key(tmp_path / "file" / "keys")
