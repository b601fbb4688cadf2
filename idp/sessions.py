"""Sign-in sessions: stay signed in, idle timeout, and the services each
session reached (ending them is ``idp.forced_logout``'s).

The browser holds only a random ``idp_session`` value; the server stores its
SHA-256 and every rule about the session, so ending a session on one node
ends it everywhere at once.

* "Stay signed in" checked: the session slides ``session.remember_days``
  with use but never outlives ``session.remember_max_days`` from sign-in.
* Unchecked: it ends after ``session.idle_minutes`` without use (and the
  cookie dies with the browser).

Both ends are enforced here, whatever the cookie says.  ``last_seen_at`` is
written at most once a minute per session so that page loads stay cheap;
the idle timeout is therefore precise to a minute.

A forced logout is final.  Token issuance takes a shared lock on the
session row (:func:`lock`) inside the transaction that issues, and a forced
logout (``idp.forced_logout``) takes an exclusive one before it revokes, so a token is either issued
before the logout (and revoked by it) or not at all.  Which services a
session reached is recorded on the session itself (``session_clients``) when
they first get tokens, so the back-channel logout reaches them however long
ago that was and whether or not their tokens have since expired or been
purged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from idp import acr, clock, devices, events, geo, runtime
from idp.config import SessionSettings
from idp.db import AnyRow, db, delete_batch, new_identifier, new_secret, secret_hash, service
from idp.errors import NotFoundError
from idp.forced_logout import MISUSE_REASONS, LogoutReason, force_logout
from idp.models import RefreshToken, SessionClient, SignInSession
from idp.prepared import read_in_transaction, write

__all__ = [
    "SessionInfo",
    "StartedSession",
    "add_factors",
    "countries_active_since",
    "device_forced_out_since",
    "get",
    "list_for_user",
    "lock",
    "purge_ended",
    "record_client",
    "resolve",
    "serves_client",
    "start",
    "touch",
]

TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: str
    user_id: str
    device_id: str | None
    ip: str
    country: str | None
    user_agent: str
    remember: bool
    auth_time: dt.datetime
    amr: tuple[str, ...]
    acr: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ended_at: dt.datetime | None
    strong_auth_at: dt.datetime | None = None
    """When a passkey or a one-time code last proved the person here."""
    held: bool = False
    """Waiting for the extra check the risk rules asked (``idp.step_up``):
    it serves nothing until then."""

    def is_live(self, now: dt.datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    def touch_due(self, now: dt.datetime) -> bool:
        """Whether a use now should slide the expiry (at most once a minute)."""
        return now - self.last_seen_at >= TOUCH_EVERY

    @property
    def device(self) -> str:
        """ "Browser on System", as a person recognises it."""
        return devices.describe(self.user_agent)

    def to_json(self) -> dict[str, object]:
        """The shape the CLI's ``--json`` and the admin API print."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "device": self.device,
            "device_id": self.device_id,
            "user_agent": self.user_agent,
            "ip": self.ip,
            "country": self.country,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "auth_time": int(self.auth_time.timestamp()),
            "amr": list(self.amr),
            "stay_signed_in": self.remember,
            "held": self.held,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@dataclass(frozen=True, slots=True)
class StartedSession:
    session: SessionInfo
    cookie_value: str
    """Goes to the browser once; the server keeps only its digest."""


_SESSIONS = SignInSession.metadata.tables[SignInSession.__tablename__]
_COLUMNS = tuple(
    _SESSIONS.c[name]
    for name in (
        "id",
        "user_id",
        "device_id",
        "ip",
        "country",
        "user_agent",
        "remember",
        "auth_time",
        "amr",
        "acr",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ended_at",
        "strong_auth_at",
        "held",
    )
)
"""What :class:`SessionInfo` is made of: read as table columns, not ORM
objects or attributes, on the paths every token issuance takes (a select of
ORM attributes costs the ORM's compile step, about twice the statement)."""
_LOCK = select(*_COLUMNS).where(_SESSIONS.c.id == bindparam("sid")).with_for_update(read=True)


def _info(row: SignInSession | AnyRow) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        device_id=row.device_id,
        ip=row.ip,
        country=row.country,
        user_agent=row.user_agent,
        remember=row.remember,
        auth_time=row.auth_time,
        amr=tuple(row.amr),
        acr=row.acr,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        strong_auth_at=row.strong_auth_at,
        held=row.held,
    )


