"""The audit log; written only by ``idp.events``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36))
    client_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(43))
    ip: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[str] = mapped_column(Text, default="{}")


class SignInAttempt(Base):
    """One sign-in attempt, whatever its outcome: the account's "recent
    activity" and the operator's ``idp events list``.  Kept for
    ``events.signin_retention_days``, then purged by the worker."""

    __tablename__ = "signin_attempts"
    __table_args__ = (Index("ix_signin_attempts_user_id_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    user_id: Mapped[str | None] = mapped_column(String(36))
    """The account, when the attempt named one that exists."""
    method: Mapped[str] = mapped_column(String(16))
    """``pwd``, ``passkey``, ``qr`` or ``step_up``."""
    result: Mapped[str] = mapped_column(String(16))
    """``success``, ``failure``, ``step_up`` (held for an extra check) or ``refused``."""
    reason: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    ip: Mapped[str] = mapped_column(String(45))
    country: Mapped[str | None] = mapped_column(String(2))
