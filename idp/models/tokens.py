"""Access-token records and refresh-token families; written only by ``idp.tokens``,
``idp.rotation`` and ``idp.introspection``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class AccessToken(Base):
    """One issued JWT access token, so that it can be revoked before ``exp``."""

    __tablename__ = "access_tokens"
    __table_args__ = (
        Index("ix_access_tokens_family_id", "family_id"),
        Index("ix_access_tokens_session_id", "session_id"),
        Index("ix_access_tokens_user_id", "user_id"),
    )

    jti: Mapped[str] = mapped_column(String(43), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(36))
    session_id: Mapped[str | None] = mapped_column(String(43))
    family_id: Mapped[str | None] = mapped_column(String(43))
    scope: Mapped[str] = mapped_column(String(500))
    issued_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None]


class RefreshToken(Base):
    """One member of a refresh-token family; each use spends it for a new one."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family_id", "family_id"),
        Index("ix_refresh_tokens_session_id", "session_id"),
        Index("ix_refresh_tokens_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    family_id: Mapped[str] = mapped_column(String(43))
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(36))
    session_id: Mapped[str] = mapped_column(String(43))
    scope: Mapped[str] = mapped_column(String(500))
    offline: Mapped[bool] = mapped_column(default=False)
    """offline_access: outlives the browser session, not a forced logout."""
    auth_time: Mapped[dt.datetime]
    amr: Mapped[list[str]] = mapped_column(JsonList)
    acr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    spent_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    grace_uses: Mapped[int] = mapped_column(default=0)
    """Presented again within ``tokens.refresh_reuse_seconds`` of its rotation
    by its confidential client: answered, counted, not punished."""
