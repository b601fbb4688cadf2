"""Scale: many stored tokens, and a forced logout of a person with many sessions.

* :func:`fill_tokens` adds refresh and access tokens of other people to a
  provider's database, so that the refresh and introspection runs can be
  repeated with 10 thousand and with 1 million tokens stored: indexed
  look-ups must not notice.
* :func:`forced_logout_seconds` times one forced logout of a person with
  1,000 sessions across 10 relying services that all take back-channel
  logout (10,000 tokens revoked, 10,000 logout messages queued), in one
  transaction, on the provider's core."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select

from bench.load import SERVER_CPU

__all__ = ["fill_tokens", "forced_logout_seconds", "stored_tokens"]

BATCH = 20_000


def _rows(
    count: int, now: dt.datetime
) -> Iterator[tuple[list[dict[str, object]], list[dict[str, object]]]]:
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        refresh, access = [], []
        for _ in range(n):
            family = secrets.token_urlsafe(24)
            refresh.append(
                {
                    "token_hash": hashlib.sha256(secrets.token_bytes(32)).digest(),
                    "family_id": family,
                    "client_id": "bench-filler",
                    "user_id": "bench-filler",
                    "session_id": "bench-filler",
                    "scope": "openid",
                    "offline": False,
                    "auth_time": now,
                    "amr": ["pwd"],
                    "acr": "",
                    "created_at": now,
                    "expires_at": now + dt.timedelta(days=30),
                    "grace_uses": 0,
                }
            )
            access.append(
                {
                    "jti": secrets.token_urlsafe(24),
                    "client_id": "bench-filler",
                    "user_id": "bench-filler",
                    "session_id": "bench-filler",
                    "family_id": family,
                    "scope": "openid",
                    "issued_at": now,
                    "expires_at": now + dt.timedelta(hours=1),
                }
            )
        done += n
        yield refresh, access


def stored_tokens(url: str) -> int:
    from idp.models import RefreshToken

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(RefreshToken)).scalar_one()
            )
    finally:
        engine.dispose()


def fill_tokens(url: str, total: int) -> None:
    """Bring the number of stored refresh tokens (and as many access tokens) to ``total``."""
    from idp.models import AccessToken, RefreshToken

    missing = total - stored_tokens(url)
    if missing <= 0:
        return
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC)
    try:
        for refresh, access in _rows(missing, now):
            with engine.begin() as connection:
                connection.execute(insert(RefreshToken), refresh)
                connection.execute(insert(AccessToken), access)
    finally:
        engine.dispose()


def forced_logout_seconds(database: str, sessions_count: int = 1000, services: int = 10) -> float:
    """Seconds one forced logout of such a person takes, committed, on
    ``sqlite`` or a durable ``postgresql`` (in process, pinned to SERVER_CPU)."""
    from tests.support.services import PostgresCluster

    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-logout-"))
    if database == "sqlite":
        return _time_forced_logout(
            workdir, f"sqlite:///{workdir / 'idp.sqlite3'}", sessions_count, services
        )
    with PostgresCluster(durable=True, cpu=SERVER_CPU) as cluster:
        url = cluster.create_database("logout")
        return _time_forced_logout(workdir, url, sessions_count, services)


def _time_forced_logout(workdir: Path, url: str, sessions_count: int, services: int) -> float:
    from idp import accounts, clients, clock, create_app, forced_logout, schema
    from idp.config import load
    from idp.db import db
    from idp.keys import keyring_for
    from idp.models import AccessToken, RefreshToken, SessionClient, SignInSession

    config = workdir / "idp.toml"
    config.write_text(
        f'[server]\nissuer = "http://localhost:5999"\n[database]\nurl = "{url}"\n'
        f'[keys]\ndir = "{workdir / "keys"}"\n[mail]\nfile_dir = "{workdir / "mail"}"\n'
    )
    settings = load(config, {})
    schema.upgrade(url)
    keyring_for(settings).ensure()
    previous = os.sched_getaffinity(0)
    app = create_app(settings)
    try:
        with app.app_context():
            member = accounts.create(
                username="many-sessions",
                email="many@example.com",
                password=secrets.token_urlsafe(16),
            )
            shops = [
                clients.create(
                    name=f"shop {i}",
                    redirect_uris=[f"https://shop{i}.example/cb"],
                    backchannel_logout_uri=f"https://shop{i}.example/logout",
                ).client.client_id
                for i in range(services)
            ]
            db.session.commit()
            now = clock.now()
            rows, reached, refresh, access = [], [], [], []
            for _ in range(sessions_count):
                sid = secrets.token_urlsafe(24)
                rows.append(
                    {
                        "id": sid, "cookie_hash": hashlib.sha256(sid.encode()).digest(),
                        "user_id": member.id, "ip": "192.0.2.1", "user_agent": "",
                        "remember": True, "auth_time": now, "amr": ["pwd"], "acr": "",
                        "created_at": now, "last_seen_at": now,
                        "expires_at": now + dt.timedelta(days=1), "held": False,
                    }
                )  # fmt: skip
                for client_id in shops:
                    reached.append({"session_id": sid, "client_id": client_id, "first_at": now})
                    family = secrets.token_urlsafe(24)
                    refresh.append(
                        {
                            "token_hash": hashlib.sha256(secrets.token_bytes(32)).digest(),
                            "family_id": family, "client_id": client_id, "user_id": member.id,
                            "session_id": sid, "scope": "openid", "offline": False,
                            "auth_time": now, "amr": ["pwd"], "acr": "", "created_at": now,
                            "expires_at": now + dt.timedelta(days=30), "grace_uses": 0,
                        }
                    )  # fmt: skip
                    access.append(
                        {
                            "jti": secrets.token_urlsafe(24), "client_id": client_id,
                            "user_id": member.id, "session_id": sid, "family_id": family,
                            "scope": "openid", "issued_at": now,
                            "expires_at": now + dt.timedelta(hours=1),
                        }
                    )  # fmt: skip
            db.session.execute(insert(SignInSession), rows)
            db.session.execute(insert(SessionClient), reached)
            db.session.execute(insert(RefreshToken), refresh)
            db.session.execute(insert(AccessToken), access)
            db.session.commit()
            os.sched_setaffinity(0, {SERVER_CPU})
            started = time.perf_counter()
            forced_logout.force_logout(
                user_id=member.id, reason=forced_logout.LogoutReason.ADMIN, actor="bench"
            )
            return time.perf_counter() - started
    finally:
        os.sched_setaffinity(0, previous)
        with app.app_context():
            db.engine.dispose()
