"""OpenID Connect Back-Channel Logout 1.0: telling relying services a session ended.

:func:`queue_logouts` runs inside the forced-logout transaction and adds one
outbox row per (client, session) for every client that holds tokens from
the ended sessions and registered a ``backchannel_logout_uri``.  The worker
calls :func:`deliver`, which signs a *fresh* logout token for each attempt
(same ``sid`` and ``sub``, new ``jti``, ``iat`` now, ``exp`` two minutes
later), so that a relying service that was down for an hour still gets a
token it will accept.

The provider never fetches a URL named in a request.  Back-channel URIs are
registered by an operator and checked twice against private and loopback
addresses (at registration and, against DNS rebinding, before each call)
unless ``logout.allow_private_uris`` permits them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select, union

from idp import clock, outbox, runtime
from idp.db import db, new_secret
from idp.models import AccessToken, Client, RefreshToken
from idp.outbox import OutboxItem

__all__ = [
    "KIND",
    "LOGOUT_EVENT",
    "DeliveryFailedError",
    "deliver",
    "logout_token",
    "queue_logouts",
]

KIND = "backchannel_logout"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
TIMEOUT_SECONDS = 5
TOKEN_TTL_SECONDS = 120


class DeliveryFailedError(Exception):
    """This attempt failed; ``permanent`` says whether another could succeed."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def queue_logouts(ended: list[tuple[str, str]]) -> list[str]:
    """Queue a logout for every client holding tokens from these sessions.

    ``ended`` is (sid, user_id) pairs.  One query finds the holders, one
    statement queues them.  Returns the client ids queued (the caller's
    transaction commits them with the logout itself)."""
    if not ended:
        return []
    subs = dict(ended)
    ids = list(subs)
    holders = union(
        select(RefreshToken.client_id, RefreshToken.session_id).where(
            RefreshToken.session_id.in_(ids)
        ),
        select(AccessToken.client_id, AccessToken.session_id).where(
            AccessToken.session_id.in_(ids)
        ),
    ).subquery()
    rows = db.session.execute(
        select(holders.c.client_id, holders.c.session_id, Client.backchannel_logout_uri)
        .join(Client, Client.client_id == holders.c.client_id)
        .where(Client.backchannel_logout_uri.is_not(None))
    ).all()
    retry = dt.timedelta(hours=runtime.current().settings.logout.retry_hours)
    outbox.enqueue_many(
        KIND,
        [
            {"client_id": client_id, "uri": uri, "sid": sid, "sub": subs[sid]}
            for client_id, sid, uri in rows
        ],
        ttl=retry,
    )
    return sorted({client_id for client_id, _, _ in rows})


def logout_token(*, client_id: str, sid: str, sub: str) -> str:
    """A signed logout token (Back-Channel Logout 1.0 §2.4): no ``nonce``."""
    rt = runtime.current()
    now = clock.now_ts()
    claims: dict[str, Any] = {
        "iss": rt.settings.server.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + TOKEN_TTL_SECONDS,
        "jti": new_secret(16),
        "sid": sid,
        "sub": sub,
        "events": {LOGOUT_EVENT: {}},
    }
    return rt.keys.sign(claims, typ="logout+jwt")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A relying service's redirect is not followed: it could point anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _check_address(uri: str) -> None:
    if runtime.current().settings.allow_private_logout_uris:
        return
    host = urlsplit(uri).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as e:
        raise DeliveryFailedError(f"cannot resolve {host}: {e}") from e
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
        ):
            raise DeliveryFailedError(
                f"{host} resolves to a private address {address}", permanent=True
            )


def deliver(item: OutboxItem) -> None:
    """POST a freshly signed logout token; returns on any 2xx, else raises."""
    payload = item.payload
    uri = str(payload["uri"])
    _check_address(uri)
    token = logout_token(client_id=payload["client_id"], sid=payload["sid"], sub=payload["sub"])
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked at registration
        uri,
        data=urlencode({"logout_token": token}).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cache-Control": "no-store",
            "User-Agent": "idp-backchannel-logout/1",
        },
        method="POST",
    )
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        raise DeliveryFailedError(f"HTTP {e.code} from {uri}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryFailedError(f"{uri}: {getattr(e, 'reason', e)}") from e
    if not 200 <= status < 300:
        raise DeliveryFailedError(f"HTTP {status} from {uri}")
