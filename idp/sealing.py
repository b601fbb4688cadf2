"""Secrets the provider must read back, sealed at rest with a key that is
not in the database.

Every other secret here is kept as a digest.  A TOTP seed cannot be: codes
are computed from it, so whoever reads the ``totp_credentials`` table
could make every member's codes, and the second factor would fall with the
database.  So such a value is encrypted (AES-256-GCM) under the *data key*,
a file beside the signing keys (``keys.dir/data-key``: 32 random bytes,
mode 0600, made on first start as ``flask-secret`` is), and bound to what
it belongs to (associated data such as ``totp:<sub>``), so that someone who
can write the table cannot move one member's sealed seed into another's
row either.

Stored as ``sealed:v1:`` and the base64url of nonce and ciphertext.  A
value without that prefix was stored before sealing: it is read as it is,
and ``idp init`` seals it (``idp.otp.seal_stored_seeds``).  Losing the data
key loses the seeds (members turn TOTP on again; their recovery codes still
work), so ``keys.dir`` is backed up with them (docs/production.md)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from idp.errors import ConfigError, SealedValueError

__all__ = ["DATA_KEY_FILE", "PREFIX", "Sealer", "is_sealed", "load_data_key"]

DATA_KEY_FILE = "data-key"
PREFIX = "sealed:v1:"
_KEY_BYTES = 32
_NONCE_BYTES = 12


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Sealer:
    key: bytes = field(repr=False)

    def seal(self, value: str, *, context: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, value.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, stored: str, *, context: str) -> str:
        """The value; a value stored before sealing comes back as it is."""
        if not is_sealed(stored):
            return stored
        body = stored[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            opened = AESGCM(self.key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()
            )
            return opened.decode()
        except (InvalidTag, binascii.Error, ValueError) as e:
            raise SealedValueError("a sealed value could not be opened", detail=context) from e


def load_data_key(keys_dir: str | Path) -> bytes:
    """The data key in ``keys_dir``, made now if there is none.  Two
    processes starting at once agree on one: the key is written to a
    temporary file and linked into place only if no key is there yet."""
    path = Path(keys_dir) / DATA_KEY_FILE
    if not path.exists():
        try:
            _make(path)
        except OSError as e:
            raise ConfigError(
                f"{path}: cannot make the data key ({e.strerror}); run 'idp init' where "
                "keys.dir is writable, then share the directory with every node"
            ) from None
    try:
        key = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the data key ({e.strerror})") from None
    if len(key) != _KEY_BYTES:
        raise ConfigError(f"{path} is not a data key ({_KEY_BYTES} random bytes)")
    return key


def _make(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{DATA_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(_KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process made one first: theirs
            os.link(temporary, path)
    finally:
        temporary.unlink()
