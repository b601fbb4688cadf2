"""Sign-in sessions and the services each one reached; written only by
``idp.sessions`` and, to end them, ``idp.forced_logout``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class SignInSession(Base):
    __tablename__ = "signin_sessions"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    """The public ``sid``: appears in ID and logout tokens, never a credential."""
    cookie_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """SHA-256 of the ``idp_session`` cookie value."""
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ip: Mapped[str] = mapped_column(String(45))
    country: Mapped[str | None] = mapped_column(String(2))
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    remember: Mapped[bool] = mapped_column(default=False)
    auth_time: Mapped[dt.datetime]
    amr: Mapped[list[str]] = mapped_column(JsonList)
    acr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    """The hard end: idle or sliding window, never past the remember cap."""
    strong_auth_at: Mapped[dt.datetime | None]
    """When the person last proved more than a password here: a passkey
    sign-in, or a one-time code at a step-up (the admin pages ask for one
    within 10 minutes)."""
    held: Mapped[bool] = mapped_column(default=False)
    """The sign-in waits for an extra check (``idp.step_up``) that the risk
    rules asked: until it is passed the session serves nothing."""
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))


class SessionClient(Base):
    """A relying service that received tokens in a session.

    Recorded when tokens are first issued, kept as long as the session row:
    a forced logout finds here whom to tell, however long ago the tokens
    were issued and whether or not they expired or were purged since."""

    __tablename__ = "session_clients"
    __table_args__ = (PrimaryKeyConstraint("session_id", "client_id", name="pk_session_clients"),)

    session_id: Mapped[str] = mapped_column(ForeignKey("signin_sessions.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[dt.datetime]
