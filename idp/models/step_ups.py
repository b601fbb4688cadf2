"""Extra checks waiting to be answered in a sign-in session; written only by ``idp.step_up``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, JsonList


class StepUp(Base):
    """The extra check a session is asked (a one-time code, then perhaps the
    birth date): at most one per session, gone once passed or refused."""

    __tablename__ = "step_ups"

    session_id: Mapped[str] = mapped_column(
        String(43), ForeignKey("signin_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    reasons: Mapped[list[str]] = mapped_column(JsonList)
    """Why it is asked: ``acr_values`` or the risk rules' reasons."""
    asked_at: Mapped[dt.datetime]
    """When it was first asked; the login notification went then."""
    otp_at: Mapped[dt.datetime | None]
    """When its one-time code was accepted (the birth date may still be asked)."""
    failures: Mapped[int] = mapped_column(default=0)
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    """SHA-256 of the six-digit code mailed for it (no TOTP set up)."""
    code_expires_at: Mapped[dt.datetime | None]
