"""Security Event Tokens to relying services: what happened to an account.

A relying service registered with ``--events-uri`` is told when an account
it knows is disabled, enabled again or purged (OpenID RISC) and when its
password changes (OpenID CAEP ``credential-change``), so that it can end its
own sessions and stop trusting what it cached.  Each event is a Security
Event Token (RFC 8417) pushed by ``POST`` with ``Content-Type:
application/secevent+jwt`` (RFC 8935), signed with the ID-token key, the
subject named by a top-level ``sub_id`` of format ``iss_sub`` (RFC 9493).

:func:`queue` runs inside the transaction of the account change and adds one
outbox row per client, so that the change and the promise to announce it
commit or roll back together; the worker calls :func:`deliver`.  The
``jti`` and ``iat`` are fixed when the event is queued, not when it is sent:
a retry resends the *same* event, which the receiver recognises by its
``jti`` (RFC 8935 §2) -- a fresh ``jti`` per attempt would announce a
second event.  Only the signature is made at delivery, with the key active
then.

Who is told: every client that received tokens in any of the person's
sessions (``session_clients``, kept as long as the session) or holds the
person's consent.  A client that never saw the person learns nothing about
them.  The delivery goes through :func:`idp.backchannel.post_form`: the
same address checks (no private addresses unless allowed, resolved once,
pinned connection, no redirects) as back-channel logout."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import select, union

from idp import backchannel, clock, outbox, runtime
from idp.db import db, new_secret
from idp.errors import DeliveryFailedError
from idp.models import Client, Consent, SessionClient, SignInSession
from idp.outbox import OutboxItem

__all__ = ["CONTENT_TYPE", "KIND", "SecurityEvent", "deliver", "queue", "set_token"]

KIND = "security_event"
CONTENT_TYPE = "application/secevent+jwt"

_RISC = "https://schemas.openid.net/secevent/risc/event-type/"
_CAEP = "https://schemas.openid.net/secevent/caep/event-type/"


class SecurityEvent(StrEnum):
    """The events sent, each value the event type URI that names it in ``events``."""

    ACCOUNT_DISABLED = _RISC + "account-disabled"
    """RISC §2.3; the only one that carries a ``reason`` (RISC defines
    ``hijacking`` and ``bulk-account``)."""
    ACCOUNT_ENABLED = _RISC + "account-enabled"
    """RISC §2.4: a disabled account may be used again."""
    ACCOUNT_PURGED = _RISC + "account-purged"
    """RISC §2.2: the account is gone (cancelled or deleted)."""
    CREDENTIAL_CHANGE = _CAEP + "credential-change"
    """CAEP §3.3: the password was changed or reset."""


def queue(*, user_id: str, event: SecurityEvent, reason: str | None = None) -> list[str]:
    """Queue ``event`` about this person for every client that knows them.

    Joins the caller's transaction (commits nothing).  One query finds the
    clients with an events URI that received tokens in any of the person's
    sessions or hold their consent; one statement queues a message for
    each.  Call it *before* deleting the account: it reads the sessions and
    consents that go with it.  Returns the client ids queued, sorted.

    ``reason`` is allowed only for ``ACCOUNT_DISABLED``."""
    event = SecurityEvent(event)
    if reason is not None and event is not SecurityEvent.ACCOUNT_DISABLED:
        raise ValueError(f"a reason is carried only by {SecurityEvent.ACCOUNT_DISABLED.value}")
    reached = (
        select(SessionClient.client_id)
        .join(SignInSession, SignInSession.id == SessionClient.session_id)
        .where(SignInSession.user_id == user_id)
    )
    consented = select(Consent.client_id).where(Consent.user_id == user_id)
    rows = db.session.execute(
        select(Client.client_id, Client.events_uri)
        .where(
            Client.events_uri.is_not(None),
            Client.client_id.in_(union(reached, consented).scalar_subquery()),
        )
        .order_by(Client.client_id)
    ).all()
    iat = clock.now_ts()
    retry = dt.timedelta(hours=runtime.current().settings.logout.retry_hours)
    outbox.enqueue_many(
        KIND,
        [
            {
                "client_id": client_id,
                "uri": uri,
                "sub": user_id,
                "event": event.value,
                "reason": reason,
                "jti": new_secret(16),
                "iat": iat,
            }
            for client_id, uri in rows
        ],
        ttl=retry,
    )
    return [client_id for client_id, _ in rows]


def _event_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    event = SecurityEvent(payload["event"])
    if event is SecurityEvent.CREDENTIAL_CHANGE:
        return {
            "credential_type": "password",
            "change_type": "update",
            "event_timestamp": int(payload["iat"]),
        }
    if event is SecurityEvent.ACCOUNT_DISABLED and payload.get("reason"):
        return {"reason": str(payload["reason"])}
    return {}


def set_token(payload: Mapping[str, Any]) -> str:
    """The signed SET for a queued message: its ``jti`` and ``iat``, the
    active key now, ``typ: secevent+jwt`` (RFC 8417 §2.3), no ``exp`` and
    no top-level ``sub`` (the subject is ``sub_id``)."""
    rt = runtime.current()
    issuer = rt.settings.server.issuer
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": str(payload["client_id"]),
        "iat": int(payload["iat"]),
        "jti": str(payload["jti"]),
        "sub_id": {"format": "iss_sub", "iss": issuer, "sub": str(payload["sub"])},
        "events": {str(SecurityEvent(payload["event"]).value): _event_payload(payload)},
    }
    return rt.keys.sign(claims, typ="secevent+jwt")


def deliver(item: OutboxItem) -> None:
    """Push one SET (RFC 8935 §2); returns on any 2xx, else raises.

    A 400 is the receiver refusing this SET (§2.4) and, like any other 4xx
    but 408 and 429, cannot succeed on a retry: a permanent failure.
    5xx, 408, 429, redirects (never followed) and network errors are
    retried until the message's time runs out."""
    uri = str(item.payload["uri"])
    token = set_token(item.payload)
    status = backchannel.post_form(uri, token.encode("ascii"), content_type=CONTENT_TYPE)
    if 200 <= status < 300:
        return
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise DeliveryFailedError(f"HTTP {status} from {uri}", permanent=permanent)
