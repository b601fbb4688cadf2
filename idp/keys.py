"""Signing keys: create, load once, rotate, publish.

Keys live in ``keys.dir`` as one PEM file each (mode 0600) and a
``manifest.json`` naming the active one.  A process parses them once and
keeps the parsed keys and the JWKS bytes; it re-reads only when the
manifest's mtime changes (checked at most once a second), which is how a
running server learns of ``idp keys rotate`` without a restart.

Rotation never breaks a live token: the retired key stays in the JWKS until
every token it could have signed has expired (the longest token life plus a
clock-skew margin), then drops out of the published set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from idp import clock
from idp.config import Settings
from idp.errors import ConfigError, InvalidTokenError

__all__ = ["SKEW_SECONDS", "KeyInfo", "KeyRing", "keyring_for"]

SKEW_SECONDS = 300
"""Clock skew allowed to relying parties, added to every retention window."""

_MANIFEST = "manifest.json"

VERIFIED_TOKENS = 4096
"""How many tokens that passed the signature check are remembered (some ten
megabytes in all): the access tokens in use at any one time on a busy node."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    alg: str
    created_at: dt.datetime
    retired_at: dt.datetime | None
    published_until: dt.datetime | None
    """None while active; afterwards the moment it leaves the JWKS."""

    @property
    def active(self) -> bool:
        return self.retired_at is None


@dataclass(frozen=True, slots=True)
class _Loaded:
    version: tuple[int, int]
    """(inode, mtime) of the manifest: each rotation replaces the file."""
    next_change: dt.datetime | None
    """When a retired key leaves the published set: reload then, too."""
    infos: tuple[KeyInfo, ...]
    active: RSAKey | ECKey
    active_info: KeyInfo
    verify_set: KeySet
    jwks_bytes: bytes
    verified: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    """Tokens whose signature these keys accepted, with their header and
    claims: a pure function of the two, so it needs no expiry of its own and
    goes with the keys when they change (see :meth:`KeyRing.verify`)."""


