"""Authorization requests waiting for the person; written only by ``idp.interactions``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class Interaction(Base):
    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    """The validated authorization request, as JSON: replayed on resume."""
    prompt: Mapped[str] = mapped_column(String(16))
    """What is asked first: ``login`` or ``consent``."""
    reasons: Mapped[list[str]] = mapped_column(JsonList)
    user_id: Mapped[str | None] = mapped_column(String(36))
    session_id: Mapped[str | None] = mapped_column(String(43))
    """Set when the person signed in (or was already); resume requires it."""
    login_at: Mapped[dt.datetime | None]
    """When the person signed in through this interaction: ``prompt=login``
    and ``max_age`` are then satisfied."""
    consent_scope: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(String(32))
    """Set when the person refused: resume answers the client with it."""
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    completed_at: Mapped[dt.datetime | None]
