"""Interactions: an authorization request waiting for the person.

The authorization endpoint validates a request, stores it here and sends the
browser to ``consent_ui`` with the interaction's random uid.  The pages
finish the steps (sign-in, consent) through :func:`finish_login` and
:func:`finish_consent`, and the browser returns to
``/authorize/resume/<uid>``, which replays the stored request.  This is
node-oidc-provider's interaction and Hydra's login challenge: the protocol
never renders and the UI never decides.

An interaction is single use, expires after ``tokens.interaction_ttl_seconds``
and, once someone has signed in through it, resumes only in the browser
that holds that sign-in session (the uid alone is not enough)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from idp import clock, consents, events
from idp.db import db, new_secret, secret_hash
from idp.errors import InteractionError
from idp.models import Interaction

__all__ = [
    "InteractionInfo",
    "complete",
    "deny_login",
    "finish_consent",
    "finish_login",
    "load",
    "purge_expired",
    "start",
]


@dataclass(frozen=True, slots=True)
class InteractionInfo:
    uid: str
    client_id: str
    params: dict[str, str]
    prompt: str
    reasons: tuple[str, ...]
    user_id: str | None
    session_id: str | None
    consent_scope: str | None
    error: str | None
    expires_at: dt.datetime

    @property
    def login_hint(self) -> str:
        return self.params.get("login_hint", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


def start(
    *, client_id: str, params: dict[str, str], prompt: str, reasons: list[str], ttl_seconds: int
) -> str:
    """Store a validated authorization request; returns its uid.  Commits."""
    uid = new_secret(24)
    now = clock.now()
    db.session.add(
        Interaction(
            uid_hash=secret_hash(uid),
            client_id=client_id,
            params=json.dumps(params, sort_keys=True),
            prompt=prompt,
            reasons=reasons,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_seconds),
        )
    )
    db.session.commit()
    return uid


def _row(uid: str) -> Interaction:
    if not uid or len(uid) > 64:
        raise InteractionError("This sign-in request is unknown.")
    row = db.session.scalar(select(Interaction).where(Interaction.uid_hash == secret_hash(uid)))
    if row is None:
        raise InteractionError("This sign-in request is unknown.")
    if row.completed_at is not None:
        raise InteractionError("This sign-in request was already used.")
    if row.expires_at <= clock.now():
        raise InteractionError(
            "This sign-in request has expired. Go back to the service and start again."
        )
    return row


def _info(uid: str, row: Interaction) -> InteractionInfo:
    params: dict[str, Any] = json.loads(row.params)
    return InteractionInfo(
        uid=uid,
        client_id=row.client_id,
        params={str(k): str(v) for k, v in params.items()},
        prompt=row.prompt,
        reasons=tuple(row.reasons),
        user_id=row.user_id,
        session_id=row.session_id,
        consent_scope=row.consent_scope,
        error=row.error,
        expires_at=row.expires_at,
    )


def load(uid: str) -> InteractionInfo:
    """The pending interaction.  Raises InteractionError if unusable."""
    return _info(uid, _row(uid))


def finish_login(uid: str, *, user_id: str, session_id: str) -> InteractionInfo:
    """Record who signed in for this request; commits."""
    row = _row(uid)
    if row.user_id is not None and row.user_id != user_id:
        # Another account signed in midway: earlier consent was not theirs.
        row.consent_scope = None
    row.user_id = user_id
    row.session_id = session_id
    db.session.commit()
    return _info(uid, row)


def finish_consent(uid: str, *, session_id: str, allow: bool) -> InteractionInfo:
    """Record the person's decision on the requested scopes; commits.

    Allowing remembers the consent for later requests of the client."""
    row = _row(uid)
    if row.session_id is None or row.session_id != session_id or row.user_id is None:
        raise InteractionError("This sign-in request belongs to another browser.")
    scope = json.loads(row.params).get("scope", "")
    if allow:
        row.consent_scope = scope
        consents.grant(row.user_id, row.client_id, frozenset(scope.split()))
    else:
        row.error = "access_denied"
        events.record("consent.denied", user_id=row.user_id, client_id=row.client_id)
    db.session.commit()
    return _info(uid, row)


def deny_login(uid: str) -> InteractionInfo:
    """The person gave up signing in: the client learns ``access_denied``."""
    row = _row(uid)
    row.error = "access_denied"
    db.session.commit()
    return _info(uid, row)


def complete(uid: str) -> None:
    """Spend the interaction so it cannot be resumed twice; commits."""
    row = _row(uid)
    row.completed_at = clock.now()
    db.session.commit()


def purge_expired(now: dt.datetime) -> None:
    """Delete interactions past their expiry (the caller commits)."""
    db.session.execute(delete(Interaction).where(Interaction.expires_at < now))