def _expiry(row: SignInSession, now: dt.datetime, policy: SessionSettings) -> dt.datetime:
    if row.remember:
        cap = row.auth_time + dt.timedelta(days=policy.remember_max_days)
        return min(now + dt.timedelta(days=policy.remember_days), cap)
    return now + dt.timedelta(minutes=policy.idle_minutes)


@service
def start(
    *,
    user_id: str,
    policy: SessionSettings,
    remember: bool,
    amr: list[str],
    ip: str,
    user_agent: str,
    device_id: str | None = None,
    country: str | None = None,
    replaces: str | None = None,
    held: bool = False,
) -> StartedSession:
    """Open a session for a person who just proved who they are.

    ``held``: the risk rules want an extra check first (``idp.step_up``);
    the session serves nothing until :func:`add_factors` lifts the hold, and
    ends on its own after ``tokens.interaction_ttl_seconds`` if it is not.

    ``replaces`` names the browser's current session.  The same person
    signing in again (``prompt=login``, ``max_age``) keeps that session --
    same ``sid``, so relying services are not logged out -- with a fresh
    ``auth_time`` and a new cookie value (no session fixation).  Another
    person signing in on the browser ends it first."""
    now = clock.now()
    cookie_value = new_secret()
    row = db.session.get(SignInSession, replaces) if replaces else None
    if row is not None and (row.user_id != user_id or row.ended_at is not None):
        if row.ended_at is None:
            force_logout(session_ids=[row.id], reason=LogoutReason.REPLACED, actor="system")
        row = None
    if row is None:
        row = SignInSession(id=new_identifier(24), user_id=user_id, created_at=now)
        db.session.add(row)
    row.cookie_hash = secret_hash(cookie_value)
    row.device_id = device_id
    row.ip = ip
    row.country = country or geo.country_of(ip, runtime.current().settings.geoip.database)
    row.user_agent = user_agent[:400]
    row.remember = remember
    row.auth_time = now
    row.amr = list(amr)
    row.acr = acr.for_methods(amr)
    row.strong_auth_at = now if acr.STRONG_FACTORS & set(amr) else None
    row.last_seen_at = now
    row.held = held
    row.expires_at = _expiry(row, now, policy)
    if held:
        hold = dt.timedelta(seconds=runtime.current().settings.tokens.interaction_ttl_seconds)
        row.expires_at = min(row.expires_at, now + hold)
    events.record(
        "session.started",
        user_id=user_id,
        session_id=row.id,
        ip=ip,
        amr=list(amr),
        remember=remember,
        device_id=device_id,
        held=held,
    )
    db.session.flush()
    return StartedSession(session=_info(row), cookie_value=cookie_value)


def add_factors(session_id: str, factors: list[str]) -> SessionInfo:
    """A step-up passed in this session: its ``amr`` keeps the first method
    and gains ``factors`` (``otp``, ``mfa``), its ``acr`` rises with them,
    and a hold is lifted (the session then lives by its policy).  Joins the
    caller's transaction."""
    row = db.session.get(SignInSession, session_id)
    if row is None or row.ended_at is not None:
        raise NotFoundError("no such session")
    amr = list(row.amr)
    amr += [f for f in factors if f not in amr]
    row.amr = amr
    row.acr = acr.for_methods(amr)
    if acr.STRONG_FACTORS & set(factors):
        row.strong_auth_at = clock.now()
    if row.held:
        row.held = False
        row.expires_at = _expiry(row, clock.now(), runtime.current().settings.session)
    events.record("session.stepped_up", user_id=row.user_id, session_id=row.id, amr=amr)
    db.session.flush()
    return _info(row)


def resolve(cookie_value: str | None, *, held: bool = False) -> SessionInfo | None:
    """The live session behind a cookie value, else None.  A held session
    (waiting for its extra check) is found only with ``held=True``, which
    only the step-up page asks.  Writes nothing: the caller slides it with
    :func:`touch` when ``touch_due``."""
    if not cookie_value or len(cookie_value) > 100:
        return None
    row = db.session.scalar(
        select(SignInSession).where(SignInSession.cookie_hash == secret_hash(cookie_value))
    )
    if row is None or row.held != held or not _info(row).is_live(clock.now()):
        return None
    return _info(row)


@service
def touch(session_id: str, policy: SessionSettings) -> SessionInfo | None:
    """A use of the session: slide its expiry (unless it ended meanwhile)."""
    now = clock.now()
    row = db.session.get(SignInSession, session_id)
    if row is None or row.held or row.ended_at is not None or row.expires_at <= now:
        return None
    row.last_seen_at = now
    row.expires_at = _expiry(row, now, policy)
    return _info(row)


