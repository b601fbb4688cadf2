"""Sign-in sessions; written only by ``idp.sessions``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class SignInSession(Base):
    __tablename__ = "signin_sessions"

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    """The public ``sid``: appears in ID and logout tokens, never a credential."""
    cookie_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """SHA-256 of the ``idp_session`` cookie value."""
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64))
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
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
