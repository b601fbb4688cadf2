"""OpenID Connect Back-Channel Logout 1.0: telling relying services a session ended.

:func:`queue_logouts` runs inside the forced-logout transaction and adds one
outbox row per (client, session) for every client that received tokens in
the ended sessions (``session_clients``, kept as long as the session) and
registered a ``backchannel_logout_uri``.  The worker
calls :func:`deliver`, which signs a *fresh* logout token for each attempt
(same ``sid`` and ``sub``, new ``jti``, ``iat`` now, ``exp`` two minutes
later), so that a relying service that was down for an hour still gets a
token it will accept.

The provider never fetches a URL named in a request.  Back-channel URIs are
registered by an operator and checked against every address that is not
globally routable (loopback, private, link-local, shared 100.64.0.0/10,
reserved) at registration and before each call, unless
``logout.allow_private_uris`` permits them.  The name is resolved once per
call and the connection goes to the address that was checked, so a DNS
answer that changes between the check and the call (rebinding) cannot
redirect it."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select

from idp import clock, outbox, runtime
from idp.db import db, json_object, new_secret
from idp.errors import DeliveryFailedError
from idp.models import Client, SessionClient, SignInSession
from idp.outbox import OutboxItem

__all__ = [
    "KIND",
    "LOGOUT_EVENT",
    "deliver",
    "is_public_address",
    "logout_token",
    "post_form",
    "queue_logouts",
]

KIND = "backchannel_logout"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
TIMEOUT_SECONDS = 5
TOKEN_TTL_SECONDS = 120


def queue_logouts(session_ids: list[str]) -> list[str]:
    """Queue a logout for every client these sessions reached.

    Two statements whatever the count: the messages are inserted from a
    select (:func:`outbox.enqueue_selected`), then the clients are read.
    Returns the client ids queued (the caller's transaction commits them
    with the logout itself)."""
    if not session_ids:
        return []
    reached = (
        SessionClient.session_id.in_(session_ids),
        Client.backchannel_logout_uri.is_not(None),
    )
    payload = json_object(
        "client_id", SessionClient.client_id,
        "sid", SessionClient.session_id,
        "sub", SignInSession.user_id,
        "uri", Client.backchannel_logout_uri,
    )  # fmt: skip
    payloads = (
        select(payload)
        .join(Client, Client.client_id == SessionClient.client_id)
        .join(SignInSession, SignInSession.id == SessionClient.session_id)
        .where(*reached)
    )
    retry = dt.timedelta(hours=runtime.current().settings.logout.retry_hours)
    outbox.enqueue_selected(KIND, payloads, ttl=retry)
    notified = (
        select(SessionClient.client_id)
        .join(Client, Client.client_id == SessionClient.client_id)
        .where(*reached)
        .distinct()
        .order_by(SessionClient.client_id)
    )
    return list(db.session.scalars(notified))


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


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not loopback, private, link-local, shared
    (100.64.0.0/10), reserved or multicast, also when mapped into IPv6."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int) -> str:
    """The one address this call connects to, checked unless private
    addresses are allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise DeliveryFailedError(f"cannot resolve {host}: {e}") from e
    if not infos:
        raise DeliveryFailedError(f"cannot resolve {host}")
    address = str(infos[0][4][0])
    if not runtime.current().settings.allow_private_logout_uris and not is_public_address(
        ipaddress.ip_address(address)
    ):
        raise DeliveryFailedError(
            f"{host} resolves to a non-public address {address}", permanent=True
        )
    return address


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address resolved (and checked) beforehand."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a pre-resolved address; the certificate is checked for the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_form(uri: str, fields: dict[str, str] | bytes, *, content_type: str) -> int:
    """POST to a relying service's registered URI; returns the status.

    No redirect is followed (it could point anywhere), the address is
    resolved once and checked, and every socket operation times out."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = _resolve(host, port)
    body = fields if isinstance(fields, bytes) else urlencode(fields).encode()
    connection_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = connection_class(host, port, address, TIMEOUT_SECONDS)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": content_type,
                "Cache-Control": "no-store",
                "User-Agent": "idp-backchannel/1",
            },
        )
        return connection.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        raise DeliveryFailedError(f"{uri}: {e}") from e
    finally:
        connection.close()


def deliver(item: OutboxItem) -> None:
    """POST a freshly signed logout token; returns on any 2xx, else raises."""
    payload = item.payload
    uri = str(payload["uri"])
    token = logout_token(client_id=payload["client_id"], sid=payload["sid"], sub=payload["sub"])
    status = post_form(
        uri, {"logout_token": token}, content_type="application/x-www-form-urlencoded"
    )
    if not 200 <= status < 300:
        raise DeliveryFailedError(f"HTTP {status} from {uri}")