class KeyRing:
    """The signing keys of one ``keys.dir``, parsed once per process."""

    def __init__(
        self, directory: str | Path, *, algorithm: str, max_token_ttl_seconds: int
    ) -> None:
        self.directory = Path(directory)
        self.algorithm = algorithm
        self.retention = dt.timedelta(seconds=max_token_ttl_seconds + SKEW_SECONDS)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._checked_at = 0.0

    # --- creating and rotating -------------------------------------------------

    def ensure(self) -> bool:
        """Create the first key if there is none.  Returns True if it did."""
        with self._lock:
            if (self.directory / _MANIFEST).exists():
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            self._add_key(self.algorithm, entries=[])
            return True

    def rotate(self, algorithm: str | None = None) -> KeyInfo:
        """Make a new key active; the old one is retired but still published."""
        with self._lock:
            entries = self._read_manifest()
            now = clock.now()
            for entry in entries:
                if entry.get("retired_at") is None:
                    entry["retired_at"] = now.isoformat()
            info = self._add_key(algorithm or self.algorithm, entries=entries)
            self._loaded = None
            return info

    def _add_key(self, alg: str, *, entries: list[dict[str, Any]]) -> KeyInfo:
        if alg == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ConfigError(f"keys.algorithm = {alg!r}: expected RS256 or ES256")
        kid = secrets.token_urlsafe(12)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        now = clock.now()
        entries.append({"kid": kid, "alg": alg, "created_at": now.isoformat(), "retired_at": None})
        self._write_manifest(entries)
        return KeyInfo(kid=kid, alg=alg, created_at=now, retired_at=None, published_until=None)

    def _read_manifest(self) -> list[dict[str, Any]]:
        path = self.directory / _MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no signing keys in {self.directory}: run 'idp init' first"
            ) from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} cannot be read: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise ConfigError(f"{path} is not a key manifest")
        return list(data["keys"])

    def _write_manifest(self, entries: list[dict[str, Any]]) -> None:
        path = self.directory / _MANIFEST
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": entries}, fh, indent=2)
        os.replace(tmp, path)

    # --- loading ---------------------------------------------------------------

    def _current(self) -> _Loaded:
        loaded = self._loaded
        monotonic = time.monotonic()
        if loaded is not None and monotonic - self._checked_at < 1.0:
            return loaded
        with self._lock:
            self._checked_at = monotonic
            try:
                stat = (self.directory / _MANIFEST).stat()
            except FileNotFoundError:
                raise ConfigError(
                    f"no signing keys in {self.directory}: run 'idp init' first"
                ) from None
            version = (stat.st_ino, stat.st_mtime_ns)
            current = self._loaded
            if (
                current is None
                or current.version != version
                or (current.next_change is not None and current.next_change <= clock.now())
            ):
                current = self._loaded = self._load(version)
            return current

    def _load(self, version: tuple[int, int]) -> _Loaded:
        now = clock.now()
        infos: list[KeyInfo] = []
        published: list[tuple[RSAKey | ECKey, KeyInfo]] = []
        active: tuple[RSAKey | ECKey, KeyInfo] | None = None
        for entry in self._read_manifest():
            retired = entry.get("retired_at")
            retired_at = dt.datetime.fromisoformat(retired) if retired else None
            info = KeyInfo(
                kid=entry["kid"],
                alg=entry["alg"],
                created_at=dt.datetime.fromisoformat(entry["created_at"]),
                retired_at=retired_at,
                published_until=retired_at + self.retention if retired_at else None,
            )
            infos.append(info)
            if not self._is_published(info, now):
                continue
            key = self._parse(info)
            published.append((key, info))
            if info.active:
                active = (key, info)
        if active is None:
            raise ConfigError(f"no active signing key in {self.directory}: run 'idp keys rotate'")
        jwks = {
            "keys": [{**k.as_dict(private=False), "use": "sig", "alg": i.alg} for k, i in published]
        }
        retiring = [i.published_until for _, i in published if i.published_until is not None]
        return _Loaded(
            version=version,
            next_change=min(retiring) if retiring else None,
            infos=tuple(infos),
            active=active[0],
            active_info=active[1],
            verify_set=KeySet([k for k, _ in published]),
            jwks_bytes=json.dumps(jwks, separators=(",", ":")).encode(),
        )

    @staticmethod
    def _is_published(info: KeyInfo, now: dt.datetime) -> bool:
        return info.published_until is None or info.published_until > now

    def _parse(self, info: KeyInfo) -> RSAKey | ECKey:
        path = self.directory / f"{info.kid}.pem"
        try:
            pem = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"signing key {path} cannot be read: {e.strerror}") from None
        key: RSAKey | ECKey
        if info.alg == "RS256":
            key = RSAKey.import_key(pem, {"kid": info.kid})
        else:
            key = ECKey.import_key(pem, {"kid": info.kid})
        return key

    # --- using -----------------------------------------------------------------

    def list(self) -> tuple[KeyInfo, ...]:
        return self._current().infos

    def jwks_bytes(self) -> bytes:
        return self._current().jwks_bytes

    @property
    def active_alg(self) -> str:
        return self._current().active_info.alg

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """A compact JWS over ``claims`` with the active key; ``kid`` in the header."""
        loaded = self._current()
        header = {"alg": loaded.active_info.alg, "kid": loaded.active_info.kid, "typ": typ}
        return jwt.encode(header, claims, loaded.active, algorithms=[loaded.active_info.alg])

    def verify(
        self, token: str, *, typ: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check the signature against any published key; returns (header, claims).

        Claims (exp, iss, aud) are the caller's to check; a bad signature,
        an unknown ``kid`` or a malformed token raise InvalidTokenError."""
        loaded = self._current()
        known = loaded.verified.get(token)
        if known is None:
            known = self._check_signature(token, loaded)
        header, claims = known
        if typ is not None and str(header.get("typ", "")).lower() != typ.lower():
            raise InvalidTokenError("The token is invalid.", detail=f"typ {header.get('typ')!r}")
        return dict(header), dict(claims)

    @staticmethod
    def _check_signature(token: str, loaded: _Loaded) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verify once per token and key set.  A relying service presents
        the same access token at every UserInfo call and introspection; a
        signature check costs more than the rest of such a request (about
        90 µs on the bench machine), so a token that passed is remembered
        until the keys change (a new ``_Loaded``) or ``VERIFIED_TOKENS`` are
        remembered, when the memory starts again.  Only tokens that passed
        enter it: junk cannot fill it."""
        try:
            decoded = jwt.decode(token, loaded.verify_set, algorithms=["RS256", "ES256"])
        except (JoseError, ValueError, KeyError, TypeError) as e:
            raise InvalidTokenError("The token is invalid.", detail=str(e)) from e
        known = (dict(decoded.header), dict(decoded.claims))
        if len(loaded.verified) >= VERIFIED_TOKENS:
            loaded.verified.clear()
        loaded.verified[token] = known
        return known


def keyring_for(settings: Settings) -> KeyRing:
    """The key ring of ``keys.dir``, retaining retired keys as long as the
    longest-lived token they signed."""
    ttl = max(settings.tokens.access_token_ttl_seconds, settings.tokens.id_token_ttl_seconds)
    return KeyRing(settings.keys.dir, algorithm=settings.keys.algorithm, max_token_ttl_seconds=ttl)