def get(session_id: str) -> SessionInfo:
    row = db.session.get(SignInSession, session_id) if session_id else None
    if row is None:
        raise NotFoundError("no such session")
    return _info(row)


def lock(session_id: str) -> SessionInfo | None:
    """The session, locked against a forced logout until this transaction ends.

    A shared lock on PostgreSQL: issuing tokens in one session does not
    wait for another issuance, only a forced logout waits (and is waited
    for).  SQLite has no row locks: the database's one write lock, held
    from the caller's first write to its commit, orders it with a forced
    logout.  A code exchange has written before it asks; a refresh asks
    first and then spends its token only if the token is unrevoked, so a
    logout committed in between makes the refresh fail.  None if there is
    no such session."""
    row = read_in_transaction(_LOCK, {"sid": session_id})
    return _info(row) if row is not None else None


def serves_client(
    session: SessionInfo, *, allow_stay_signed_in: bool, idle_minutes: int, now: dt.datetime
) -> bool:
    """Whether a client may be served by this session now.

    A service that refuses long-lived sign-ins (a bank) is not served by a
    stay-signed-in session older than an ordinary browser session could
    be: neither at the authorization endpoint nor by refreshing tokens."""
    if allow_stay_signed_in or not session.remember:
        return True
    return now - session.auth_time <= dt.timedelta(minutes=idle_minutes)


_SESSION_CLIENTS = SessionClient.metadata.tables[SessionClient.__tablename__]
_RECORD_CLIENT = {
    name: dialect.insert(_SESSION_CLIENTS).on_conflict_do_nothing(
        index_elements=["session_id", "client_id"]
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
"""Built once per dialect: every code exchange asks it."""


def record_client(session_id: str, client_id: str) -> None:
    """Remember that ``client_id`` received tokens in this session (joins the
    caller's transaction; a second call for the pair changes nothing)."""
    values = {"session_id": session_id, "client_id": client_id, "first_at": clock.now()}
    dialect = db.session.get_bind().dialect.name
    write(_RECORD_CLIENT[dialect], values)


def list_for_user(user_id: str, *, live_only: bool = True) -> list[SessionInfo]:
    query = select(SignInSession).where(SignInSession.user_id == user_id)
    if live_only:
        query = query.where(
            SignInSession.ended_at.is_(None), SignInSession.expires_at > clock.now()
        )
    rows = db.session.scalars(query.order_by(SignInSession.last_seen_at.desc()))
    return [_info(r) for r in rows]


def countries_active_since(user_id: str, since: dt.datetime) -> frozenset[str]:
    """Countries of the person's sessions that were in use since ``since``
    (signed out since or not; held ones do not count).  The same device
    counts too: a device cookie is no credential, and one that moves across
    borders within hours was copied as often as it was carried."""
    query = select(SignInSession.country).where(
        SignInSession.user_id == user_id,
        SignInSession.last_seen_at >= since,
        SignInSession.country.is_not(None),
        SignInSession.held.is_(False),
    )
    return frozenset(c for c in db.session.scalars(query.distinct()) if c)


def device_forced_out_since(device_id: str | None, since: dt.datetime) -> bool:
    """Whether a session on this device (of any account) was forced out for
    suspected misuse since ``since``."""
    if device_id is None:
        return False
    found = db.session.scalar(
        select(SignInSession.id)
        .where(
            SignInSession.device_id == device_id,
            SignInSession.ended_at >= since,
            SignInSession.end_reason.in_([str(r) for r in MISUSE_REASONS]),
        )
        .limit(1)
    )
    return found is not None


def purge_ended(before: dt.datetime, *, batch: int) -> int:
    """Delete up to ``batch`` sessions that ended or expired before
    ``before`` (joins the caller's transaction), with the record of the
    services they reached; returns how many went.

    Kept a while after they end so that the person's and the admin's session
    lists and the audit trail can still name them, and as long as an offline
    refresh token issued in them lives: a later forced logout must still
    find the session, its services and that token."""
    now = clock.now()
    offline_alive = exists().where(
        RefreshToken.session_id == SignInSession.id,
        RefreshToken.offline.is_(True),
        RefreshToken.revoked_at.is_(None),
        RefreshToken.expires_at > now,
    )
    return delete_batch(
        SignInSession,
        (SignInSession.expires_at < before)
        | (SignInSession.ended_at.is_not(None) & (SignInSession.ended_at < before)),
        ~offline_alive,
        batch=batch,
    )
