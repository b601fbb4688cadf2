"""Cross-device (QR) sign-in requests; written only by ``idp.qr``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class QrRequest(Base):
    __tablename__ = "qr_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    """Names the request to the device that shows the QR (with its cookie)."""
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    """SHA-256 of the token in the QR link."""
    binding_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    """SHA-256 of the ``idp_qr`` cookie of the browser that asked."""
    match_code: Mapped[str] = mapped_column(String(2))
    choices: Mapped[list[str]] = mapped_column(JsonList)
    state: Mapped[str] = mapped_column(String(16))
    """pending, approved, denied, collected (expired is derived from expires_at)."""
    deny_reason: Mapped[str | None] = mapped_column(String(32))
    return_to: Mapped[str] = mapped_column(String(512))
    """``interaction:<uid>`` or a path on the provider."""
    requester_ip: Mapped[str] = mapped_column(String(45))
    requester_user_agent: Mapped[str] = mapped_column(String(400))
    requester_country: Mapped[str | None] = mapped_column(String(2))
    user_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    picked_at: Mapped[dt.datetime | None]
    """When the right number was picked: the passkey check may follow, once."""
    decided_at: Mapped[dt.datetime | None]
    collected_at: Mapped[dt.datetime | None]
