"""Single-use links sent by mail; written only by ``idp.links``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base


class EmailLink(Base):
    """A link in a mail (confirm an address, reset a password): its token is
    stored only as a SHA-256, spent by one conditional update."""

    __tablename__ = "email_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    """``confirm_email``, ``change_email`` or ``reset_password``."""
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    """The address the link was sent to (for a change: the new address)."""
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None]
