"""Relying parties: registration, exact redirect URIs, secret checks.

Redirect URIs are compared as exact strings (RFC 9700 §4.1.3): no prefix,
wildcard or normalisation, so an attacker cannot find a sibling URI that
still matches.  Client secrets are 256-bit random values; a SHA-256 digest
compared in constant time is as strong as a password hash for them and costs
nothing on the token endpoint's hot path.

Every token, introspection and revocation request looks its client up, so
:func:`lookup` keeps what it found for ``CACHE_SECONDS`` in this process (a
registration is never changed in place today; whatever comes to change one
must call :func:`forget`, and other processes see it within that time).  An
unknown ``client_id`` is never remembered: a client registered a moment ago
is found at once."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from idp import clock, events
from idp.backchannel import is_public_address
from idp.db import db, new_identifier, secret_hash, service
from idp.errors import NotFoundError, UsageError
from idp.models import Client

__all__ = [
    "GRANT_TYPES",
    "SCOPES",
    "RelyingParty",
    "check_secret",
    "create",
    "forget",
    "get",
    "lookup",
]

SCOPES = ("openid", "profile", "email", "offline_access", "admin")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


@dataclass(frozen=True, slots=True)
class RelyingParty:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: frozenset[str]
    is_public: bool
    is_admin: bool
    first_party: bool
    allow_stay_signed_in: bool
    backchannel_logout_uri: str | None
    events_uri: str | None
    created_at: dt.datetime
    secret_hash: bytes | None

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True, slots=True)
class Registered:
    client: RelyingParty
    client_secret: str | None
    """Shown once; only its digest is stored."""


def _relying_party(c: Client) -> RelyingParty:
    return RelyingParty(
        client_id=c.client_id,
        name=c.name,
        redirect_uris=tuple(c.redirect_uris),
        post_logout_redirect_uris=tuple(c.post_logout_redirect_uris),
        grant_types=tuple(c.grant_types),
        scopes=frozenset(c.scope.split()),
        is_public=c.is_public,
        is_admin=c.is_admin,
        first_party=c.first_party,
        allow_stay_signed_in=c.allow_stay_signed_in,
        backchannel_logout_uri=c.backchannel_logout_uri,
        events_uri=c.events_uri,
        created_at=c.created_at,
        secret_hash=c.secret_hash,
    )


_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
"""What RFC 3986 lets a URI hold; anything else (spaces, quotes, non-ASCII
text) must be percent-encoded, and a registered URI is compared as written."""


MAX_URI_LENGTH = 500
"""As long as the columns that hold a registered URI: a code keeps the
redirect URI it was issued for, a client its back-channel logout URI."""


def _check_uri(kind: str, uri: str, *, allow_private: bool) -> None:
    if len(uri) > MAX_URI_LENGTH:
        raise UsageError(f"{kind} {uri[:40]!r}... must have at most {MAX_URI_LENGTH} characters")
    if not _URI_CHARACTERS.fullmatch(uri):
        raise UsageError(
            f"{kind} {uri!r} holds characters a URI may not (spaces, quotes, non-ASCII "
            "text): percent-encode them"
        )
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - read for its check: a port past 65535 is refused here
    except ValueError as e:  # an unclosed IPv6 bracket, a port out of range
        raise UsageError(f"{kind} {uri!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{kind} {uri!r} must be an absolute http(s) URL")
    if parts.fragment:
        raise UsageError(f"{kind} {uri!r} must not have a fragment")
    host = parts.hostname
    loopback = host == "localhost" or host.endswith(".localhost")
    try:
        address = ipaddress.ip_address(host)
        loopback = loopback or address.is_loopback
        private = not is_public_address(address)
    except ValueError:
        private = False
    if parts.scheme == "http" and not loopback:
        raise UsageError(f"{kind} {uri!r} must use https (http only on a loopback host)")
    if (
        kind in ("backchannel logout URI", "events URI")
        and (loopback or private)
        and not allow_private
    ):
        raise UsageError(
            f"{kind} {uri!r} points at a loopback or private address; "
            "set logout.allow_private_uris = true to allow it"
        )


@service
def create(
    *,
    name: str,
    redirect_uris: list[str],
    public: bool = False,
    scope: str | None = None,
    grant_types: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = None,
    events_uri: str | None = None,
    admin: bool = False,
    stay_signed_in: bool = True,
    first_party: bool = False,
    allow_private_uris: bool = False,
) -> Registered:
    """Register a relying party.  Raises UsageError on a bad value."""
    name = name.strip()
    if not name or len(name) > 200:
        raise UsageError("name must be 1-200 characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        # The consent page and the admin's terminal show it as it is.
        raise UsageError("name must not contain control characters")
    grants = list(dict.fromkeys(grant_types or ["authorization_code", "refresh_token"]))
    if admin and "client_credentials" not in grants:
        grants.append("client_credentials")
    for g in grants:
        if g not in GRANT_TYPES:
            raise UsageError(f"grant type {g!r} is not supported; use {', '.join(GRANT_TYPES)}")
    if "authorization_code" in grants and not redirect_uris:
        raise UsageError("a client using authorization_code needs at least one --redirect-uri")
    if public and "client_credentials" in grants:
        raise UsageError("a public client cannot use client_credentials (it has no secret)")
    if public and admin:
        raise UsageError("a public client cannot be an admin client")
    for uri in redirect_uris:
        _check_uri("redirect URI", uri, allow_private=True)
    for uri in post_logout_redirect_uris or []:
        _check_uri("post-logout redirect URI", uri, allow_private=True)
    if backchannel_logout_uri:
        _check_uri(
            "backchannel logout URI", backchannel_logout_uri, allow_private=allow_private_uris
        )
    if events_uri:
        _check_uri("events URI", events_uri, allow_private=allow_private_uris)
    scopes = list(dict.fromkeys((scope or "openid profile email offline_access").split()))
    for s in scopes:
        if s not in SCOPES:
            raise UsageError(f"scope {s!r} is not supported; use {', '.join(SCOPES)}")
    if admin and "admin" not in scopes:
        scopes.append("admin")
    if "admin" in scopes and not admin:
        raise UsageError("only a client created with --admin may have the admin scope")
    if not stay_signed_in and "offline_access" in scopes:
        scopes.remove("offline_access")

    secret = None if public else secrets.token_urlsafe(32)
    row = Client(
        client_id=new_identifier(16),
        secret_hash=secret_hash(secret) if secret else None,
        name=name,
        redirect_uris=list(dict.fromkeys(redirect_uris)),
        post_logout_redirect_uris=list(dict.fromkeys(post_logout_redirect_uris or [])),
        grant_types=grants,
        scope=" ".join(scopes),
        is_public=public,
        is_admin=admin,
        first_party=first_party,
        allow_stay_signed_in=stay_signed_in,
        backchannel_logout_uri=backchannel_logout_uri or None,
        events_uri=events_uri or None,
        created_at=clock.now(),
    )
    db.session.add(row)
    events.record("client.created", client_id=row.client_id, name=name, admin=admin)
    return Registered(client=_relying_party(row), client_secret=secret)


CACHE_SECONDS = 30.0
_CACHE = "idp.clients.cache"
_cache_lock = threading.Lock()


def _cache() -> dict[str, tuple[float, RelyingParty]]:
    """This application's cache (one per app: the tests build many in one process)."""
    cache: dict[str, tuple[float, RelyingParty]] = current_app.extensions.setdefault(_CACHE, {})
    return cache


def lookup(client_id: str) -> RelyingParty | None:
    """The relying party with this ``client_id``, or None."""
    if not client_id or len(client_id) > 64:
        return None
    cache = _cache()
    cached = cache.get(client_id)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    row = db.session.scalar(select(Client).where(Client.client_id == client_id))
    if row is None:
        return None
    rp = _relying_party(row)
    with _cache_lock:
        cache[client_id] = (now, rp)
    return rp


def forget(client_id: str) -> None:
    """Drop a cached registration (call it whenever one changes)."""
    with _cache_lock:
        _cache().pop(client_id, None)


def get(client_id: str) -> RelyingParty:
    rp = lookup(client_id)
    if rp is None:
        raise NotFoundError(f"no client {client_id!r}")
    return rp


def check_secret(rp: RelyingParty, presented: str) -> bool:
    """Constant-time comparison of the presented secret's digest."""
    if rp.secret_hash is None:
        return False
    return hmac.compare_digest(rp.secret_hash, secret_hash(presented))
